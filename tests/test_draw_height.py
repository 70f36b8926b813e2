"""A start's draw height is checked from the two kept blocks that decide it; it must say what
the Draw query's scan of every kept block says (the first kept block at or after the request's
timestamp), or a transfer agent following the query would be refused, or a start the query
would refuse taken."""

import random

from chain.inference.draw import BLOCK_HASH_SIZE
from chain.inference.keeper import BLOCK_HASH, InferenceKeeper
from chain.store import Store
from chain.store.records import uint64

SECOND = 1_000_000_000


def kept_blocks(rng: random.Random) -> tuple[object, int]:
    """A state keeping a window of block hashes of rising times (some a second apart, some
    the same second, some far apart), at times one recorded without its time; and the last
    height."""
    state = Store.memory().begin_block()
    keeper = InferenceKeeper()
    keep = rng.randint(1, 12)
    time_ns = rng.randint(1, 50) * SECOND
    last = rng.randint(1, 40)
    for height in range(1, last + 1):
        time_ns += rng.choice([1, SECOND // 3, SECOND, 5 * SECOND])
        keeper.record_block_hash(state, height, bytes(BLOCK_HASH_SIZE), time_ns, keep)
        if rng.random() < 0.05:  # a block hash recorded before block times were
            state.set(BLOCK_HASH + uint64(height), bytes(BLOCK_HASH_SIZE))
    return state, last


def test_the_checked_draw_height_is_the_one_the_draw_query_gives():
    rng = random.Random(11)
    keeper = InferenceKeeper()
    agreed = 0
    for _ in range(300):
        state, last = kept_blocks(rng)
        last_second = keeper.block_time_ns(state, last) or (last + 300) * SECOND
        for timestamp in range(0, last_second // SECOND + 3):
            scanned = keeper.request_draw_height(state, timestamp)
            for height in range(1, last + 2):
                assert keeper.draws_at(state, timestamp, height) == (scanned == height), \
                    (timestamp, height, scanned)
            agreed += scanned is not None
    assert agreed > 1_000  # most timestamps have a draw height: the check was exercised
