"""A transfer agent's short memory of executors that just failed it (unreachable, broken
off, or silent past the first-token timeout), so that the next requests whose draw names one
of them pass it at once (a notice the pick may claim, docs/design.md §3.3) instead of waiting
out the timeout again.

The chain's draw already weighs executors by an availability fixed per epoch (docs/design.md
§3.3), but it counts only misses it has evidence for; a dead or stalled executor is charged
nothing for being skipped, and so stays in the draw until the epoch turns and beyond. This
memory changes nothing the chain sees: passing a pick takes the same notice a timeout leads
to, and a pick that is alive again claims the request and is tried, so the draw's order still
decides who serves and the agent gains no say over the executor. A pick is passed on this
memory alone only while a later pick that the agent may still forward to remains: never the
last pick, and never when only the agent itself comes after it (the agent serves itself past
a pick only on that pick's signed refusal).
"""

import time
from collections.abc import Callable, Sequence

# Long enough to spare the requests of the next minute the wait; short enough that an
# executor back from a restart is tried again soon.
FAILING_HOLD_S = 60.0


class ExecutorHealth:
    """Executors that failed this agent within the last ``hold_s`` seconds."""

    def __init__(self, hold_s: float = FAILING_HOLD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._hold_s = hold_s
        self._clock = clock
        self._failed_at: dict[str, float] = {}

    def failed(self, executor: str) -> None:
        self._failed_at[executor] = self._clock()

    def served(self, executor: str) -> None:
        """A first token came: the executor is healthy again."""
        self._failed_at.pop(executor, None)

    def passes_over(self, picks: Sequence[str], attempt: int, agent: str,
                    failing: bool = False) -> bool:
        """Whether ``agent`` passes ``picks[attempt]`` without trying it, for having failed it
        lately (or for being taken as ``failing``): only while a later pick other than the
        agent remains."""
        if not any(later != agent for later in picks[attempt + 1:]):
            return False
        return failing or self.failing(picks[attempt])

    def failing(self, executor: str) -> bool:
        failed_at = self._failed_at.get(executor)
        if failed_at is None:
            return False
        if self._clock() - failed_at >= self._hold_s:
            del self._failed_at[executor]
            return False
        return True
