"""What gov does at the end of every block: close deposit periods and voting periods.

A passed proposal executes here, inside FinalizeBlock, so its changes are in force from the
next block. Its content messages run on a branch of the block's state that is written only
if every one of them succeeds: a failing one leaves the state as it was and the proposal
FAILED. Deposits go back to the depositors, except when the vote was vetoed or the deposit
period ended below min_deposit: then they are burned, which is what makes spam cost.
"""

import logging

from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.errors import ChainError
from chain.gas import GasKV
from chain.gov.content import Contents
from chain.gov.expected_keepers import BankKeeper
from chain.gov.keeper import GOV_ACCOUNT, GovKeeper
from chain.gov.tally import Verdict, VotingPower, verdict
from inferchain_pb.inference.v1.gov_pb2 import (
    PROPOSAL_STATUS_DEPOSIT_PERIOD,
    PROPOSAL_STATUS_FAILED,
    PROPOSAL_STATUS_PASSED,
    PROPOSAL_STATUS_REJECTED,
    PROPOSAL_STATUS_VOTING_PERIOD,
    Proposal,
    TallyResult,
)

log = logging.getLogger(__name__)


class GovBlocks:
    def __init__(self, keeper: GovKeeper, bank: BankKeeper, contents: Contents,
                 power: VotingPower) -> None:
        self._keeper = keeper
        self._bank = bank
        self._contents = contents
        self._power = power

    def end_block(self, ctx: Context) -> None:
        height = ctx.block.height
        for proposal_id in self._keeper.deposit_ends_due(ctx.kv, height):
            proposal = self._keeper.proposal(ctx.kv, proposal_id)
            if proposal.status == PROPOSAL_STATUS_DEPOSIT_PERIOD:
                self._end(ctx, proposal, PROPOSAL_STATUS_REJECTED,
                          "deposit period ended below min_deposit", refund=False)
        for proposal_id in self._keeper.voting_ends_due(ctx.kv, height):
            proposal = self._keeper.proposal(ctx.kv, proposal_id)
            if proposal.status == PROPOSAL_STATUS_VOTING_PERIOD:
                self._close_vote(ctx, proposal)

    def _close_vote(self, ctx: Context, proposal: Proposal) -> None:
        tally = self._power.tally(ctx.kv, ctx.block.height, proposal.id)
        outcome = verdict(tally, self._keeper.params(ctx.kv))
        if outcome is not Verdict.PASSED:
            self._end(ctx, proposal, PROPOSAL_STATUS_REJECTED, outcome.value,
                      refund=outcome is not Verdict.VETOED, tally=tally)
            return
        error = self._execute(ctx, proposal)
        if error:
            self._end(ctx, proposal, PROPOSAL_STATUS_FAILED, f"execution failed: {error}",
                      refund=True, tally=tally)
        else:
            self._end(ctx, proposal, PROPOSAL_STATUS_PASSED, outcome.value, refund=True,
                      tally=tally)

    def _execute(self, ctx: Context, proposal: Proposal) -> str:
        """Runs the contents on a branch kept only if all succeed; the error, or ''."""
        branch = ctx.kv.state.branch()
        run = Context(ctx.block, GasKV(branch, ctx.kv.meter))
        try:
            self._contents.apply_all(run, proposal.messages, proposal.id)
        except ChainError as exc:
            return exc.message
        except Exception as exc:  # a bug in a handler fails the proposal, never the chain
            log.exception("proposal %d failed with an internal error", proposal.id)
            return f"internal error: {type(exc).__name__}"
        branch.write()
        ctx.events.extend(run.events)
        return ""

    def _end(self, ctx: Context, proposal: Proposal, status: int, result: str, refund: bool,
             tally: TallyResult | None = None) -> None:
        """Records the outcome, and refunds or burns every deposit of the proposal."""
        previous = Proposal()
        previous.CopyFrom(proposal)
        if tally is not None:
            proposal.final_tally.CopyFrom(tally)
        if refund:
            for deposit in self._keeper.deposits(ctx.kv, proposal.id):
                self._bank.send(ctx, GOV_ACCOUNT, address.decode(deposit.depositor),
                                {NATIVE_DENOM: deposit.amount})
        elif proposal.total_deposit:
            self._bank.burn(ctx.kv, GOV_ACCOUNT, {NATIVE_DENOM: proposal.total_deposit})
        proposal.status, proposal.result, proposal.deposits_refunded = status, result, refund
        self._keeper.save(ctx.kv, proposal, previous)
        final = proposal.final_tally
        ctx.emit("proposal_ended", proposal_id=str(proposal.id), status=str(status),
                 result=result, deposits="refunded" if refund else "burned",
                 yes=str(final.yes), no=str(final.no), abstain=str(final.abstain),
                 no_with_veto=str(final.no_with_veto), total_power=str(final.total_power))
        log.info("proposal %d ended: %s (deposits %s)", proposal.id, result,
                 "refunded" if refund else "burned")

