"""The validator's side: Score a record with the honest fp32 CPU engine, compute Figures.

Goes through ``apinode.validation.figures`` (``ended_properly``, ``measure``) exactly as the
validator worker does, so the calibrated thresholds apply to the figures the chain judges.
Violations are counted at several tolerances from one Score, so the tolerances (one for greedy
inferences, one for sampled ones) can be chosen from the data.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from apinode.validation.figures import ended_properly, measure
from bench.detection.workload import Record, progress
from mlnode.engine import InvalidRequest
from mlnode.torch_engine import TorchEngine

TOLERANCES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


@dataclass(frozen=True)
class Result:
    """One record's figures; ``violations[i]`` is the count at ``TOLERANCES[i]``."""

    scenario: str
    length: int
    temperature: float
    ids_match: bool
    distance: float
    positions: int
    violations: tuple[int, ...]

    @classmethod
    def from_json(cls, data: dict) -> "Result":
        """A result as ``dataclasses.asdict`` saved it (``--save-results``)."""
        return cls(**dict(data, violations=tuple(data["violations"])))

    def counted(self, greedy_tolerance: float, sampled_tolerance: float) -> int:
        """Violations at the tolerance for this inference's decoding: a greedy inference is
        judged by the argmax gap (nats), a sampled one by the CDF interval (probability), and
        an inference is one or the other as a whole."""
        tolerance = greedy_tolerance if self.temperature == 0 else sampled_tolerance
        return self.violations[TOLERANCES.index(tolerance)]

    def excess(self, greedy_tolerance: float, sampled_tolerance: float, per_1024: int) -> int:
        """Violations beyond the length allowance ``per_1024 * positions // 1024`` (may be
        negative): the inference fails the rule part when this exceeds V. Integer arithmetic,
        as the chain's verdict must be deterministic."""
        return (self.counted(greedy_tolerance, sampled_tolerance)
                - per_1024 * self.positions // 1024)

    def fails(self, distance: float, greedy_tolerance: float, sampled_tolerance: float,
              allowed: int, per_1024: int) -> bool:
        """The rule, and its only home: fail = ids mismatch, or distance > D, or violations
        (at Tg if greedy, Ts if sampled) > V + P * positions // 1024. Allowing violations in
        proportion to the length lets V stay small for short outputs, where a few forged tokens
        are the whole cheat, without failing long honest half-precision outputs."""
        return (not self.ids_match or self.distance > distance
                or self.excess(greedy_tolerance, sampled_tolerance, per_1024) > allowed)


async def check(validator: TorchEngine, record: Record) -> Result:
    sampling = record.sampling
    mismatch = Result(record.scenario, record.length, sampling.temperature, False, 0.0,
                      len(record.output_ids), (0,) * len(TOLERANCES))
    if not record.output_ids:
        return mismatch
    try:
        scored = await validator.score(record.prompt_ids, record.output_ids,
                                       validator.info.max_top_logprobs, sampling)
    except InvalidRequest:
        return mismatch
    pieces = [validator.tokenizer.decode([t]) for t in record.output_ids]
    ended = ended_properly(record.output_ids, sampling.max_tokens,
                           {validator.info.eos_token_id}, pieces, sampling.stop)
    figures = [measure(record.steps, record.output_ids, scored, greedy=sampling.greedy,
                       ended=ended, tolerance=t) for t in TOLERANCES]
    return Result(record.scenario, record.length, sampling.temperature, figures[0].ids_match,
                  figures[0].distance, figures[0].positions,
                  tuple(f.rule_violations for f in figures))


async def check_all(validator: TorchEngine, records: Sequence[Record]) -> list[Result]:
    """Scores one at a time, as a validator would (the engine runs score jobs serially)."""
    results = []
    for index, record in enumerate(records, 1):
        results.append(await check(validator, record))
        if index % 200 == 0 or index == len(records):
            progress(f"scored {index}/{len(records)}")
    return results
