"""Gov messages: submitting a proposal, adding to its deposit, voting on it."""


from chain.auth import address
from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.gas import GasKV
from chain.gov.content import Contents
from chain.gov.errors import (
    DepositTooSmall,
    InvalidProposal,
    InvalidVote,
    NotDepositPeriod,
    NotVotingPeriod,
    NoVotingPower,
    ProposalNotFound,
)
from chain.gov.expected_keepers import BankKeeper
from chain.gov.keeper import GOV_ACCOUNT, GovKeeper
from chain.gov.params import GovParams
from chain.gov.tally import FIELD, VotingPower
from inferchain_pb.inference.v1.gov_pb2 import (
    PROPOSAL_STATUS_DEPOSIT_PERIOD,
    PROPOSAL_STATUS_VOTING_PERIOD,
    MsgDeposit,
    MsgSubmitProposal,
    MsgVote,
    Proposal,
    Vote,
)

MAX_TITLE = 140
MAX_SUMMARY = 10_000


class GovMsgServer:
    def __init__(self, keeper: GovKeeper, bank: BankKeeper, contents: Contents,
                 power: VotingPower) -> None:
        self._keeper = keeper
        self._bank = bank
        self._contents = contents
        self._power = power

    def submit(self, ctx: Context, msg: MsgSubmitProposal) -> None:
        if not 0 < len(msg.title) <= MAX_TITLE or len(msg.summary) > MAX_SUMMARY:
            raise InvalidProposal(f"a proposal needs a title of 1 to {MAX_TITLE} characters "
                                  f"and a summary of at most {MAX_SUMMARY}")
        params = self._keeper.params(ctx.kv)
        if msg.initial_deposit < params.min_initial_deposit:
            raise DepositTooSmall(f"initial deposit {msg.initial_deposit}{NATIVE_DENOM} is below "
                                  f"the minimum {params.min_initial_deposit}{NATIVE_DENOM}")
        proposal_id = self._keeper.new_id(ctx.kv)
        # A dry run on a branch that is dropped: the contents' own checks refuse a bad one now.
        trial = Context(ctx.block, GasKV(ctx.kv.state.branch(), ctx.kv.meter))
        self._contents.apply_all(trial, msg.messages, proposal_id)
        proposal = Proposal(
            id=proposal_id, messages=msg.messages, status=PROPOSAL_STATUS_DEPOSIT_PERIOD,
            proposer=msg.proposer, title=msg.title, summary=msg.summary,
            submit_height=ctx.block.height,
            deposit_end_height=ctx.block.height + params.deposit_period_blocks)
        self._take_deposit(ctx, proposal, msg.proposer, msg.initial_deposit, params)
        self._keeper.save(ctx.kv, proposal, None)
        ctx.emit("submit_proposal", proposal_id=str(proposal_id), proposer=msg.proposer,
                 status=str(proposal.status))

    def deposit(self, ctx: Context, msg: MsgDeposit) -> None:
        proposal = self._proposal(ctx, msg.proposal_id)
        if proposal.status != PROPOSAL_STATUS_DEPOSIT_PERIOD:
            raise NotDepositPeriod(f"proposal {proposal.id} takes no deposits: its deposit "
                                   f"period is over")
        if msg.amount == 0:
            raise DepositTooSmall("a deposit must be positive")
        previous = Proposal()
        previous.CopyFrom(proposal)
        self._take_deposit(ctx, proposal, msg.depositor, msg.amount, self._keeper.params(ctx.kv))
        self._keeper.save(ctx.kv, proposal, previous)
        ctx.emit("proposal_deposit", proposal_id=str(proposal.id), depositor=msg.depositor,
                 amount=str(msg.amount), status=str(proposal.status))

    def vote(self, ctx: Context, msg: MsgVote) -> None:
        if msg.option not in FIELD:
            raise InvalidVote("the option must be yes, abstain, no or no-with-veto")
        proposal = self._proposal(ctx, msg.proposal_id)
        if proposal.status != PROPOSAL_STATUS_VOTING_PERIOD:
            raise NotVotingPeriod(f"proposal {proposal.id} is not in its voting period "
                                  f"(status {proposal.status}, voting ended or not started)")
        if self._power.of(ctx.kv, ctx.block.height, msg.voter) == 0:
            why = "holds no ninfer" if self._keeper.params(ctx.kv).balance_votes else \
                "is not a weighted member of the current epoch"
            raise NoVotingPower(f"{msg.voter} has no voting power: it {why}")
        self._keeper.set_vote(ctx.kv, Vote(proposal_id=proposal.id, voter=msg.voter,
                                           option=msg.option))
        ctx.emit("proposal_vote", proposal_id=str(proposal.id), voter=msg.voter,
                 option=FIELD[msg.option])

    def _take_deposit(self, ctx: Context, proposal: Proposal, depositor: str, amount: int,
                      params: GovParams) -> None:
        """Moves the deposit to the gov account; the vote opens once min_deposit is in."""
        self._bank.send(ctx, address.decode(depositor), GOV_ACCOUNT, {NATIVE_DENOM: amount})
        self._keeper.add_deposit(ctx.kv, proposal.id, depositor, amount)
        proposal.total_deposit += amount
        if proposal.total_deposit >= params.min_deposit:
            proposal.status = PROPOSAL_STATUS_VOTING_PERIOD
            proposal.voting_start_height = ctx.block.height
            proposal.voting_end_height = ctx.block.height + params.voting_period_blocks

    def _proposal(self, ctx: Context, proposal_id: int) -> Proposal:
        found = self._keeper.proposal(ctx.kv, proposal_id)
        if found is None:
            raise ProposalNotFound(f"proposal {proposal_id} does not exist")
        return found
