"""The executor draw stays fixed at its height: through real signed transactions, a draw a
transfer agent computed at height H is the one MsgStartInference checks later, whatever
misses, completions and epoch boundaries came in between."""

from inference_actors import finish_msg, request_id, start_msg
from inference_net import T0, Net

from chain.inference import payload
from chain.inference.draw import Candidate, draw_order
from chain.inference.params import InferenceParams
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
    agent = net.parts[-1]  # takes every request; the draws below leave it out as executor
    drawn = {label: order for label in (f"fixed-{i}" for i in range(60))
             if (order := net.drawn(agent, label))[0] != agent.address}
    ids = list(drawn)[:24]
    drawn = {i: drawn[i] for i in ids}
    victim = drawn[ids[0]][0]
    # The victim refuses three times (each start names the next pick with its signed
    # refusal), and the others complete inferences: every availability the draw once read
    # from moves.
    misses = [label for label in (f"miss-{n}" for n in range(60))
              if net.drawn(agent, label)[0] == victim][:3]
    txs = []
    for label in misses:
        inference_id = request_id(agent, net.developer, label, T0 + net.height)
        refusal = net.actor(victim).node_key.sign(
            payload.refusal_payload(inference_id, 0, victim)).signature
        executor = net.actor(net.drawn(agent, label)[1])
        start = start_msg(agent, net.developer, label, executor.address, net.height,
                          T0 + net.height, [1, 2, 3, 4], attempt=1, refusals=(refusal,))
        txs += [agent.tx(start), executor.tx(finish_msg(executor, start, [5, 6]))]
    assert [r.code for r in net.block(txs)] == [0] * len(txs)
    assert net.participant_record(net.actor(victim)).misses == 3
    while net.height < 1 + EPOCH:  # into epoch 1, whose record fixes the new availability
        net.block([])
    assert draw_weights(net, drawn_at)[victim] == PPM
    assert draw_weights(net, net.height)[victim] == PPM * 1 // 4
    assert any(net.draw_at(request_id(agent, net.developer, i, T0 + drawn_at),
                            net.height)[0] != drawn[i][0] for i in ids)

    window = InferenceParams().max_draw_age_blocks
    assert f'"max_draw_age_blocks": {window}' in net.query(
        "Params", q.QueryParamsRequest()).params_json
    assert net.height - drawn_at <= window
    starts, signed = [], []
    for label in ids[:6]:
        assert net.draw_at(request_id(agent, net.developer, label, T0 + drawn_at),
                           drawn_at) == drawn[label]
        executor = net.actor(drawn[label][0])
        start = start_msg(agent, net.developer, label, executor.address, drawn_at,
                          T0 + drawn_at, [1, 2, 3])
        net.ids[label] = start.inference_id
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
    leaving, agent = net.parts[0], net.parts[1]
    label = next(i for i in (f"w-{n}" for n in range(60))
                 if net.drawn(agent, i)[0] == leaving.address)
    assert net.one(leaving.tx(MsgWithdrawParticipant(creator=leaving.address))).code == 0
    assert all(leaving.address not in net.draw(f"after-{n}") for n in range(20))
    start = start_msg(agent, net.developer, label, leaving.address, drawn_at,
                      T0 + drawn_at, [1, 2, 3])
    result = net.one(agent.tx(start))
    assert result.code == 0, result.log


def test_a_pick_that_is_no_candidate_is_passed_over_and_the_others_keep_their_places():
    """The draw picks from the whole draw-weights record and passes over whoever is no
    candidate at its height: after a withdrawal in the middle of an epoch, every order is the
    record's full order with the leaver taken out, so nobody else moves, and a start reads
    the participants it picks rather than every participant."""
    net = short_epochs()
    leaving = net.parts[0]
    assert net.one(leaving.tx(MsgWithdrawParticipant(creator=leaving.address))).code == 0
    keeper, state = net.app.modules.inference, net.app.store.begin_block()
    record = keeper.draw_weights(state, net.height)
    assert record.from_height < net.height  # fixed before the withdrawal, the leaver in it
    pool = [Candidate(w.address, w.weight, w.availability_ppm) for w in record.weights]
    assert leaving.address in {c.address for c in pool}
    block_hash = keeper.block_hash(state, net.height)
    for n in range(30):
        inference_id = f"passed-over-{n}"
        full = draw_order(inference_id, block_hash, pool)
        assert net.draw_at(inference_id, net.height) == [a for a in full
                                                         if a != leaving.address]
