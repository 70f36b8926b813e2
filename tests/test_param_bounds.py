"""Every param's declared bounds, through real signed proposals and InitChain: a value outside
them is refused at submission with the module's message and leaves the state as any failed
tx does; a proposal at the bounds leaves the chain producing blocks and governance able to
restore the defaults."""

import json
import re
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest
from chain_client import TxSpec, signed_tx
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from inference_actors import Actor, genesis_models
from inference_net import T0, Net
from proposals import proposed_block

from chain.app import Application
from chain.auth.params import AuthParams
from chain.bank.params import BankParams
from chain.epochs.params import EpochsParams
from chain.epochs.settlement import emission
from chain.errors import InvalidRequest
from chain.gov.params import GovParams
from chain.inference.params import InferenceParams
from chain.params import DecimalRange, Flag, IntRange, ModuleParams
from chain.query import QueryError
from chain.store import Store
from chain.validation.params import ValidationParams
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.gov_pb2 import (
    PROPOSAL_STATUS_PASSED,
    VOTE_OPTION_YES,
    MsgSubmitProposal,
    MsgVote,
    ParamChange,
)

MODULES: list[type[ModuleParams]] = [AuthParams, BankParams, EpochsParams, GovParams,
                                     InferenceParams, ValidationParams]
GOV_DOC = Path(__file__).resolve().parent.parent / "docs" / "gov.md"
EPOCH = 5
MIN_DEPOSIT = 1_000
# Genesis values from which every governable param can reach each of its own bounds without
# crossing a rule between fields (poc_hidden % poc_heads, min_initial_deposit <= min_deposit,
# p_min_ppm <= p_max_ppm, the validation windows inside reveal_window_blocks, and with
# canaries off, canary_claim_blocks below voting_period_blocks).
ROOMY = {
    "epochs": {"params": {"poc_hidden": 256, "poc_heads": 1}},
    "gov": {"params": {"min_deposit": GovParams.bounds()["min_deposit"].high,
                       "min_initial_deposit": 1}},
    "validation": {"params": {"p_min_ppm": 0, "reveal_window_blocks": 500_000,
                              "canary_rate_ppm": 0}},
}


def packed(content: Message) -> AnyPb:
    found = AnyPb()
    found.Pack(content, type_url_prefix="/")
    return found


def change(module: str, name: str, value_json: str) -> AnyPb:
    return packed(ParamChange(module=module, param=name, value_json=value_json))


def proposal(proposer: Actor, *contents: AnyPb, deposit: int, title: str = "bounds") -> Message:
    return MsgSubmitProposal(proposer=proposer.address, messages=list(contents),
                             initial_deposit=deposit, title=title, summary="at the edge")


def params(net: Net, module: str) -> dict:
    return json.loads(net.query("Params", q.QueryParamsRequest(module=module)).params_json)


def app_hash_with(net: Net, raw: bytes) -> bytes:
    """The app hash the next block would have with ``raw`` alone; nothing is committed."""
    height = net.height + 1
    return net.app.finalize_block(proposed_block(
        net.app, height, Timestamp(seconds=T0 + height), [raw],
        height.to_bytes(4, "big") * 8)).app_hash


@pytest.fixture(scope="module")
def roomy() -> Net:
    """Also a supply that can pay the largest min_deposit."""
    return Net(3, extra_state=ROOMY, extra_supply=GovParams.bounds()["min_deposit"].high)


# --- hostile values -------------------------------------------------------------------------

DEEP = "[" * 5_000 + "]" * 5_000
HOSTILE = [
    ("epochs", "initial_epoch_reward", str(2**64), "in [0, 1000000000000000]; got an integer"),
    ("epochs", "initial_epoch_reward", str(10**15 + 1), "in [0, 1000000000000000]"),
    ("epochs", "reward_decay_ppm", "0", "reward_decay_ppm must be an integer in [1, 1000000]"),
    ("auth", "max_tx_bytes", "100", "max_tx_bytes must be an integer in [16384, 8388608]"),
    ("auth", "max_tx_bytes", str(2**63), "max_tx_bytes must be an integer in [16384"),
    ("auth", "tx_sig_limit", "0", "tx_sig_limit must be an integer in [1, 128]"),
    ("auth", "sig_verify_cost_secp256k1", "1000000000", "in [0, 100000]; got 1000000000"),
    ("auth", "tx_size_cost_per_byte", "1001", "in [0, 1000]"),
    ("auth", "min_gas_price", '"1e100000000"', 'in [0, 100]; got "1e100000000"'),
    ("auth", "min_gas_price", "1e100000000", "got Infinity"),
    ("auth", "min_gas_price", '"NaN"', "min_gas_price must be a decimal string"),
    ("auth", "min_gas_price", '"Infinity"', "min_gas_price must be a decimal string"),
    ("auth", "min_gas_price", '"-0.01"', "min_gas_price must be a decimal string"),
    ("auth", "min_gas_price", '"0.01 "', "min_gas_price must be a decimal string"),
    ("auth", "min_gas_price", '"\u0661"', "min_gas_price must be a decimal string"),
    ("auth", "min_gas_price", '"0.000001"', "at most 5 decimal places"),
    ("auth", "min_gas_price", '"100.00001"', "in [0, 100]"),
    ("auth", "min_gas_price", "0.01", "min_gas_price must be a decimal string"),
    ("gov", "min_deposit", str(10**19), "min_deposit must be an integer in [1, 10000000000"),
    ("gov", "threshold_ppm", "1000000", "threshold_ppm must be an integer in [1, 999999]"),
    ("gov", "quorum_ppm", "0", "quorum_ppm must be an integer in [1, 1000000]"),
    ("gov", "voting_period_blocks", "0", "voting_period_blocks must be an integer in [1, "),
    ("gov", "voting_period_blocks", "1000000000000", "in [1, 604800]"),
    ("gov", "min_initial_deposit", str(10**18 + 1), "in [1, 1000000000000000000]"),
    ("epochs", "poc_heads", "3", "poc_hidden must be a multiple of poc_heads"),
    ("inference", "top_k", "true", "top_k must be an integer in [1, 20]; got true"),
    ("inference", "top_k", "5.0", "got 5.0"),
    ("inference", "top_k", '"5"', 'got "5"'),
    ("inference", "top_k", '{"a": 1}', "got an object"),
    ("inference", "top_k", "[5]", "got a list"),
    ("inference", "top_k", "null", "got null"),
    ("inference", "top_k", "1" + "0" * 400, "got an integer of 1329 bits"),
    ("inference", "top_k", "9" * 5_000, "is not JSON the parser reads"),
    ("inference", "top_k", DEEP, "is not JSON the parser reads"),
    ("bank", "send_enabled", "1", "send_enabled must be true or false; got 1"),
    ("validation", "invalid_min_count", "0", "invalid_min_count must be an integer in [1, "),
    ("validation", "p_min_ppm", "-1", "p_min_ppm must be an integer in [0, 1000000]"),
]


@pytest.mark.parametrize(("module", "name", "value_json", "words"), HOSTILE,
                         ids=[f"{m}.{n}={v[:24]}" for m, n, v, _ in HOSTILE])
def test_a_hostile_value_is_refused_at_submission_and_writes_nothing(
        roomy, module, name, value_json, words):
    """The same block with a proposal refused before its contents run (an empty title) and
    with the hostile one has the same app hash: only the fee and the sequence moved."""
    net, proposer = roomy, roomy.developer
    before = params(net, module)
    hostile = signed_tx(proposer.wallet, TxSpec(
        [proposal(proposer, change(module, name, value_json), deposit=1)],
        sequence=proposer.sequence, account_number=proposer.account_number,
        chain_id="inferchain-test", gas_limit=2_000_000, fee=20_000)).tx.SerializeToString()
    control = signed_tx(proposer.wallet, TxSpec(
        [proposal(proposer, change(module, name, "1"), deposit=1, title="")],
        sequence=proposer.sequence, account_number=proposer.account_number,
        chain_id="inferchain-test", gas_limit=2_000_000, fee=20_000)).tx.SerializeToString()
    expected_hash = app_hash_with(net, control)
    result = net.one(hostile)
    proposer.sequence += 1
    assert (result.codespace, result.code) == ("gov", 3), result.log
    assert words in result.log, result.log
    assert net.app.store.app_hash == expected_hash
    assert params(net, module) == before
    assert len(result.log) < 500


def test_a_min_deposit_above_the_supply_is_refused_at_submission():
    """Below its fixed bound, still more than all the coins there are: no proposal could
    ever open its vote again, so this one is refused; the supply itself is payable."""
    net = Net(3, extra_state={"gov": {"params": {"min_deposit": MIN_DEPOSIT,
                                                 "min_initial_deposit": MIN_DEPOSIT}}})
    supply = net.app.modules.bank.supply(net.app.store.begin_block(), "ninfer")
    above = net.one(net.developer.tx(proposal(
        net.developer, change("gov", "min_deposit", str(supply + 1)), deposit=MIN_DEPOSIT)))
    assert (above.codespace, above.code) == ("gov", 3), above.log
    assert f"gov param min_deposit {supply + 1} is above the ninfer supply" in above.log
    # The fee of the refused tx left the supply as it was.
    assert net.one(net.developer.tx(proposal(
        net.developer, change("gov", "min_deposit", str(supply)),
        deposit=MIN_DEPOSIT))).code == 0


# --- every governable field at and past its bounds -------------------------------------------


def edge_cases() -> list[tuple[str, str, object, bool]]:
    """(module, param, value, accepted) just past, at, at and just past each bound."""
    cases = []
    for cls in MODULES:
        for name, bounds in sorted(cls.bounds().items()):
            if name not in cls.governable:
                continue
            if isinstance(bounds, IntRange):
                values = [bounds.low - 1, bounds.low, bounds.high, bounds.high + 1]
            elif isinstance(bounds, DecimalRange):
                step = Decimal(1).scaleb(-bounds.places)
                values = [str(Decimal(bounds.low) - step), bounds.low, bounds.high,
                          str(Decimal(bounds.high) + step)]
            else:
                assert isinstance(bounds, Flag)
                values = [0, False, True, "true"]
            cases += [(cls.module, name, v, ok) for v, ok in zip(
                values, [False, True, True, False], strict=True)]
    return cases


EDGES = edge_cases()


def test_the_edge_table_covers_every_governable_param():
    covered = {(m, n) for m, n, _, _ in EDGES}
    assert covered == {(c.module, n) for c in MODULES for n in c.governable}
    assert len(EDGES) == 4 * len(covered)


@pytest.mark.parametrize(("module", "name", "value", "accepted"), EDGES,
                         ids=[f"{m}.{n}={v!r}" for m, n, v, _ in EDGES])
def test_each_governable_param_takes_its_bounds_and_nothing_past_them(
        roomy, module, name, value, accepted):
    net = roomy
    result = net.one(net.developer.tx(proposal(
        net.developer, change(module, name, json.dumps(value)), deposit=1)))
    if accepted:
        assert result.code == 0, result.log
    else:
        assert (result.codespace, result.code) == ("gov", 3), result.log
        assert f"{module} param {name} must be" in result.log
        assert re.search(r"in \[|true or false", result.log), result.log


# --- at the bounds, the chain goes on and governance undoes it -------------------------------

# Every auth param where fees are highest and txs smallest, and the hardest gov rules: all
# power must vote, all yes, a single veto ppm rejects, one block to deposit and to vote.
WORST = {
    ("auth", "min_gas_price"): "100", ("auth", "tx_size_cost_per_byte"): 1_000,
    ("auth", "sig_verify_cost_secp256k1"): 100_000, ("auth", "max_tx_bytes"): 16_384,
    ("auth", "tx_sig_limit"): 1, ("auth", "max_memo_characters"): 0,
    ("gov", "quorum_ppm"): 1_000_000, ("gov", "threshold_ppm"): 999_999,
    ("gov", "veto_threshold_ppm"): 1, ("gov", "voting_period_blocks"): 1,
    ("gov", "deposit_period_blocks"): 1, ("epochs", "initial_epoch_reward"): 10**15,
}
WORST_GAS, WORST_FEE = 3_000_000, 300_000_000  # 100 ninfer a gas


def paid(actor: Actor, *messages: Message) -> bytes:
    """A tx paying the highest gas price allowed."""
    raw = signed_tx(actor.wallet, TxSpec(
        list(messages), sequence=actor.sequence, account_number=actor.account_number,
        chain_id="inferchain-test", gas_limit=WORST_GAS, fee=WORST_FEE)).tx.SerializeToString()
    actor.sequence += 1
    return raw


def pass_with_all_votes(net: Net, proposal_tx: bytes, sign=None) -> int:
    """Submits, has every participant vote yes, and runs to the tally; the proposal's id."""
    submitted = net.one(proposal_tx)
    assert submitted.code == 0, submitted.log
    event = next(e for e in submitted.events if e.type == "submit_proposal")
    pid = int(next(a.value for a in event.attributes if a.key == "proposal_id"))
    sign = sign or (lambda actor, msg: actor.tx(msg))
    votes = net.block([sign(p, MsgVote(voter=p.address, proposal_id=pid,
                                       option=VOTE_OPTION_YES)) for p in net.parts])
    assert [v.code for v in votes] == [0] * len(net.parts), [v.log for v in votes]
    found = net.query("Proposal", q.QueryProposalRequest(proposal_id=pid)).proposal
    while net.height < found.voting_end_height:
        net.block([])
        found = net.query("Proposal", q.QueryProposalRequest(proposal_id=pid)).proposal
    assert found.status == PROPOSAL_STATUS_PASSED, found.result
    return max(v.gas_used for v in votes)


def params_epoch(net: Net) -> int:
    return EpochsParams.from_dict(params(net, "epochs")).epoch_of(net.height)


def settlement(net: Net, epoch: int):
    """The epoch's settlement, blocks passing until it is made (two epochs at most)."""
    for _ in range(2 * EPOCH):
        try:
            return net.query("EpochSettlement",
                             q.QueryEpochSettlementRequest(epoch=epoch)).settlement
        except QueryError:
            net.block([])
    raise AssertionError(f"epoch {epoch} was never settled")


def test_params_at_their_bounds_keep_blocks_coming_and_governance_able_to_undo_them():
    net = Net(3, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}},
        "validation": {"params": {"validation_window_blocks": 1, "voting_period_blocks": 1,
                                  "opening_blocks": 1, "reveal_window_blocks": 4,
                                  "canary_rate_ppm": 0}},
        "gov": {"params": {"min_deposit": MIN_DEPOSIT, "min_initial_deposit": MIN_DEPOSIT,
                           "deposit_period_blocks": 3, "voting_period_blocks": 3}}})
    while net.height < EPOCH + 1:
        net.block([])
    defaults = {module: params(net, module) for module in ("auth", "gov", "epochs")}
    pass_with_all_votes(net, net.developer.tx(proposal(
        net.developer, *[change(m, n, json.dumps(v)) for (m, n), v in WORST.items()],
        deposit=MIN_DEPOSIT)))
    assert all(params(net, m)[n] == v for (m, n), v in WORST.items())

    changed_in = params_epoch(net)
    # The largest emission is minted and blocks go on.
    assert settlement(net, changed_in).emission == emission(EpochsParams(
        initial_epoch_reward=10**15), changed_in) > 0
    cheap = net.one(net.developer.tx(proposal(net.developer, change("gov", "quorum_ppm", "1"),
                                              deposit=MIN_DEPOSIT)))
    assert (cheap.codespace, cheap.code) == ("sdk", 13), cheap.log  # the old fee is too low
    net.developer.sequence -= 1  # refused before its sequence counted

    restore = [change(m, n, json.dumps(defaults[m][n])) for m, n in WORST]
    vote_gas = pass_with_all_votes(
        net, paid(net.developer, proposal(net.developer, *restore, deposit=MIN_DEPOSIT)),
        sign=paid)
    assert vote_gas * 100 <= 50_000_000  # a vote costs under 0.05 INFER at the maxima
    assert {m: params(net, m) for m in defaults} == defaults
    assert net.one(net.developer.tx(proposal(net.developer, change("gov", "quorum_ppm", "1"),
                                             deposit=MIN_DEPOSIT))).code == 0


# --- genesis ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("section", "words"), [
    ({"epochs": {"params": {"initial_epoch_reward": 2**64}}},
     "epochs param initial_epoch_reward must be an integer in [0, 1000000000000000]"),
    ({"auth": {"params": {"max_tx_bytes": 1_000}}},
     "auth param max_tx_bytes must be an integer in [16384, 8388608]; got 1000"),
    ({"auth": {"params": {"min_gas_price": "1e100000000"}}},
     "auth param min_gas_price must be a decimal string"),
    ({"gov": {"params": {"threshold_ppm": 1_000_000}}},
     "gov param threshold_ppm must be an integer in [1, 999999]"),
    ({"gov": {"params": {"voting_period_blocks": 0}}}, "gov param voting_period_blocks"),
    ({"validation": {"params": {"invalid_after_consecutive": 0}}},
     "validation param invalid_after_consecutive must be an integer in [1, 100000]"),
    ({"epochs": {"params": {"initial_epoch_reward": 10**15, "reward_decay_ppm": 1}}},
     "(the emission of all epochs) must be at most 1000000000000000000 ninfer"),
    ({"bank": {"params": []}}, "bank params must be a JSON object; got a list"),
])
def test_genesis_params_out_of_bounds_are_refused_at_init_chain(section, words):
    app = Application(Store.memory())
    with pytest.raises(InvalidRequest) as refused:
        app.init_chain(abci.RequestInitChain(
            chain_id="inferchain-test", initial_height=1, app_state_bytes=json.dumps({
                "inference": {"models": genesis_models()}, **section}).encode()))
    assert words in refused.value.message


@pytest.mark.parametrize(("field", "value", "words"), [
    ("top_k", 0, "top_k must be an integer from 1 to 20"),
    ("top_k", 21, "top_k must be an integer from 1 to 20"),
    ("price_per_token", 0, "price_per_token must be an integer of at least 1"),
    ("id", "two words", "id must be 1 to 128 letters"),
    ("validation_threshold", "-0.1", "validation_threshold must be a non-negative decimal"),
])
def test_genesis_models_are_held_to_the_rule_model_proposals_meet(field, value, words):
    app = Application(Store.memory())
    model = {**genesis_models()[0], field: value}
    with pytest.raises(InvalidRequest) as refused:
        app.init_chain(abci.RequestInitChain(
            chain_id="inferchain-test", initial_height=1,
            app_state_bytes=json.dumps({"inference": {"models": [model]}}).encode()))
    assert words in refused.value.message


# --- the declared table and its documentation ----------------------------------------------


def shown(value: object) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def test_every_param_declares_bounds_that_hold_its_default_and_docs_list_them():
    rows = {}
    for line in GOV_DOC.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in {c.module for c in MODULES}:
            rows[(cells[0], cells[1])] = cells[2:5]
    for cls in MODULES:
        defaults = cls()
        for f in fields(cls):
            low, high = cls.bounds()[f.name].limits()
            assert rows.get((cls.module, f.name)) == [shown(getattr(defaults, f.name)), low,
                                                      high], (cls.module, f.name)
