"""When a sealed report may be opened (docs/design.md §6.3): one rule for the chain, which
refuses an opening at any other height, and for validators, which hold their openings until
then."""

from inferchain_pb.inference.v1.validation_pb2 import ReportSeal, ValidationTask


def sealed_or_reported(task: ValidationTask) -> set[str]:
    """The members whose report on the task is fixed: sealed, or already opened."""
    return {s.validator for s in task.seals} | {r.validator for r in task.reports}


def ballots_sealed(task: ValidationTask) -> bool:
    """Whether every drawn voter of the task's vote has sealed or reported: nobody is left to
    copy a ballot, so the ballots open at once."""
    return set(task.voters) <= sealed_or_reported(task)


def window_openings_over(task: ValidationTask) -> bool:
    """Whether no window report can come any more before ``open_until``: every member that
    checks the model sealed (``window_sealed_height``) and every window seal was opened."""
    return bool(task.window_sealed_height) and \
        not any(s.height <= task.deadline for s in task.seals)


def window_opening_height(task: ValidationTask) -> int:
    """The first height the window's seals open at: the block after its sealing ended (its
    deadline, or the block in which every member that checks the model had sealed). No
    window report can be sealed from then on."""
    return task.window_sealed_height + 1 if task.window_sealed_height else task.deadline + 1


def opening_heights(task: ValidationTask, seal: ReportSeal) -> tuple[int, int]:
    """The first and last heights ``seal`` opens at: a window's seal once the window's
    sealing ended or every member that checks the model sealed, until ``open_until``; a
    ballot once the vote's sealing ended or every drawn voter sealed, until
    ``vote_open_until``."""
    if seal.height <= task.deadline:
        return window_opening_height(task), task.open_until
    first = seal.height + 1 if ballots_sealed(task) else task.vote_deadline + 1
    return first, task.vote_open_until


def scores_openers(task: ValidationTask) -> set[str]:
    """The members that open their scores of a claimed canary (docs/design.md §6.9): those
    whose report before the claim failed the shifted artifact and committed its scores."""
    return {r.validator for r in task.canary_reports if not r.passed and r.scores_sha256}


def scores_open_until(task: ValidationTask, claim_blocks: int) -> int:
    """The last height a claimed canary's scores are opened at (0: not claimed): the claim's
    height + ``canary_claim_blocks``. The fresh vote's voters wait for it before they
    re-score: a vote the scores settle needs none of them."""
    return task.canary_claim_height + claim_blocks if task.canary_key else 0


def awaits_scores(task: ValidationTask, height: int, claim_blocks: int) -> bool:
    """Whether a voter drawn for ``task``'s vote holds its ballot at ``height``: the vote is
    a claimed canary's that its checkers' scores may still settle, and a voter that
    re-scored now would pay for a ballot nobody needs. (A checker drawn as a voter has its
    measured scores for its ballot; the chain lists it no more once they landed.)"""
    return bool(scores_openers(task)) and height <= scores_open_until(task, claim_blocks)
