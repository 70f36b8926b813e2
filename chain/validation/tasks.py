"""A finished inference's life in the validation module (docs/design.md §6).

finished → task OPEN: members seal their reports for ``validation_window_blocks``, then open
them for ``opening_blocks``, so no report can be seen, and copied, before all are fixed. An
opened passing report marks the inference VALIDATED, a failing one opens a vote (VOTING)
among ``voters_per_vote`` members drawn from the random value of the window's first opening
height, the only members who seal reports from then on (ballots, sealed and opened the same
way); their median, one ballot each (a silent voter keeps the output), decides PASSED
(VALIDATED) or FAILED (INVALIDATED: the developer is refunded from the executor's earnings,
the executor's invalid counters rise and may make it INVALID for the epoch). A window that
closes with reports is PASSED; with none, UNCHECKED. A report the vote went against costs
its reporter a reputation step and its part of the validator fee. A failing report opens the
vote only with its reporter's vote bond, settled by the reporter's seed: returned at the
reveal if the seed assigned it the check, burned (and its reputation reset) if not or if it
never reveals. A claimed canary's fresh vote closes PASSED without its voters once every
member whose report failed the shifted artifact opened its scores and they pass the real one.
"""

import hmac
import logging

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.inference import artifact
from chain.inference.draw import Candidate, draw_order
from chain.inference.keeper import ESCROW_ACCOUNT, invalid_now
from chain.scales import PPM
from chain.validation import canary, evidence, logprob_scores
from chain.validation.errors import (
    BadCanary,
    BadFigures,
    BadSeal,
    DuplicateValidation,
    NotAllowed,
    NoVoteBond,
    WindowClosed,
)
from chain.validation.expected_keepers import BankKeeper, EpochKeeper, InferenceKeeper
from chain.validation.keeper import BOND_ACCOUNT, ValidationKeeper
from chain.validation.params import ValidationParams
from chain.validation.sampling import CheckShares, check_probability_ppm, expected_checks_ppm
from chain.validation.seals import (
    scores_open_until,
    scores_openers,
    window_opening_height,
    window_openings_over,
)
from chain.validation.verdict import (
    allowed_violations,
    passes,
    threshold_micro,
    vote_upholds_failure,
)
from inferchain_pb.inference.v1.inference_pb2 import (
    FINISHED,
    INVALIDATED,
    VALIDATED,
    VOTING,
    Inference,
    Model,
)
from inferchain_pb.inference.v1.validation_pb2 import (
    FAILED,
    IN_VOTE,
    OPEN,
    PASSED,
    UNCHECKED,
    EpochMembers,
    ExecutorStats,
    ValidationReport,
    ValidationTask,
    VoteBond,
)

log = logging.getLogger(__name__)


class Tasks:
    def __init__(self, keeper: ValidationKeeper, inference: InferenceKeeper, bank: BankKeeper,
                 epochs: EpochKeeper) -> None:
        self.keeper = keeper
        self.inference = inference
        self.bank = bank
        self.epochs = epochs

    def on_finished(self, ctx: Context, finished: Inference) -> None:
        """Opens the task of a just-charged inference."""
        self._open(ctx, finished, self.keeper.params(ctx.kv))

    def _open(self, ctx: Context, inference: Inference,
              params: ValidationParams) -> ValidationTask:
        reputation = self.keeper.stats(ctx.kv, inference.executor).reputation_ppm
        p_ppm = check_probability_ppm(reputation, params.p_min_ppm, params.p_max_ppm)
        task = ValidationTask(
            inference_id=inference.id, model_id=inference.model_id,
            executor=inference.executor, epoch=self.epochs.epoch_of(ctx.kv, ctx.block.height),
            p_ppm=p_ppm,
            expected_checks_ppm=expected_checks_ppm(p_ppm, params.max_expected_checks_ppm),
            finish_height=ctx.block.height,
            deadline=ctx.block.height + params.validation_window_blocks, state=OPEN,
            open_until=ctx.block.height + params.validation_window_blocks +
            params.opening_blocks,
            positions=len(inference.output_ids),
            draw_epoch=self.epochs.epoch_of(ctx.kv, max(1, inference.draw_height)),
            canary_rate_ppm=params.canary_rate_ppm)
        self.keeper.add_task(ctx.kv, task)
        return task

    def _vote_value(self, ctx: Context, task: ValidationTask) -> bytes:
        """The random value a vote on ``task`` draws its voters from: that of the window's
        first opening height, made after every window report was sealed and fixed however
        the window's reports are opened. The opening that opens a vote and a canary's claim
        land at heights their senders pick within a period; were the draw to read that
        block's value, a coalition whose members propose blocks in the period could hold the
        opening for one whose value (known to its proposer in advance, docs/design.md §2.7)
        gave it the seats. CheckTx and simulations run on a block not yet made, which may
        be that height: they use the last value (what they decide is thrown away)."""
        height = window_opening_height(task)
        value = self.keeper.block_value(ctx.kv, height)
        if value is not None:
            return value
        if height < ctx.block.height:
            log.warning("vote on %s: the value of height %d is no longer kept (the validation "
                        "params changed since its window); drawing from this block's",
                        task.inference_id, height)
        return self.inference.block_hash(ctx.kv, ctx.block.height) or \
            self.inference.block_hash(ctx.kv, ctx.block.height - 1)

    def report(self, ctx: Context, task: ValidationTask, report: ValidationReport) -> None:
        """Adds a validator's report and moves the task (and its inference) on."""
        params = self.keeper.params(ctx.kv)
        model = self.inference.model(ctx.kv, task.model_id)
        report.passed = passes(report, _allowed(model, task), threshold_micro(model))
        task.reports.append(report)
        if task.state == OPEN and report.passed:
            self._set_status(ctx, task.inference_id, VALIDATED, only_from_finished=True)
        elif task.state == OPEN:
            self._bond_opener(ctx, task, report.validator, params)
            self._open_vote(ctx, task, params)
        self.keeper.set_task(ctx.kv, task)
        if task.state == OPEN and window_openings_over(task):
            self.close_window(ctx, task)  # every member that checks the model has reported
        elif task.state == IN_VOTE and set(task.voters) <= {r.validator for r in task.reports}:
            self._close_early(ctx, task, params)  # every drawn voter has reported

    def _close_early(self, ctx: Context, task: ValidationTask, params: ValidationParams) -> None:
        """Tallies a vote all its voters answered, except while the window's seals may still
        be opened, its executor may still claim it as a canary, or a claimed canary's
        checkers may still open their scores: then the vote closes when those periods end,
        so a vote on a shifted artifact cannot invalidate the inference before the claim
        lands, nor one leave a window report or a checker's scores unopened."""
        openings_end = 0 if window_openings_over(task) else task.open_until + 1
        scores_end = scores_open_until(task, params.canary_claim_blocks) + 1 \
            if scores_openers(task) else 0
        hold = max(self._claim_until(task, params), openings_end, scores_end)
        if ctx.block.height >= hold:
            self.tally(ctx, task)
        elif task.vote_open_until > hold:
            self.keeper.close_vote(ctx.kv, task)
            task.vote_deadline = min(task.vote_deadline, hold)  # every voter has reported
            task.vote_open_until = hold
            self.keeper.open_vote(ctx.kv, task)
            self.keeper.set_task(ctx.kv, task)

    @staticmethod
    def _claim_until(task: ValidationTask, params: ValidationParams) -> int:
        """The last height the task's executor may claim it as a canary (0: it cannot)."""
        if not task.canary_rate_ppm or task.canary_key:
            return 0
        return task.closed_height + params.canary_claim_blocks

    def claim_canary(self, ctx: Context, task: ValidationTask, canary_key: bytes) -> None:
        """The executor's claim that ``task``'s inference is a canary (docs/design.md §6.9).

        Taken once the task left OPEN and its window's seals were opened (a claim while
        validators may still report would tell them): after ``open_until``, or once every
        member that checks the model reported; then for ``canary_claim_blocks`` past
        ``closed_height``, which is never before ``open_until``. The key must win the task's
        canary lottery, and match the executor's seed if that is revealed (judging checks it
        otherwise). The real artifact (the recorded one shifted back)
        replaces the recorded one; the reports and voters so far, about the shifted artifact,
        are kept apart for judging; and where anyone checked it, a fresh vote re-scores the
        real artifact: it decides the executor's pay, and whether the canary was planted as
        claimed.
        """
        params = self.keeper.params(ctx.kv)
        if task.canary_key:
            raise BadCanary(f"inference {task.inference_id} was already claimed as a canary")
        if task.state == OPEN or (ctx.block.height <= task.open_until and
                                  not window_openings_over(task)):
            raise NotAllowed(f"inference {task.inference_id} is open to validators until "
                             f"height {task.open_until}: claim it as a canary after that")
        if task.state == FAILED or ctx.block.height > self._claim_until(task, params):
            raise WindowClosed(f"inference {task.inference_id} could be claimed as a canary "
                               f"until height {self._claim_until(task, params)}")
        if len(canary_key) != canary.KEY_BYTES or \
                not canary.is_canary(canary_key, task.canary_rate_ppm):
            raise BadCanary("the key does not make the inference a canary")
        commitment = self.keeper.commitment(ctx.kv, task.draw_epoch, task.executor)
        if commitment is not None and commitment.seed and \
                canary.key(commitment.seed, task.inference_id) != canary_key:
            raise BadCanary(f"the key is not the one {task.executor}'s revealed seed gives")
        inference = self.inference.inference(ctx.kv, task.inference_id)
        model = self.inference.model(ctx.kv, task.model_id)
        k, _ = artifact.token_ids(inference.artifact)
        real = canary.shift(inference.artifact, canary_key, canary.model_quanta(model, k))
        if real == inference.artifact:
            raise BadCanary("the canary shift moves nothing in this artifact: it is no canary")
        previous = Inference()
        previous.CopyFrom(inference)
        inference.artifact = real
        self.inference.save_inference(ctx.kv, inference, ctx.block.height, previous)
        if task.state == IN_VOTE:
            self.keeper.close_vote(ctx.kv, task)
        task.canary_key, task.canary_claim_height = canary_key, ctx.block.height
        task.canary_distance_micro = canary.distance_micro(real, previous.artifact)
        task.canary_reports.extend(task.reports)
        task.canary_voters.extend(task.voters)
        del task.reports[:]
        del task.voters[:]
        del task.seals[:]  # ballots on the shifted artifact, void with its vote
        ctx.emit("canary_claim", inference_id=task.inference_id, executor=task.executor)
        log.info("executor %s claimed inference %s as a canary (%d reports on it)",
                 task.executor, task.inference_id, len(task.canary_reports))
        if task.canary_reports:
            self._open_vote(ctx, task, params)
        self.keeper.set_task(ctx.kv, task)

    def open_scores(self, ctx: Context, task: ValidationTask, member: str,
                    data: bytes) -> None:
        """A member's scores of a claimed canary, opened against the real artifact
        (docs/design.md §6.9): taken from a member whose report before the claim failed the
        shifted artifact and committed their hash, from the claim for ``canary_claim_blocks``,
        once. The chain measures them as a re-score would (chain/validation/
        logprob_scores.py); the report it makes counts as that member's on the real artifact.
        Once every such member's passes and no ballot failed, the fresh vote closes PASSED:
        the checks that caught the shift vouch for the real artifact, and no voter re-scores
        an output whose verdict, for an honest executor, everyone could tell unread."""
        params = self.keeper.params(ctx.kv)
        last = scores_open_until(task, params.canary_claim_blocks)
        if task.state != IN_VOTE or ctx.block.height > last:
            raise WindowClosed(f"scores of {task.inference_id} are taken from its canary claim "
                               f"for {params.canary_claim_blocks} blocks while its vote runs")
        committed = next((r for r in task.canary_reports if r.validator == member
                          and not r.passed and r.scores_sha256), None)
        if committed is None:
            raise NotAllowed(f"{member} has no report that failed {task.inference_id}'s "
                             f"shifted artifact with its scores committed")
        if any(r.validator == member for r in task.reports):
            raise DuplicateValidation(f"{member} already reported on {task.inference_id}'s "
                                      f"real artifact")
        if not hmac.compare_digest(logprob_scores.digest(data), committed.scores_sha256):
            raise BadSeal(f"the scores are not those {member}'s report committed")
        inference = self.inference.inference(ctx.kv, task.inference_id)
        _, real = artifact.decode(inference.artifact)
        try:
            scores = logprob_scores.decode(data, real)
        except ValueError as exc:
            raise BadFigures(f"the scores do not fit the output: {exc}") from None
        model = self.inference.model(ctx.kv, task.model_id)
        report = ValidationReport(
            validator=member, distance_micro=round(logprob_scores.distance(real, scores) * PPM),
            rule_violations=committed.rule_violations, ids_match=committed.ids_match,
            height=ctx.block.height, weight=committed.weight,
            sealed_height=committed.sealed_height, scores_sha256=committed.scores_sha256,
            from_scores=True)
        report.passed = passes(report, _allowed(model, task), threshold_micro(model))
        task.reports.append(report)
        ctx.emit("canary_scores", inference_id=task.inference_id, validator=member,
                 passed=str(report.passed).lower(), distance_micro=str(report.distance_micro))
        opened = {r.validator for r in task.reports if r.from_scores}
        if scores_openers(task) <= opened and all(r.passed for r in task.reports):
            self._close_on_scores(ctx, task)
        else:
            self.keeper.set_task(ctx.kv, task)

    def _close_on_scores(self, ctx: Context, task: ValidationTask) -> None:
        """Closes a canary's fresh vote PASSED on its checkers' scores: the drawn voters owe
        nothing (their seals, if any, are void), and the fee share goes to the checkers."""
        self.keeper.close_vote(ctx.kv, task)
        del task.seals[:]
        task.state = PASSED
        self.keeper.set_task(ctx.kv, task)
        ctx.emit("validation_outcome", inference_id=task.inference_id, outcome="validated",
                 reports=str(len(task.reports)))
        log.info("canary %s (executor %s): the %d checks that failed its shifted artifact pass "
                 "the real one on their scores: VALIDATED without a vote", task.inference_id,
                 task.executor, len(task.reports))
        self._set_status(ctx, task.inference_id, VALIDATED)
        # A report failed before the claim, so a vote was open then and no pass was counted.
        self._count_pass(ctx, task)

    def _bond_opener(self, ctx: Context, task: ValidationTask, member: str,
                     params: ValidationParams) -> None:
        """A member opens a vote only on a check its seed gave it (docs/design.md §6.5). Once
        its seed is revealed the chain knows at once and refuses any other; before, the
        member locks ``vote_bond``, which the reveal returns or burns (``settle_bonds``), so
        every vote forced without an assignment costs its opener that much."""
        commitment = self.keeper.commitment(ctx.kv, task.epoch, member)
        if commitment is not None and commitment.seed:
            if not self._assigned(ctx, task, member, commitment.seed):
                raise NotAllowed(f"{member}'s revealed seed did not assign it "
                                 f"{task.inference_id}: its report opens no vote")
            return
        if not params.vote_bond:
            return
        raw = address.decode(member)
        if self.bank.balance(ctx.kv, raw, NATIVE_DENOM) < params.vote_bond:
            raise NoVoteBond(f"a failing report opens a vote with a bond of {params.vote_bond} "
                             f"ninfer, returned when the reveal shows the check assigned; "
                             f"{member} holds less")
        self.bank.send(ctx, raw, BOND_ACCOUNT, {NATIVE_DENOM: params.vote_bond})
        self.keeper.add_bond(ctx.kv, VoteBond(member=member, epoch=task.epoch,
                                              inference_id=task.inference_id,
                                              amount=params.vote_bond))
        ctx.emit("vote_bond", inference_id=task.inference_id, validator=member,
                 amount=str(params.vote_bond))

    def _assigned(self, ctx: Context, task: ValidationTask, member: str, seed: bytes) -> bool:
        """Whether ``seed`` gave ``member`` the check of ``task`` (chain/validation/sampling.py),
        by the weights judging uses."""
        members = self.keeper.members(ctx.kv, task.epoch) or EpochMembers()
        return CheckShares(members).owes(seed, task, member)

    def settle_bonds(self, ctx: Context, epoch: int, member: str, seed: bytes) -> None:
        """At ``member``'s reveal: each bond of a vote opened by a report its seed assigned
        it comes back; each other one is burned and the member's reputation drops to 0 at
        once. Being drawn for the vote later excuses nothing: the report was sealed in the
        window, before any vote, as judging counts it."""
        for bond in self.keeper.bonds(ctx.kv, epoch, member):
            task = self.keeper.task(ctx.kv, bond.inference_id)
            self.keeper.drop_bond(ctx.kv, bond)
            if task is not None and self._assigned(ctx, task, member, seed):
                self.bank.send(ctx, BOND_ACCOUNT, address.decode(member),
                               {NATIVE_DENOM: bond.amount})
                ctx.emit("vote_bond_returned", inference_id=bond.inference_id,
                         validator=member, amount=str(bond.amount))
                continue
            self._forfeit(ctx, bond, "its seed did not assign it the check")
            stats = self.keeper.stats(ctx.kv, member)
            stats.reputation_ppm = 0
            self.keeper.set_stats(ctx.kv, stats)

    def forfeit_bonds(self, ctx: Context, epoch: int) -> None:
        """Once ``epoch`` is judged, the bonds of members that never revealed are burned."""
        for bond in self.keeper.bonds(ctx.kv, epoch):
            self.keeper.drop_bond(ctx.kv, bond)
            self._forfeit(ctx, bond, "it never revealed its seed")

    def _forfeit(self, ctx: Context, bond: VoteBond, why: str) -> None:
        self.bank.burn(ctx.kv, BOND_ACCOUNT, {NATIVE_DENOM: bond.amount})
        ctx.emit("vote_bond_burned", inference_id=bond.inference_id, validator=bond.member,
                 amount=str(bond.amount))
        log.warning("validator %s forfeits its bond of %d ninfer for the vote it opened on %s: "
                    "%s", bond.member, bond.amount, bond.inference_id, why)

    def _open_vote(self, ctx: Context, task: ValidationTask, params: ValidationParams) -> None:
        members = self.keeper.members(ctx.kv, task.epoch) or EpochMembers()
        # Only members serving the model can re-score it.
        candidates = [Candidate(address, weight, PPM)
                      for address, weight in CheckShares(members).checkers(task).items()]
        draw = task.inference_id + ("/canary-vote" if task.canary_key else "/vote")
        voters = draw_order(draw, self._vote_value(ctx, task), candidates) \
            if candidates else []
        task.voters.extend(voters[:params.voters_per_vote])
        task.state = IN_VOTE
        task.closed_height = task.closed_height or max(ctx.block.height, task.open_until)
        # A vote on an artifact its executor may still claim as a canary outlasts the claim.
        task.vote_deadline = max(ctx.block.height + params.voting_period_blocks,
                                 self._claim_until(task, params))
        task.vote_open_until = task.vote_deadline + params.opening_blocks
        self.keeper.close_window(ctx.kv, task)
        self.keeper.open_vote(ctx.kv, task)
        self._set_status(ctx, task.inference_id, VOTING)
        ctx.emit("validation_vote", inference_id=task.inference_id,
                 voters=",".join(task.voters), deadline=str(task.vote_deadline))
        log.info("inference %s failed a validation; vote among %s until height %d",
                 task.inference_id, ", ".join(task.voters), task.vote_deadline)

    def summarize(self, ctx: Context, task: ValidationTask) -> None:
        """Cuts a closed task's inference to its summary and forgets the task
        (chain/validation/summaries.py)."""
        self.inference.summarize(ctx.kv, task.inference_id, len(task.reports),
                                 ctx.block.height)
        self.keeper.drop_task(ctx.kv, task)

    def tally(self, ctx: Context, task: ValidationTask) -> None:
        """Closes a vote: voters who did not report are recorded, the drawn voters' median
        decides, and the reports it went against are charged."""
        params = self.keeper.params(ctx.kv)
        model = self.inference.model(ctx.kv, task.model_id)
        reported = {r.validator for r in task.reports}
        # A claimed canary's checker that failed it and never opened its scores left its
        # vote to the voters' re-scores: that counts as a vote missed.
        for voter in sorted(set(task.voters) | scores_openers(task)):
            if voter not in reported:
                record = self.keeper.record(ctx.kv, task.epoch, voter)
                record.missed_votes += 1
                self.keeper.set_record(ctx.kv, record)
        self.keeper.close_vote(ctx.kv, task)
        del task.seals[:]  # never opened: checks not made
        ballots = self._ballots(task)
        failed = bool(ballots) and vote_upholds_failure(ballots, _allowed(model, task),
                                                        threshold_micro(model))
        task.state = FAILED if failed else PASSED
        self.keeper.set_task(ctx.kv, task)
        self._charge_dissent(ctx, task, params, failed)
        ctx.emit("validation_outcome", inference_id=task.inference_id,
                 outcome="invalidated" if failed else "validated",
                 reports=str(len(task.reports)))
        log.info("vote on inference %s (executor %s): %s by %d reports", task.inference_id,
                 task.executor, "INVALIDATED" if failed else "VALIDATED", len(task.reports))
        if failed:
            self._invalidate(ctx, task, params)
            return
        self._set_status(ctx, task.inference_id, VALIDATED)
        if not (task.canary_key and not task.canary_voters):
            self._count_pass(ctx, task)  # a canary claimed after its window was counted then

    def _ballots(self, task: ValidationTask) -> list[ValidationReport]:
        """What the vote counts: one ballot per drawn voter, its report or, if it stayed
        silent, a passing one (silence keeps the output). The draw already weighs members by
        weight; weighing the drawn voters again would let one heavy member that is drawn
        outvote the other two, so each counts once (docs/design.md §6.5)."""
        reports = {r.validator: r for r in task.reports}
        ballots = []
        for voter in task.voters:
            ballot = ValidationReport(validator=voter, ids_match=True)
            if voter in reports:
                ballot.CopyFrom(reports[voter])
            ballot.weight = 1
            ballots.append(ballot)
        return ballots

    def _charge_dissent(self, ctx: Context, task: ValidationTask, params: ValidationParams,
                        failed: bool) -> None:
        """A report the vote went against costs its reporter a reputation step at once and
        is counted in its epoch record (no clean-epoch step up); it earns no part of the
        validator fee either (``_share_fee`` pays the reports that agree)."""
        for report in task.reports:
            if report.passed != failed:
                continue
            stats = self.keeper.stats(ctx.kv, report.validator)
            stats.reputation_ppm = max(0, stats.reputation_ppm - params.reputation_step_ppm)
            self.keeper.set_stats(ctx.kv, stats)
            record = self.keeper.record(ctx.kv, task.epoch, report.validator)
            record.votes_against += 1
            self.keeper.set_record(ctx.kv, record)
            ctx.emit("vote_against", inference_id=task.inference_id,
                     validator=report.validator, reputation_ppm=str(stats.reputation_ppm))

    def close_window(self, ctx: Context, task: ValidationTask) -> None:
        self.keeper.close_window(ctx.kv, task)
        task.state = PASSED if task.reports else UNCHECKED
        # A window every checker reported in closes before open_until; a canary claim still
        # waits for open_until and has canary_claim_blocks from there, as after any window.
        task.closed_height = max(ctx.block.height, task.open_until)
        del task.seals[:]  # never opened: checks not made
        self.keeper.set_task(ctx.kv, task)
        if task.reports:
            self._count_pass(ctx, task)

    def _count_pass(self, ctx: Context, task: ValidationTask) -> None:
        stats = self.keeper.stats(ctx.kv, task.executor)
        stats.epoch_passed += 1
        stats.consecutive_invalidations = 0
        self.keeper.set_stats(ctx.kv, stats)
        self._share_fee(ctx, task)
        self._add_evidence(ctx, task)

    def _add_evidence(self, ctx: Context, task: ValidationTask) -> None:
        """Adds a passed check to its executor's evidence for the task's epoch: the sums of
        the figures, and one round of the sequential test's bets (chain/validation/
        evidence.py). Each figure is the lower median of the reports', so one lying report
        among several moves nothing, and an INVALID participant's reports are no evidence.
        Crossing makes the executor INVALID for the epoch, as enough invalidations would."""
        matched = [r for r in task.reports
                   if r.ids_match and not self._invalid_now(ctx, r.validator)]
        if not matched:
            return
        middle = (len(matched) - 1) // 2
        distance = sorted(r.distance_micro for r in matched)[middle]
        violations = sorted(r.rule_violations for r in matched)[middle]
        model = self.inference.model(ctx.kv, task.model_id)
        record = self.keeper.record(ctx.kv, task.epoch, task.executor)
        record.evidence_checks += 1
        record.evidence_distance_micro += distance
        record.evidence_violations += violations
        record.evidence_positions += task.positions
        if not record.evidence_crossed:
            record.evidence_wealth = evidence.bet(
                record.evidence_wealth or evidence.WEALTH_ONE, distance,
                model.reference_distance_micro, threshold_micro(model), model.evidence_bet_ppm)
            if model.reference_violations_ppm and model.violation_bet_ppm:
                record.evidence_violation_wealth = evidence.bet_violations(
                    record.evidence_violation_wealth or evidence.WEALTH_ONE, violations,
                    task.positions, model.reference_violations_ppm, model.violation_bet_ppm)
            alpha_ppm = self.keeper.params(ctx.kv).evidence_alpha_ppm
            bets = max(1, running_bets(model))
            record.evidence_crossed = any(
                evidence.crossed(wealth, alpha_ppm, bets)
                for wealth in (record.evidence_wealth, record.evidence_violation_wealth))
        self.keeper.set_record(ctx.kv, record)
        if record.evidence_crossed and not record.invalid:
            log.warning("executor %s: its evidence crossed the line after %d checks of epoch "
                        "%d (mean distance %d micro-nats, reference %d; %d violations in %d "
                        "positions, reference %d ppm)", task.executor, record.evidence_checks,
                        task.epoch, record.evidence_distance_micro // record.evidence_checks,
                        model.reference_distance_micro, record.evidence_violations,
                        record.evidence_positions, model.reference_violations_ppm)
            self._make_invalid(ctx, task.executor, task.epoch, "evidence")

    def _share_fee(self, ctx: Context, task: ValidationTask) -> None:
        """Moves ``validator_fee_share_ppm`` of a validated inference's fee from the executor's
        earnings to the validators whose checks passed it, in equal parts, in the epoch the
        fee was earned (docs/design.md §7.5: work coins are fees earned executing and
        validating)."""
        checkers = [r.validator for r in task.reports if r.passed]
        share_ppm = self.epochs.params(ctx.kv).validator_fee_share_ppm
        inference = self.inference.inference(ctx.kv, task.inference_id)
        executor_raw = address.decode(task.executor)
        pool = min(inference.cost * share_ppm // PPM,
                   self.inference.work_at(ctx.kv, task.finish_height, executor_raw))
        each = pool // len(checkers) if checkers else 0
        if not each:
            return
        self.inference.add_work(ctx.kv, task.finish_height, executor_raw, -each * len(checkers))
        for validator in checkers:
            self.inference.add_work(ctx.kv, task.finish_height, address.decode(validator), each)
        ctx.emit("validator_fee", inference_id=task.inference_id, validators=",".join(checkers),
                 each=str(each))

    def _invalidate(self, ctx: Context, task: ValidationTask, params: ValidationParams) -> None:
        """Refunds the developer from the executor's earnings and counts it against it."""
        inference = self._set_status(ctx, task.inference_id, INVALIDATED)
        executor_raw = address.decode(task.executor)
        refund = min(inference.cost,
                     self.inference.work_at(ctx.kv, task.finish_height, executor_raw))
        if refund:
            developer = address.decode(inference.developer)
            self.inference.add_work(ctx.kv, task.finish_height, executor_raw, -refund)
            self.bank.send(ctx, ESCROW_ACCOUNT, developer, {NATIVE_DENOM: refund})
            if inference.via_allowance:
                agent = address.decode(inference.transfer_agent)
                self.inference.set_allowance(
                    ctx.kv, developer, agent,
                    self.inference.allowance(ctx.kv, developer, agent) + refund)
        ctx.emit("invalidate_inference", inference_id=task.inference_id,
                 executor=task.executor, refund=str(refund))
        stats = self.keeper.stats(ctx.kv, task.executor)
        stats.invalidations += 1
        stats.consecutive_invalidations += 1
        stats.epoch_invalidations += 1
        self.keeper.set_stats(ctx.kv, stats)
        if invalid_by_invalidations(stats, params):
            self._make_invalid(ctx, task.executor, self.epochs.epoch_of(
                ctx.kv, ctx.block.height), f"{stats.epoch_invalidations} invalidations "
                f"({stats.consecutive_invalidations} in a row)")

    def _invalid_now(self, ctx: Context, address: str) -> bool:
        participant = self.inference.participant(ctx.kv, address)
        return participant is not None and invalid_now(participant)

    def _make_invalid(self, ctx: Context, executor: str, epoch: int, reason: str) -> None:
        """INVALID from this block (no routing) and for ``epoch`` (no rewards)."""
        record = self.keeper.record(ctx.kv, epoch, executor)
        record.invalid = True
        self.keeper.set_record(ctx.kv, record)
        participant = self.inference.participant(ctx.kv, executor)
        if participant is None or invalid_now(participant):
            return
        participant.invalid_since, participant.invalid_until = ctx.block.height, 0
        self.inference.set_participant(ctx.kv, participant)
        ctx.emit("participant_invalid", participant=executor, epoch=str(epoch), reason=reason)
        log.warning("participant %s is INVALID for epoch %d: %s", executor, epoch, reason)

    def _set_status(self, ctx: Context, inference_id: str, status: int,
                    only_from_finished: bool = False) -> Inference:
        inference = self.inference.inference(ctx.kv, inference_id)
        if only_from_finished and inference.status != FINISHED:
            return inference
        previous = Inference()
        previous.CopyFrom(inference)
        inference.status = status
        self.inference.save_inference(ctx.kv, inference, ctx.block.height, previous)
        return inference


def _allowed(model: Model, task: ValidationTask) -> int:
    return allowed_violations(model.max_rule_violations, model.rule_violations_per_1024,
                              task.positions)


def running_bets(model: Model) -> int:
    """How many of the evidence test's bets a model's registry entry turns on."""
    return (bool(model.reference_distance_micro and model.evidence_bet_ppm)
            + bool(model.reference_violations_ppm and model.violation_bet_ppm))


def invalid_by_invalidations(stats: ExecutorStats, params: ValidationParams) -> bool:
    """Whether an executor's invalidations make it INVALID for the epoch: enough in a row, or
    enough of them at a high enough share of its checks. Public for the participant-epoch
    detection bench (bench/detection/epochs.py), which plays this rule, not a copy of it."""
    if stats.consecutive_invalidations >= params.invalid_after_consecutive:
        return True
    checked = stats.epoch_invalidations + stats.epoch_passed
    return stats.epoch_invalidations >= params.invalid_min_count and \
        stats.epoch_invalidations * PPM >= checked * params.invalid_rate_ppm
