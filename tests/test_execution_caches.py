"""What the chain remembers between txs never changes a result: a signature that failed is
checked (and fails) again, a remembered one vouches only for its exact bytes, params changed by
governance are in force from the next block, and a node whose caches are cold reaches the same
app hash and tx results as one that saw every tx at CheckTx first."""

import json

import pytest
from chain_client import send_msg
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import TxBody, TxRaw
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from inference_actors import TOP_K, Actor, finish_msg
from inference_net import Net
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey
from test_gov_module import param, proposal, proposal_id, submit, vote

from chain.app import Application
from chain.auth.params import AuthParams
from chain.gas import GasKV, GasMeter
from chain.inference.artifact import ArtifactStep
from chain.inference.matched_artifacts import MATCHED
from chain.store import StaleOverlay, Store
from chain.tx.canonical import CANONICAL_TXS
from chain.tx.signature import verify as secp256k1_verify
from chain.verified_signatures import VERIFIED, VerifiedSet, verify_ed25519
from inferchain_pb.inference.v1.gov_pb2 import PROPOSAL_STATUS_PASSED, VOTE_OPTION_YES

TX_DECODE = 2
UNAUTHORIZED = 4
BAD_SIGNATURE = 9


@pytest.fixture(autouse=True)
def cold_cache():
    for cache in (VERIFIED, MATCHED, CANONICAL_TXS):
        cache.clear()
    yield
    for cache in (VERIFIED, MATCHED, CANONICAL_TXS):
        cache.clear()


def resigned(raw: bytes, signature: bytes | None = None, body: TxBody | None = None) -> bytes:
    """The tx with another signature or another body, everything else as it was."""
    tx = TxRaw.FromString(raw)
    if signature is not None:
        tx.signatures[0] = signature
    if body is not None:
        tx.body_bytes = body.SerializeToString(deterministic=True)
    return tx.SerializeToString(deterministic=True)


def check(net: Net, raw: bytes) -> abci.ResponseCheckTx:
    return net.app.check_tx(abci.RequestCheckTx(tx=raw))


def test_a_failed_signature_is_checked_again_and_fails_again_in_the_block():
    net = Net()
    good = net.developer.tx(send_msg(net.developer.address, net.parts[0].address, 5))
    signature = TxRaw.FromString(good).signatures[0]
    forged = resigned(good, signature=signature[:-1] + bytes([signature[-1] ^ 1]))
    first = check(net, forged)
    assert (first.code, VERIFIED.hits) == (UNAUTHORIZED, 0)
    again = check(net, forged)
    assert again.code == UNAUTHORIZED and VERIFIED.hits == 0 and len(VERIFIED) == 0
    result = net.one(forged)
    assert result.code == UNAUTHORIZED and "signature verification failed" in result.log
    assert VERIFIED.hits == 0


def test_a_tx_found_canonical_is_only_parsed_again_and_other_bytes_are_still_checked():
    """A tx CheckTx found canonical is parsed in its block without the check; the same tx
    with one unknown field appended (its signatures still over the same body) has another
    hash, is checked, and is refused at CheckTx and in the block alike."""
    net = Net()
    good = net.developer.tx(send_msg(net.developer.address, net.parts[0].address, 5))
    padded = good + bytes([0x20, 0x01])  # field 4, varint 1: unknown to TxRaw
    assert check(net, good).code == 0 and len(CANONICAL_TXS) == 1
    refused = check(net, padded)
    assert refused.code == TX_DECODE and "not canonically encoded" in refused.log
    hits = CANONICAL_TXS.hits
    results = net.block([padded, good])  # CheckTx of each, as a mempool would, then the block
    assert [r.code for r in results] == [TX_DECODE, 0]
    assert CANONICAL_TXS.hits == hits + 2 and len(CANONICAL_TXS) == 1


def test_a_remembered_signature_vouches_for_its_exact_bytes_only():
    net = Net()
    good = net.developer.tx(send_msg(net.developer.address, net.parts[0].address, 5))
    assert check(net, good).code == 0
    assert len(VERIFIED) == 1
    net.block([])  # a new check state: the sequence the good tx took there is free again
    body = TxBody.FromString(TxRaw.FromString(good).body_bytes)
    body.messages[0].value = send_msg(net.developer.address, net.parts[1].address,
                                      5).SerializeToString(deterministic=True)
    other_body = resigned(good, body=body)
    assert check(net, other_body).code == UNAUTHORIZED
    other_signer = net.parts[0].tx(send_msg(net.developer.address, net.parts[0].address, 5))
    stolen = resigned(good, signature=TxRaw.FromString(other_signer).signatures[0])
    assert check(net, stolen).code == UNAUTHORIZED
    assert VERIFIED.hits == 0
    misses = VERIFIED.misses
    assert net.one(good).code == 0
    # Net.block's CheckTx and the block itself both found it: nothing was verified again.
    assert (VERIFIED.hits, VERIFIED.misses) == (2, misses)


def test_a_node_key_signature_is_remembered_for_its_key_message_and_signature_only():
    key, other = SigningKey(b"k" * 32), SigningKey(b"o" * 32)
    pubkey = bytes(key.verify_key)
    signed = key.sign(b"finish payload").signature
    verify_ed25519(pubkey, b"finish payload", signed)
    verify_ed25519(pubkey, b"finish payload", signed)
    assert VERIFIED.hits == 1
    for wrong_key, message, signature in (
            (bytes(other.verify_key), b"finish payload", signed),
            (pubkey, b"finish payload!", signed),
            (pubkey, b"finish payload", other.sign(b"finish payload").signature)):
        for _ in range(2):
            with pytest.raises(BadSignatureError):
                verify_ed25519(wrong_key, message, signature)
    with pytest.raises(ValueError):
        verify_ed25519(pubkey[:31], b"finish payload", signed)
    assert VERIFIED.hits == 1 and len(VERIFIED) == 1


def test_a_verified_tx_signature_never_answers_for_a_node_key_signature():
    """The same (key, message, signature) bytes verified as secp256k1 are no ed25519
    signature: a 33-byte key is not an ed25519 key, cached or not."""
    wallet = Actor.new(0, 0).wallet
    pubkey = wallet.public_key().public_key_bytes
    signature = wallet.signer().sign(b"sign doc", deterministic=True)
    assert secp256k1_verify(pubkey, b"sign doc", signature)
    assert len(VERIFIED) == 1
    with pytest.raises(ValueError):
        verify_ed25519(pubkey, b"sign doc", signature)
    assert VERIFIED.hits == 0


def test_a_forged_finish_fails_in_its_block_after_the_honest_one_was_checked():
    net = Net()
    agent, executor, start = net.start("cached", max_tokens=8)
    assert net.one(agent.tx(start)).code == 0
    honest = finish_msg(executor, start, [3, 4])
    assert check(net, executor.tx(honest)).code == 0
    executor.sequence -= 1  # the honest one never lands; the forged one takes its place
    forged = finish_msg(executor, start, [3, 4])
    forged.executor_signature = forged.executor_signature[:-1] + bytes(
        [forged.executor_signature[-1] ^ 1])
    result = net.one(executor.tx(forged))
    assert result.code == BAD_SIGNATURE and "executor" in result.log


def test_an_artifact_read_at_checktx_is_not_read_again_and_answers_for_its_output_only():
    """A finish's artifact that matched its output at CheckTx is not read again when its
    block executes; the same artifact bytes under another output (another output hash) are
    read again and refused."""
    net = Net()
    agent, executor, start = net.start("matched", max_tokens=8)
    assert net.one(agent.tx(start)).code == 0
    MATCHED.clear()
    honest = finish_msg(executor, start, [3, 4])
    honest_tx = executor.tx(honest)
    assert check(net, honest_tx).code == 0
    assert (len(MATCHED), MATCHED.hits) == (1, 0)
    net.block([])  # a new check state: the finish's sequence is free again
    executor.sequence -= 1
    steps = [ArtifactStep(t, -0.5, tuple(range(t, t + TOP_K)),
                          tuple(-0.5 - i for i in range(TOP_K))) for t in (3, 4)]
    borrowed = finish_msg(executor, start, [3, 5], steps=steps)
    assert borrowed.artifact == honest.artifact
    refused = check(net, executor.tx(borrowed))
    assert refused.code != 0 and "artifact must hold" in refused.log
    assert (len(MATCHED), MATCHED.hits) == (1, 0)
    net.block([])
    assert net.one(honest_tx).code == 0
    # Net.block's CheckTx and the block itself both found it: the artifact was not read.
    assert (len(MATCHED), MATCHED.hits) == (1, 2)


def test_the_cache_keeps_only_its_most_recently_used_entries():
    cache = VerifiedSet(max_entries=2)
    a, b, c = (("ed25519", n * 32, n * 32, n * 64) for n in (b"a", b"b", b"c"))
    cache.add(a)
    cache.add(b)
    assert cache.seen(a)
    cache.add(c)
    assert (cache.seen(a), cache.seen(b), cache.seen(c)) == (True, False, True)


def test_params_read_from_an_overlay_follow_its_bytes_and_never_leak_from_a_branch():
    store = Store.memory()
    block = store.begin_block()
    kv = GasKV(block, GasMeter(None))
    key = b"auth/params"
    block.set(key, AuthParams(max_memo_characters=10).to_bytes())
    assert AuthParams.stored(kv, key).max_memo_characters == 10
    branch = block.branch()
    branch.set(key, AuthParams(max_memo_characters=20).to_bytes())
    assert AuthParams.stored(GasKV(branch, GasMeter(None)), key).max_memo_characters == 20
    assert AuthParams.stored(kv, key).max_memo_characters == 10
    meter = GasMeter(None)
    AuthParams.stored(GasKV(block, meter), key)
    assert meter.used > 0  # a remembered parse still reads, and pays for, the stored bytes


GOV_STATE = {
    "epochs": {"params": {"epoch_length_blocks": 5, "poc_window_blocks": 0}},
    "gov": {"params": {"min_deposit": 1_000, "min_initial_deposit": 100,
                       "deposit_period_blocks": 3, "voting_period_blocks": 3}}}


def test_a_param_changed_by_governance_prices_txs_from_the_next_block_on():
    """tx_size_cost_per_byte goes from 10 to 30 at the end of the tally's block: the same tx
    bytes, checked before and after that block, pay 20 gas more per byte, and the block after
    it charges what CheckTx estimated."""
    net = Net(3, extra_state=GOV_STATE)
    while net.height < 6:
        net.block([])
    pid = proposal_id(submit(net, net.developer, param("auth", "tx_size_cost_per_byte", 30)))
    net.block([vote(p, pid, VOTE_OPTION_YES) for p in net.parts])
    while net.height < proposal(net, pid).voting_end_height - 1:
        net.block([])
    sender = net.parts[0]
    probe = sender.tx(send_msg(sender.address, net.parts[1].address, 1))
    old = check(net, probe)
    net.block([])  # the tally's block
    assert proposal(net, pid).status == PROPOSAL_STATUS_PASSED
    new = check(net, probe)
    assert (old.code, new.code) == (0, 0)
    assert new.gas_used - old.gas_used == 20 * len(probe)
    assert net.one(probe).gas_used == new.gas_used


def replay(init: abci.RequestInitChain, blocks: list[abci.RequestFinalizeBlock]
           ) -> tuple[Application, list[list[tuple[int, int, int]]]]:
    """A second node applying the same genesis and blocks with FinalizeBlock alone; the
    results of each block's txs after its beacon proof."""
    app = Application(Store.memory())
    app.init_chain(init)
    results = []
    for request in blocks:
        response = app.finalize_block(request)
        results.append([(r.code, r.gas_used, r.gas_wanted) for r in response.tx_results[1:]])
        app.commit(abci.RequestCommit())
    return app, results


def test_a_cold_node_and_a_node_warmed_by_checktx_agree_on_every_block():
    warm = Net()
    results = []

    def block(txs: list[bytes]) -> None:
        results.append([(r.code, r.gas_used, r.gas_wanted) for r in warm.block(txs)])

    for n in range(3):
        agent, executor, start = warm.start(f"agree-{n}", max_tokens=8)
        finish = finish_msg(executor, start, [5, 6, 7][:n + 1])
        good = warm.developer.tx(send_msg(warm.developer.address, agent.address, 7))
        bad = resigned(warm.developer.tx(send_msg(warm.developer.address, agent.address, 1)),
                       signature=bytes(64))
        warm.developer.sequence -= 1  # the bad one fails before it moves the sequence
        block([agent.tx(start), executor.tx(finish), good, bad])
    assert VERIFIED.hits > 0 and CANONICAL_TXS.hits > 0
    assert any(code != 0 for row in results for code, _, _ in row)
    for cache in (VERIFIED, MATCHED, CANONICAL_TXS):
        cache.clear()
    cold, cold_results = replay(warm.init_request, warm.blocks)
    assert VERIFIED.hits == 0 and CANONICAL_TXS.hits == 0
    assert cold_results == [[], *results]  # Net starts with an empty block
    assert cold.store.app_hash == warm.app.store.app_hash
    assert json.loads(cold.store.get_meta("last_block")) == warm.app.last_block


def test_committed_reads_are_remembered_for_one_height_only(tmp_path):
    """A layer remembers what it read from SQLite (a key, a whole prefix), never past a Commit:
    the old layer then refuses every read, remembered or not, and a new one reads anew."""
    with Store.open(tmp_path / "state.sqlite") as store:
        first = store.begin_block()
        first.set(b"p/a", b"1")
        first.set(b"p/b", b"2")
        store.commit(first, 1)
        old = store.begin_block()
        assert old.get(b"p/a") == b"1"
        assert list(old.iterate(b"p/")) == [(b"p/a", b"1"), (b"p/b", b"2")]
        assert list(old.iterate(b"p/")) == [(b"p/a", b"1"), (b"p/b", b"2")]
        second = store.begin_block()
        second.set(b"p/a", b"3")
        second.delete(b"p/b")
        second.set(b"p/c", b"4")
        assert list(second.iterate(b"p/")) == [(b"p/a", b"3"), (b"p/c", b"4")]
        store.commit(second, 2)
        for read in (lambda: old.get(b"p/a"), lambda: list(old.iterate(b"p/"))):
            with pytest.raises(StaleOverlay):
                read()
        new = store.begin_block()
        assert new.get(b"p/a") == b"3" and new.get(b"p/b") is None
        assert list(new.iterate(b"p/")) == [(b"p/a", b"3"), (b"p/c", b"4")]
