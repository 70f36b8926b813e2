"""Events reach the block's results as handlers emitted them, and a value that cannot be
serialized (a lone surrogate, which a user's JSON can carry into a handler) is repaired there
rather than stopping the block."""

from cosmpy.protos.tendermint.abci import types_pb2 as abci

from chain.app import abci_events
from chain.context import BlockInfo, Context
from chain.gas import GasMeter
from chain.store import Store


def test_event_values_keep_their_text_and_a_lone_surrogate_is_repaired():
    ctx = Context.of(BlockInfo("chain", 1, 0), Store.memory().begin_block(), GasMeter(None))
    ctx.emit("transfer", recipient="infer1abc", amount="5ninfer")
    ctx.emit("note", text="caf\u00e9 \u2713", broken="a\ud800b")
    events = abci_events(ctx.events)
    result = abci.ExecTxResult(events=events)
    parsed = abci.ExecTxResult.FromString(result.SerializeToString())
    assert [(e.type, [(a.key, a.value, a.index) for a in e.attributes])
            for e in parsed.events] == [
        ("transfer", [("recipient", "infer1abc", True), ("amount", "5ninfer", True)]),
        ("note", [("text", "caf\u00e9 \u2713", True), ("broken", "a?b", True)])]
