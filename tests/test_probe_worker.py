"""When a probe worker sends its probes, and what they ask: heights drawn afresh each epoch,
only ahead of where the chain was when the epoch was planned, so a node restarted mid-epoch
still probes each model ``per_epoch`` times and never at a height it may already have probed
at; and a question no past probe asked."""

import random
from collections import Counter

from apinode.probe_worker import probe_heights, probe_prompt
from inferchain_pb.inference.v1.epochs_pb2 import Epoch

EPOCH = Epoch(number=3, start_height=1_201, length=600)


def test_probe_heights_lie_in_the_epoch_after_the_height_seen():
    rng = random.Random(7)
    for after in (0, 1_200, 1_500, 1_799):
        heights = probe_heights(EPOCH, after, 6, rng)
        assert len(heights) == 6 and heights == sorted(heights)
        assert all(max(1_201, after + 1) <= h <= 1_800 for h in heights), (after, heights)
    assert probe_heights(EPOCH, 1_800, 6, rng) == []
    assert probe_heights(EPOCH, 5_000, 6, rng) == []


def test_probe_heights_differ_each_time_and_spread_over_the_whole_span():
    rng = random.Random(11)
    draws = [probe_heights(EPOCH, 0, 4, rng) for _ in range(500)]
    assert len({tuple(d) for d in draws}) == 500
    # Uniform over the 600 heights: each sixth of the epoch gets about a sixth of the 2,000.
    sixths = Counter((h - 1_201) // 100 for d in draws for h in d)
    assert len(sixths) == 6
    assert all(abs(n - 2_000 / 6) < 5 * (2_000 / 6) ** 0.5 for n in sixths.values()), sixths


def test_probe_prompts_are_new_each_time():
    """A member cannot keep answers to probes it saw: prompts carry random numbers (and the
    worker samples them at temperature 1 under a random seed)."""
    rng = random.Random(3)
    prompts = [probe_prompt(rng) for _ in range(1_000)]
    assert len(set(prompts)) == 1_000
    assert all("{" not in p and any(ch.isdigit() for ch in p) for p in prompts)
