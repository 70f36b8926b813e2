"""Progress of a long step as log lines: when it starts, every few seconds while it runs,
and when it ends, each with the seconds elapsed.

A node's output usually goes to a log file, where the tqdm bars that transformers draws are
one endless line of carriage returns; while a step runs, those bars are kept off a stderr that
is not a terminal, and these lines say instead that the step is alive and how long it took.
"""

import io
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr
from typing import TextIO

EVERY_S = 10.0


class _WithoutBars(io.TextIOBase):
    """A stream that passes everything on except tqdm's redraws (each written as one string
    that starts with a carriage return) and the newline that closes a bar."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._after_bar = False

    def write(self, text: str) -> int:
        bar = text.startswith("\r") or (self._after_bar and text == "\n")
        self._after_bar = text.startswith("\r")
        if not bar:
            self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


@contextmanager
def logged_progress(log: logging.Logger, what: str) -> Iterator[None]:
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(EVERY_S):
            log.info("%s: still running, %.0f s so far", what, time.monotonic() - started)

    log.info("%s: started", what)
    beats = threading.Thread(target=heartbeat, name="progress", daemon=True)
    beats.start()
    quiet = nullcontext() if sys.stderr.isatty() else redirect_stderr(_WithoutBars(sys.stderr))
    try:
        with quiet:
            yield
    finally:
        done.set()
        beats.join()
    log.info("%s: done in %.0f s", what, time.monotonic() - started)
