"""A long step of a node (the first start's model conversion) reports itself in log lines:
started, still running with the seconds so far, done; tqdm's bars stay out of a log file,
while anything else written to stderr meanwhile gets through."""

import io
import logging
import sys
import time

from tqdm.auto import tqdm

from mlnode import progress_log
from mlnode.progress_log import logged_progress


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_long_step_logs_its_progress_and_keeps_bars_out_of_a_log_file(monkeypatch):
    stderr = io.StringIO()  # not a terminal, like a node's log file
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(progress_log, "EVERY_S", 0.01)
    log, lines = logging.getLogger("test.progress"), Lines()
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    try:
        with logged_progress(log, "converting"):
            for _ in tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."):
                pass
            print("a warning the step printed", file=sys.stderr)
            deadline = time.monotonic() + 60
            while not any("still running" in line for line in lines.lines):
                assert time.monotonic() < deadline, lines.lines
                time.sleep(0.01)
    finally:
        log.removeHandler(lines)
    assert stderr.getvalue() == "a warning the step printed\n"
    assert lines.lines[0] == "converting: started"
    assert lines.lines[1].startswith("converting: still running, ")
    assert lines.lines[1].endswith(" s so far")
    assert lines.lines[-1].startswith("converting: done in ")
    assert sys.stderr is stderr  # put back as it was
