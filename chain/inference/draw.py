"""The executor draw (docs/design.md §3.3): who serves an inference, and who takes over when they
fail.

The API node runs it to pick the executor and the chain runs it again in MsgStartInference to
refuse a transfer agent that names anyone else, so this one function is the rule. It is
integer-only (hashes and integer arithmetic, no floats) so that every node computes the same
order on every platform, and the whole order is a function of public data. The start rules
make both inputs the request's own (docs/design.md §3.3): the inference id is the hash of what
the developer signed and the block is the first at or after the request's timestamp, so the
TA can only replay the draw, not steer it.

Rule: seed = sha256(inference_id utf-8 ‖ block_hash). Candidates with effective weight
weight × availability_ppm > 0 are sorted by address. Pick j (j = 0, 1, …) takes the 256-bit
integer sha256(seed ‖ j as 8 bytes big-endian) modulo the remaining total effective weight, and
selects the candidate whose cumulative weight range (in address order) contains it; the picked
candidate is removed and the next pick draws from the rest. The modulo bias is below
total / 2^256, nothing for any total a chain can hold (2^-100 even for a total of 2^156).

Picks use a Fenwick tree over the effective weights, so the full order of n candidates costs
O(n log n) rather than the O(n²) of rescanning the list after every pick: the chain computes
it inside a transaction, and a model may have thousands of participants. A ``DrawPool``
builds the tree once for many draws and computes an order only as far as it is read, so a
start, which needs its first few picks, costs O(log n) per pick after the shared build.
"""

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chain.scales import PPM

BLOCK_HASH_SIZE = 32


class NoEligibleExecutor(ValueError):
    """No candidate has a positive effective weight."""


@dataclass(frozen=True)
class Candidate:
    """A participant serving the model, as the chain sees it for this epoch."""

    address: str  # bech32 account address of the participant
    weight: int  # epoch weight (non-negative integer)
    availability_ppm: int  # availability factor in parts per million, 0..PPM


class DrawPool:
    """The candidates of a draw with their prefix sums built, so that many draws from the
    same candidates (every start of an epoch draws from one draw-weights record) share the
    O(n) build and each pays only for the picks it reads."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        eligible = _eligible(candidates)
        if not eligible:
            raise NoEligibleExecutor(
                f"none of {len(candidates)} candidates has a positive weight × availability")
        self._addresses = [address for address, _ in eligible]
        self._tree = _Fenwick([weight for _, weight in eligible])

    def order(self, inference_id: str, block_hash: bytes) -> Iterator[str]:
        """Every eligible address in draw order, computed pick by pick as it is read.

        ``block_hash`` must be 32 bytes (a CometBFT block hash): a fixed length keeps the
        seed's concatenation unambiguous, so no other (inference id, hash) pair gives the
        same seed.
        """
        if len(block_hash) != BLOCK_HASH_SIZE:
            raise ValueError(f"block_hash must be {BLOCK_HASH_SIZE} bytes, "
                             f"got {len(block_hash)}")
        return self._picks(hashlib.sha256(inference_id.encode() + block_hash).digest())

    def _picks(self, seed: bytes) -> Iterator[str]:
        tree = self._tree.copy()
        for j in range(len(self._addresses)):
            digest = hashlib.sha256(seed + j.to_bytes(8, "big")).digest()
            index = tree.find(int.from_bytes(digest, "big") % tree.total)
            yield self._addresses[index]
            tree.remove(index)


def draw_order(inference_id: str, block_hash: bytes, candidates: Sequence[Candidate]) -> list[str]:
    """Every eligible address in draw order: the executor first, then the TA's fallbacks."""
    return list(DrawPool(candidates).order(inference_id, block_hash))


def _eligible(candidates: Sequence[Candidate]) -> list[tuple[str, int]]:
    """(address, effective weight) of each eligible candidate, sorted by address."""
    seen = set()
    eligible = []
    for c in candidates:
        if c.address in seen:
            raise ValueError(f"candidate {c.address} is listed twice")
        seen.add(c.address)
        if c.weight < 0:
            raise ValueError(f"candidate {c.address} has negative weight {c.weight}")
        if not 0 <= c.availability_ppm <= PPM:
            raise ValueError(f"candidate {c.address} has availability {c.availability_ppm} ppm, "
                             f"outside [0, {PPM}]")
        if c.weight * c.availability_ppm > 0:
            eligible.append((c.address, c.weight * c.availability_ppm))
    return sorted(eligible)


class _Fenwick:
    """Prefix sums of weights with O(log n) removal and O(log n) search by cumulative weight."""

    def __init__(self, weights: list[int]) -> None:
        self.size = len(weights)
        self.weights = list(weights)
        self.tree = [0, *weights]
        for i in range(1, self.size + 1):
            parent = i + (i & -i)
            if parent <= self.size:
                self.tree[parent] += self.tree[i]
        self.total = sum(weights)

    def copy(self) -> "_Fenwick":
        """An independent tree to remove picks from; list copies run at C speed, far below
        the Python loop that builds a tree."""
        twin = _Fenwick.__new__(_Fenwick)
        twin.size, twin.weights, twin.tree, twin.total = \
            self.size, list(self.weights), list(self.tree), self.total
        return twin

    def find(self, target: int) -> int:
        """The index whose cumulative range [before, before + weight) contains target."""
        position = 0
        step = 1 << self.size.bit_length()
        while step:
            following = position + step
            if following <= self.size and self.tree[following] <= target:
                position = following
                target -= self.tree[following]
            step >>= 1
        return position  # 1-based prefix end before the hit, i.e. the hit's 0-based index

    def remove(self, index: int) -> None:
        weight = self.weights[index]
        self.weights[index] = 0
        self.total -= weight
        i = index + 1
        while i <= self.size:
            self.tree[i] -= weight
            i += i & -i
