"""Weight comes only from proof of compute (docs/design.md §7.3), played in-process through the
real handlers and block steps: accounts that register without computing are never drawn, hold
no member seat, no voting power, no validator power and no reward, epoch after epoch, whether
or not anybody runs proof of compute; an accepted proof of compute gives weight at the next
epoch boundary, and the draw then follows it. Genesis participants keep their genesis weight
until the first epoch whose proof of compute settles."""

import pytest
from inference_actors import Actor
from inference_net import Net
from test_epochs_module import (
    EPOCH,
    POC_CHECKS,
    POC_WINDOW,
    check_all,
    epoch_info,
    name_consensus_key,
    nonces_found,
    submit,
    to_height,
    weight,
)
from test_gov_module import packed

from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.gov_pb2 import (
    VOTE_OPTION_YES,
    MsgSubmitProposal,
    MsgVote,
    ParamChange,
)

SYBILS = 10
GENESIS_WEIGHT = 100
DRAWS = 200


def sybil_net() -> Net:
    """Three genesis participants and ten funded accounts outside genesis; proof of compute
    on; a proposal's voting period spans the whole test."""
    return Net(3, expiration_blocks=50, newcomers=SYBILS, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": POC_WINDOW,
                              "poc_validation_window_blocks": 2 * POC_CHECKS,
                              "max_weight_share_ppm": 1_000_000}},
        "validation": {"params": {"validation_window_blocks": 4, "voting_period_blocks": 2,
                                  "opening_blocks": 1, "reveal_window_blocks": 8,
                                  "canary_rate_ppm": 0}},
        "gov": {"params": {"min_deposit": 1_000, "min_initial_deposit": 1_000,
                           "deposit_period_blocks": 3, "voting_period_blocks": 1_000}}})


def register_sybils(net: Net) -> dict[str, bytes]:
    """Every sybil registers mid-epoch and names a validator key: address → key."""
    results = net.block([s.tx(s.register(f"http://127.0.0.1:{7000 + i}"))
                         for i, s in enumerate(net.newcomers)])
    assert all(r.code == 0 for r in results), [r.log for r in results]
    return {s.address: name_consensus_key(net, s) for s in net.newcomers}


def open_proposal(net: Net) -> int:
    result = net.one(net.developer.tx(MsgSubmitProposal(
        proposer=net.developer.address, messages=[packed(ParamChange(
            module="validation", param="p_min_ppm", value_json="50000"))], initial_deposit=1_000,
        title="a signal", summary="for the vote")))
    assert result.code == 0, result.log
    event = next(e for e in result.events if e.type == "submit_proposal")
    return int(next(a.value for a in event.attributes if a.key == "proposal_id"))


def members(net: Net, epoch: int) -> dict[str, int]:
    found = net.query("Epoch", q.QueryEpochRequest(epoch=epoch)).members
    return {m.address: m.weight for m in found.members}


def validator_participants(net: Net) -> dict[bytes, str]:
    found = net.query("ConsensusValidators", q.QueryConsensusValidatorsRequest()).validators
    return {v.pubkey: v.participant for v in found.validators}


def executors(net: Net, label: str, height: int | None = None) -> list[str]:
    """The drawn executor of DRAWS inferences seeded at ``height`` (the latest by default)."""
    return [(net.draw(f"{label}-{i}") if height is None
             else net.draw_at(f"{label}-{i}", height))[0] for i in range(DRAWS)]


def drawable_anywhere(net: Net, label: str, height: int | None = None) -> set[str]:
    """Everyone in any of DRAWS full draw orders seeded at ``height`` (the latest by default):
    the executors and all their fallbacks."""
    return {addr for i in range(DRAWS) for addr in (
        net.draw(f"{label}-{i}") if height is None else net.draw_at(f"{label}-{i}", height))}


def prove(net: Net, provers: list[Actor], checkers: list[Actor], tries: int) -> dict[str, int]:
    """The provers compute and submit nonces in the current PoC window, the checkers verify
    every submission in the checks window; the nonces each prover submitted."""
    current = epoch_info(net)
    found = {p.address: nonces_found(current.poc_block_hash, p, tries) for p in provers}
    for prover in provers:
        result = submit(net, prover, current.number, found[prover.address])
        assert result.code == 0, result.log
    to_height(net, current.poc_end_height + 1)
    assert all(check_all(net, current.number, checkers).values())
    return {addr: len(nonces) for addr, nonces in found.items()}


def assert_powerless(net: Net, sybils: list[Actor], keys: dict[str, bytes], pid: int,
                     label: str) -> None:
    """Weight 0, no draw, no member seat, no validator power, no vote: in the epoch now."""
    addresses = {s.address for s in sybils}
    epoch = epoch_info(net).number
    assert [weight(net, s) for s in sybils] == [0] * len(sybils)
    assert not addresses & drawable_anywhere(net, label)
    assert not addresses & set(members(net, epoch))
    assert not {keys[a] for a in addresses} & set(validator_participants(net))
    results = net.block([s.tx(MsgVote(voter=s.address, proposal_id=pid, option=VOTE_OPTION_YES))
                         for s in sybils])
    assert [(r.codespace, r.code) for r in results] == [("gov", 8)] * len(sybils), \
        [r.log for r in results]


@pytest.mark.parametrize("honest_poc", [False, True], ids=["nobody-proves", "honest-prove"])
def test_sybils_without_proof_of_compute_get_no_draw_seat_power_or_reward(honest_poc):
    net = sybil_net()
    honest, sybils = net.parts, net.newcomers
    to_height(net, 5)  # mid-epoch 0
    keys = register_sybils(net)
    pid = open_proposal(net)
    assert_powerless(net, sybils, keys, pid, "epoch0")
    proved: dict[str, int] = {}
    for epoch in (1, 2, 3):
        to_height(net, 1 + epoch * EPOCH)
        expected = {h.address: proved.get(h.address, GENESIS_WEIGHT) for h in honest}
        assert members(net, epoch) == expected
        assert {weight(net, h) for h in honest} == set(expected.values())
        assert_powerless(net, sybils, keys, pid, f"epoch{epoch}")
        if honest_poc:
            proved = prove(net, honest, honest, tries=300)
    to_height(net, 1 + 4 * EPOCH + 10)  # epochs 0-3 judged and settled
    for epoch in range(4):
        settlement = net.query("EpochSettlement",
                               q.QueryEpochSettlementRequest(epoch=epoch)).settlement
        assert {r.address for r in settlement.rewards} <= {h.address for h in honest}
    fees = [s.sequence * 20_000 for s in sybils]  # what each sybil's txs paid, nothing more
    assert [net.balance(s) for s in sybils] == [10_000_000_000 - f for f in fees]


def test_an_accepted_proof_of_compute_gives_weight_at_the_next_boundary_and_draws_follow():
    net = sybil_net()
    honest, sybils = net.parts, net.newcomers
    prover, idle = sybils[0], sybils[1:]
    to_height(net, 5)
    keys = register_sybils(net)
    pid = open_proposal(net)
    to_height(net, 1 + EPOCH)
    # Nobody proved in epoch 0: the genesis participants keep their genesis weight.
    assert [weight(net, h) for h in honest] == [GENESIS_WEIGHT] * 3
    proved = prove(net, [*honest, prover], honest, tries=1000)
    boundary = 1 + 2 * EPOCH
    before = boundary - 1
    to_height(net, before)
    assert weight(net, prover) == 0, "the proof counts from the next boundary"
    assert prover.address not in drawable_anywhere(net, "before", before)
    to_height(net, boundary)
    assert {a.address: weight(net, a) for a in [*honest, prover]} == proved
    assert members(net, 2) == proved
    assert validator_participants(net).get(keys[prover.address]) == prover.address
    vote = net.one(prover.tx(MsgVote(voter=prover.address, proposal_id=pid,
                                     option=VOTE_OPTION_YES)))
    assert vote.code == 0, vote.log
    assert_powerless(net, idle, keys, pid, "after")
    # Draws seeded before the boundary keep the weights fixed for them.
    assert prover.address not in drawable_anywhere(net, "before", before)
    share = proved[prover.address] / sum(proved.values())
    drawn = executors(net, "after") + executors(net, "again", boundary)
    observed = drawn.count(prover.address) / len(drawn)
    spread = (share * (1 - share) / len(drawn)) ** 0.5
    assert abs(observed - share) < 4 * spread, (observed, share)
