"""A transfer agent's memory of executors that just failed it: one that failed is skipped
until the hold passes or it serves again; the others are never affected."""

from apinode.executor_health import ExecutorHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_executor_is_skipped_until_the_hold_passes():
    clock = Clock()
    health = ExecutorHealth(hold_s=60, clock=clock)
    health.failed("alice")
    assert health.failing("alice")
    assert not health.failing("bob")
    clock.now += 59.9
    assert health.failing("alice")
    clock.now += 0.1
    assert not health.failing("alice")
    assert not health.failing("alice")  # forgotten, not failing again by itself


def test_an_executor_that_serves_is_healthy_at_once_and_a_new_failure_restarts_the_hold():
    clock = Clock()
    health = ExecutorHealth(hold_s=60, clock=clock)
    health.failed("alice")
    health.served("alice")
    assert not health.failing("alice")
    health.failed("alice")
    clock.now += 50
    health.failed("alice")
    clock.now += 50
    assert health.failing("alice")
    health.served("bob")  # serving for someone never seen is harmless
    assert not health.failing("bob")


def test_a_failed_pick_is_passed_over_only_while_a_later_pick_can_still_be_tried():
    health = ExecutorHealth(hold_s=60, clock=Clock())
    health.failed("alice")
    health.failed("bob")
    assert health.passes_over(["alice", "carol"], 0, "agent")
    assert not health.passes_over(["carol", "alice"], 1, "agent")  # the last pick
    # Only the agent itself after it: a skip leaves no signed refusal, so the agent could not
    # serve itself, and the request would find nobody.
    assert not health.passes_over(["alice", "agent"], 0, "agent")
    assert health.passes_over(["alice", "bob", "agent", "carol"], 1, "agent")
    assert not health.passes_over(["alice", "bob", "agent"], 1, "agent")
    assert not health.passes_over(["carol", "agent"], 0, "agent")  # never failed
