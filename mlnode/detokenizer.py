"""Turns a growing list of output ids into text deltas and finds stop sequences.

Text is decoded from the whole output each step (byte-level BPE can split a character over
several tokens), a trailing incomplete character is held back, and so is any tail that could
still grow into a stop sequence, so that a stop sequence is never half-streamed.
"""

from collections.abc import Callable, Sequence

_INCOMPLETE = "\ufffd"


class StreamText:
    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Sequence[str]) -> None:
        self._decode = decode
        self._stop = tuple(stop)
        self.emitted = ""
        self.stopped = False

    def push(self, output_ids: Sequence[int]) -> str:
        """The new text after the latest token; sets ``stopped`` when a stop sequence shows."""
        text = self._decode(output_ids)
        hits = [text.find(s, max(0, len(self.emitted) - len(s))) for s in self._stop]
        hits = [h for h in hits if h >= 0]
        if hits:
            self.stopped = True
            return self._advance(text[: min(hits)])
        end = len(text)
        while end and text[end - 1] == _INCOMPLETE:
            end -= 1
        return self._advance(text[: end - self._open_stop_prefix(text[:end])])

    def flush(self, output_ids: Sequence[int]) -> str:
        """Whatever was held back, once the output is known to be complete."""
        return "" if self.stopped else self._advance(self._decode(output_ids))

    def _advance(self, text: str) -> str:
        delta = text[len(self.emitted):] if text.startswith(self.emitted) else ""
        self.emitted += delta
        return delta

    def _open_stop_prefix(self, text: str) -> int:
        """Length of the longest tail of ``text`` that begins some stop sequence."""
        longest = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest
