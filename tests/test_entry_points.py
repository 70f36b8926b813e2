"""Every documented way to start a part works from any directory, as a user runs it after
`make install`: the console scripts, each ``python -m`` package or module, and each bench
script as its docstring says (``python bench/NAME.py``). Each runs in a fresh temporary
directory, outside the repository, so only the installed package can resolve the imports
(the generated ``inferchain_pb`` included), never the current directory.

The entry points are found in the source, not listed by hand: pyproject's
``[project.scripts]``, every ``__main__.py``, and every file with a ``__main__`` guard, so a
new one is covered as soon as it exists.
"""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT

MAIN_GUARD = 'if __name__ == "__main__":'
# Writes into this checkout's inferchain_pb/; `make install` runs it, from any directory.
BUILD_STEPS = {ROOT / "proto" / "generate.py"}
# Folders whose scripts are run by path (`python bench/NAME.py`), importing their siblings.
SCRIPT_FOLDERS = {ROOT / "bench"}
SKIPPED_FOLDERS = {"tests", "build", "inferchain_pb"}  # and hidden ones (.venv, .git)
HELP_TIMEOUT_S = 300


def console_scripts() -> list[str]:
    return sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def python_files() -> list[Path]:
    folders = [f for f in ROOT.iterdir() if f.is_dir() and not f.name.startswith(".")
               and f.name not in SKIPPED_FOLDERS and not f.name.endswith(".egg-info")]
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def entry_points() -> dict[str, list[str]]:
    """Display name -> the argv (after the interpreter) a user types, without ``--help``."""
    found: dict[str, list[str]] = {}
    for path in python_files():
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if path.name == "__main__.py":
            package = dotted.removesuffix(".__main__")
            found[f"python -m {package}"] = ["-m", package]
        elif MAIN_GUARD in path.read_text() and path not in BUILD_STEPS:
            if path.parent in SCRIPT_FOLDERS:
                relative = str(path.relative_to(ROOT))
                found[f"python {relative}"] = [str(path)]
            else:
                found[f"python -m {dotted}"] = ["-m", dotted]
    for script in console_scripts():
        found[script] = []
    return found


ENTRY_POINTS = entry_points()


def run_outside(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs an interpreter command (or a console script when argv[0] is one) in `cwd` with
    nothing on PYTHONPATH, so the imports resolve through the installed package only."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    bin_dir = Path(sys.executable).parent
    command = ([str(bin_dir / argv[0]), *argv[1:]] if argv[0] in console_scripts()
               else [sys.executable, *argv])
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=HELP_TIMEOUT_S)


def test_the_documented_entry_points_are_all_found():
    """The discovery above sees at least the entry points the docs name."""
    documented = {"inferchain", "inferchain-mlnode", "python -m chain", "python -m mlnode",
                  "python -m apinode", "python -m genesis", "python -m devnet",
                  "python -m bench.detection", "python -m bench.detection.gpu_dump",
                  "python -m bench.economics",
                  "python -m bench.chaos",
                  *(f"python bench/{name}.py" for name in (
                      "chain_bench", "gateway_bench", "inference_bench", "mlnode_bench",
                      "poc_bench", "verification_overhead"))}
    assert documented <= set(ENTRY_POINTS), documented - set(ENTRY_POINTS)


def test_the_installed_package_is_this_checkout(tmp_path):
    """Outside the repository the imports come from the editable install, which must point
    at this checkout (else the tests below would run another tree's code)."""
    result = run_outside(["-c", "import chain, bench, inferchain_pb; "
                                "print(chain.__file__, inferchain_pb.__file__)"], tmp_path)
    assert result.returncode == 0, result.stderr
    for module_file in result.stdout.split():
        assert Path(module_file).is_relative_to(ROOT), (
            f"{module_file} is not in {ROOT}: run `make install` in this checkout")


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_point_prints_its_usage_from_another_directory(name, tmp_path):
    argv = ENTRY_POINTS[name]
    result = run_outside([*(argv or [name]), "--help"], tmp_path)
    assert result.returncode == 0, f"{name} --help in {tmp_path}:\n{result.stderr}"
    assert result.stdout.startswith("usage: "), result.stdout


def test_genesis_lays_out_a_solo_home_from_another_directory(tmp_path):
    """A real run: the default genesis template is package data, found from anywhere."""
    result = run_outside(["-m", "genesis", "solo", "--out", "home"], tmp_path)
    assert result.returncode == 0, result.stderr
    genesis = json.loads((tmp_path / "home" / "config" / "genesis.json").read_text())
    assert genesis["chain_id"]
