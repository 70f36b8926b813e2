"""The executor draw stays fixed at its height: through real signed transactions, a draw a
transfer agent computed at height H is the one MsgStartInference checks later, whatever
misses, completions and epoch boundaries came in between."""

from inference_actors import finish_msg, start_msg
from inference_net import T0, Net

from chain.scales import PPM
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import FINISHED, MsgWithdrawParticipant

EPOCH = 6


def short_epochs() -> Net:
    """Epochs of EPOCH blocks without PoC, so weights stay and only availability moves."""
    return Net(3, expiration_blocks=50, extra_state={
        "epochs": {"params": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 0}}})


def draw_weights(net: Net, height: int) -> dict[str, int]:
    """Availability by address in the record that draws seeded at ``height`` use."""
    keeper = net.app.modules.inference
    fixed = keeper.draw_weights(net.app.store.begin_block(), height)
    return {w.address: w.availability_ppm for w in fixed.weights}


def test_a_draw_stays_valid_after_misses_completions_and_an_epoch_boundary():
    """Participants register in block 1, after epoch 0's record was fixed: they join it."""
    net = short_epochs()
    drawn_at = net.height  # block 1: before any miss or completion
    ids = [f"fixed-{i}" for i in range(24)]
    drawn = {i: net.draw_at(i, drawn_at) for i in ids}
    victim = drawn[ids[0]][0]
    # The victim misses three times (each start names the next pick), and the others
    # complete inferences: every availability the draw once read from moves.
    misses = [i for i in (f"miss-{n}" for n in range(60)) if net.draw(i)[0] == victim][:3]
    txs = []
    for inference_id in misses:
        agent, executor, start = net.start(inference_id, attempt=1)
        txs += [agent.tx(start), executor.tx(finish_msg(executor, start, [5, 6]))]
    assert [r.code for r in net.block(txs)] == [0] * len(txs)
    assert net.participant_record(net.actor(victim)).misses == 3
    while net.height < 1 + EPOCH:  # into epoch 1, whose record fixes the new availability
        net.block([])
    assert draw_weights(net, drawn_at)[victim] == PPM
    assert draw_weights(net, net.height)[victim] == PPM * 1 // 4
    assert any(net.draw_at(i, net.height)[0] != drawn[i][0] for i in ids)

    window = net.query("Params", q.QueryParamsRequest()).params_json
    assert '"max_draw_age_blocks": 10' in window
    assert net.height - drawn_at <= 10
    starts, signed = [], []
    for inference_id in ids[:6]:
        assert net.draw_at(inference_id, drawn_at) == drawn[inference_id]
        executor = net.actor(drawn[inference_id][0])
        agent = next(p for p in net.parts if p is not executor)
        start = start_msg(agent, net.developer, inference_id, executor.address, drawn_at,
                          T0 + net.height, [1, 2, 3])
        starts.append((executor, start))
        signed.append(agent.tx(start))
    results = net.block(signed) + net.block(
        [executor.tx(finish_msg(executor, start, [7])) for executor, start in starts])
    assert [(r.code, r.log) for r in results if r.code] == []
    assert all(net.inference(i).status == FINISHED for i in ids[:6])
    net.assert_conserved()


def test_a_withdrawal_leaves_draws_from_its_height_and_keeps_earlier_ones():
    net = short_epochs()
    drawn_at = net.height
    leaving = net.parts[0]
    inference_id = next(i for i in (f"w-{n}" for n in range(60))
                        if net.draw_at(i, drawn_at)[0] == leaving.address)
    assert net.one(leaving.tx(MsgWithdrawParticipant(creator=leaving.address))).code == 0
    assert all(leaving.address not in net.draw(f"after-{n}") for n in range(20))
    agent = net.parts[1]
    start = start_msg(agent, net.developer, inference_id, leaving.address, drawn_at,
                      T0 + net.height, [1, 2, 3])
    result = net.one(agent.tx(start))
    assert result.code == 0, result.log
