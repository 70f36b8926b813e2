"""The explorer as a process (``python -m explorer``) and Debian's Chromium driven by
playwright, for the explorer's tests. Never playwright's own browser download: CI installs
/usr/bin/chromium (.ci/run)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import free_port
from local_network import poll, spawn, stop_all
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def api_status(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/api/status", timeout=5) as reply:
            return json.load(reply)
    except (urllib.error.URLError, OSError):
        return None


@contextmanager
def explorer_process(log: Path, chain_grpc: str, mlnode: str | None = None
                     ) -> Iterator[str]:
    """The explorer's base URL, once it answers /api/status."""
    port = free_port()
    process = spawn(["-m", "explorer", "--chain-grpc", chain_grpc,
                     "--listen", f"127.0.0.1:{port}", "--poll-s", "0.3",
                     *(["--mlnode", mlnode] if mlnode else [])], log)
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: api_status(url) if process.poll() is None else {"exited": True},
             "the explorer to answer", timeout=30)
        assert process.poll() is None, log.read_text()
        yield url
    finally:
        stop_all([process])
        assert process.returncode in (0, -15), log.read_text()


@contextmanager
def chromium() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: .ci/run installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

