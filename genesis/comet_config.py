"""CometBFT's config/config.toml for one node: the binary's own default file, patched per node.

The default comes from running `cometbft init` once into a temporary directory, so every key and
comment matches the installed version. Where no binary is found, the patch starts from an empty
file instead: CometBFT loads config.toml on top of its built-in defaults, so a file holding only
the keys set here is complete. Patching edits `key = value` lines in place, section by section,
and reads the result back with tomllib to prove each value landed.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path

TomlValue = str | int | bool
# section name ("" = the top of the file) -> key -> value
TomlPatch = Mapping[str, Mapping[str, TomlValue]]

_SECTION = re.compile(r"\s*\[([A-Za-z0-9_.-]+)\]\s*(#.*)?")
_KEY = re.compile(r"\s*([A-Za-z0-9_-]+)\s*=")
# Go's time.ParseDuration syntax, e.g. "500ms", "1.5s", "1m30s".
_GO_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")


def find_cometbft() -> str | None:
    """The cometbft binary on PATH, else ~/go/bin/cometbft (where `go install` puts it), or None."""
    found = shutil.which("cometbft")
    if found:
        return found
    go_bin = Path.home() / "go" / "bin" / "cometbft"
    return str(go_bin) if os.access(go_bin, os.X_OK) else None


def default_config_toml(cometbft: str | None = None) -> str:
    """The default config.toml of the given (or found) cometbft binary; "" when there is none."""
    cometbft = cometbft or find_cometbft()
    if cometbft is None:
        return ""
    with tempfile.TemporaryDirectory(prefix="cometbft-init-") as home:
        subprocess.run([cometbft, "init", "--home", home], check=True, capture_output=True,
                       timeout=30)
        return (Path(home) / "config" / "config.toml").read_text(encoding="utf-8")


def check_go_duration(value: str) -> str:
    """Returns `value` if Go's time.ParseDuration accepts it, else raises ValueError."""
    if not isinstance(value, str) or not _GO_DURATION.fullmatch(value):
        raise ValueError(f"{value!r} is not a Go duration such as '500ms' or '1s'")
    return value


def node_config_toml(
    base: str,
    *,
    moniker: str,
    p2p_port: int,
    rpc_port: int,
    abci_port: int,
    persistent_peers: list[str],
    timeout_commit: str = "500ms",
) -> str:
    """Patches `base` (a default config.toml, or "") for one node listening on loopback only.

    `persistent_peers` holds "ID@127.0.0.1:PORT" entries for the other nodes. pprof and prometheus
    are off; address-book strictness is off and duplicate IPs are allowed, since every peer of a
    local network is 127.0.0.1.
    """
    return patch_toml(base, {
        "": {
            "proxy_app": f"tcp://127.0.0.1:{abci_port}",
            "moniker": moniker,
        },
        "rpc": {
            "laddr": f"tcp://127.0.0.1:{rpc_port}",
            "grpc_laddr": "",
            "pprof_laddr": "",
        },
        "p2p": {
            "laddr": f"tcp://127.0.0.1:{p2p_port}",
            "persistent_peers": ",".join(persistent_peers),
            "addr_book_strict": False,
            "allow_duplicate_ip": True,
        },
        "consensus": {
            "timeout_commit": check_go_duration(timeout_commit),
            "create_empty_blocks": True,
        },
        "instrumentation": {
            "prometheus": False,
        },
    })


def patch_toml(text: str, patch: TomlPatch) -> str:
    """Sets each key of `patch` in `text`: replaces its line in the right section, or adds it at the
    top of that section (adding the section at the end when missing). Comments are kept."""
    lines = text.splitlines()
    pending = {section: dict(values) for section, values in patch.items()}
    section = ""
    section_starts = {"": 0}  # where new keys of a section are inserted: after its header
    for i, line in enumerate(lines):
        header = _SECTION.fullmatch(line)
        if header:
            section = header.group(1)
            section_starts[section] = i + 1
            continue
        key = _KEY.match(line)
        if key and key.group(1) in pending.get(section, {}):
            lines[i] = _toml_line(key.group(1), pending[section].pop(key.group(1)))

    # Insert from the bottom up so earlier insertion points stay valid.
    for section in sorted(section_starts, key=section_starts.get, reverse=True):
        missing = pending.pop(section, {})
        at = section_starts[section]
        lines[at:at] = [_toml_line(key, value) for key, value in missing.items()]
    for section, missing in pending.items():
        if missing:
            lines += ["", f"[{section}]"] + [_toml_line(k, v) for k, v in missing.items()]

    patched = "\n".join(lines) + "\n"
    _check_patched(patched, patch)
    return patched


def _toml_line(key: str, value: TomlValue) -> str:
    if isinstance(value, bool):
        rendered = "true" if value else "false"
    elif isinstance(value, int):
        rendered = str(value)
    else:
        rendered = json.dumps(value)  # a JSON string is a valid TOML basic string
    return f"{key} = {rendered}"


def _check_patched(text: str, patch: TomlPatch) -> None:
    parsed = tomllib.loads(text)
    for section, values in patch.items():
        table = parsed if section == "" else parsed.get(section, {})
        for key, value in values.items():
            if table.get(key) != value or type(table.get(key)) is not type(value):
                raise RuntimeError(f"patching config.toml failed: [{section}] {key} reads back as "
                                   f"{table.get(key)!r}, not {value!r}")
