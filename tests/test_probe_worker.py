"""When a probe worker sends its probes, and what they ask: heights drawn afresh each epoch,
only ahead of where the chain was when the epoch was planned and never in the epoch's last
tenth (a probe counts in the epoch whose block takes its commitment), so a node restarted
mid-epoch still probes each model ``per_epoch`` times and never at a height it may already
have probed at; what the chain counted, read per epoch; and a question no past probe asked."""

import random
from collections import Counter

from apinode.probe_worker import committed_in, probe_heights, probe_prompt, probe_span
from inferchain_pb.inference.v1.epochs_pb2 import Epoch
from inferchain_pb.inference.v1.query_pb2 import ProbeCount

EPOCH = Epoch(number=3, start_height=1_201, length=600)
SPAN = 1_740  # the last height a probe is sent at: the epoch's last 60 are left to land


def test_probe_heights_lie_in_the_epoch_after_the_height_seen():
    rng = random.Random(7)
    for after in (0, 1_200, 1_500, SPAN - 1):
        heights = probe_heights(EPOCH, after, 6, rng)
        assert len(heights) == 6 and heights == sorted(heights)
        assert all(max(1_201, after + 1) <= h <= SPAN for h in heights), (after, heights)
    assert probe_span(EPOCH) == SPAN
    assert probe_span(Epoch(start_height=1, length=20)) == 17  # at least 3 blocks to land
    # At 2 blocks a second the 10 s a probe may take to land are 20 blocks, more than a
    # tenth of a 60-block epoch; never more than half of one.
    assert probe_span(Epoch(start_height=1, length=60), 2.0) == 40
    assert probe_span(Epoch(start_height=1, length=20), 5.0) == 10
    assert probe_heights(EPOCH, SPAN, 6, rng) == []
    assert probe_heights(EPOCH, 5_000, 6, rng) == []


def test_probe_heights_differ_each_time_and_spread_over_the_whole_span():
    rng = random.Random(11)
    draws = [probe_heights(EPOCH, 0, 4, rng) for _ in range(500)]
    assert len({tuple(d) for d in draws}) == 500
    # Uniform over the 540 heights: each sixth of them gets about a sixth of the 2,000.
    sixths = Counter((h - 1_201) // 90 for d in draws for h in d)
    assert len(sixths) == 6
    assert all(abs(n - 2_000 / 6) < 5 * (2_000 / 6) ** 0.5 for n in sixths.values()), sixths


def test_probe_prompts_are_new_each_time():
    """A member cannot keep answers to probes it saw: prompts carry random numbers (and the
    worker samples them at temperature 1 under a random seed)."""
    rng = random.Random(3)
    prompts = [probe_prompt(rng) for _ in range(1_000)]
    assert len(set(prompts)) == 1_000
    assert all("{" not in p and any(ch.isdigit() for ch in p) for p in prompts)


def test_what_the_chain_counted_is_read_for_the_epoch_only():
    """The Probes query answers every count not yet judged: the last epoch's (until its
    judging) and the next's are not this epoch's."""
    counts = [ProbeCount(height=1_200, model_id="m", count=4),
              ProbeCount(height=1_201, model_id="m", count=1),
              ProbeCount(height=1_500, model_id="m", count=2),
              ProbeCount(height=1_500, model_id="n", count=1),
              ProbeCount(height=1_800, model_id="n", count=1),
              ProbeCount(height=1_801, model_id="n", count=5)]
    assert committed_in(counts, EPOCH) == {"m": 3, "n": 2}
