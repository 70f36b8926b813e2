"""Hostile transactions through the ABCI socket server: each is refused with a clear code in
CheckTx and, when a proposer puts it in a block anyway, fails alone in FinalizeBlock; Commit
goes through, the app hash is the one a twin node gets from the block without it, and the node
keeps committing."""

import asyncio
import json

import pytest
from chain_client import TxSpec, send_msg, signed_tx
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.keypairs import PrivateKey
from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from cosmpy.protos.cosmos.base.v1beta1.coin_pb2 import Coin
from cosmpy.protos.cosmos.tx.v1beta1.tx_pb2 import SignDoc, TxBody, TxRaw
from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.timestamp_pb2 import Timestamp

from chain.abci.server import AbciServer, read_uvarint, uvarint
from chain.app import Application
from chain.store import Store
from chain.tx.decode import tx_hash

CHAIN_ID = "inferchain-test"
ALICE = LocalWallet(PrivateKey(bytes([1]) * 32), prefix="infer")
BOB = LocalWallet(PrivateKey(bytes([2]) * 32), prefix="infer")
FUNDS = 1_000_000


def started() -> Application:
    balances = [{"address": str(w.address()), "coins": [{"denom": "ninfer",
                                                          "amount": str(FUNDS)}]}
                for w in (ALICE, BOB)]
    app = Application(Store.memory())
    app.init_chain(abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1, app_state_bytes=(
        json.dumps({"auth": {"params": {}}, "bank": {"balances": balances}}).encode())))
    return app


def finalize_request(height: int, txs: list[bytes]) -> abci.RequestFinalizeBlock:
    return abci.RequestFinalizeBlock(txs=txs, height=height,
                                     time=Timestamp(seconds=1_700_000_000 + height),
                                     hash=height.to_bytes(32, "big"))


def from_bob(sequence: int = 0) -> bytes:
    tx = signed_tx(BOB, TxSpec([send_msg(str(BOB.address()), str(ALICE.address()), 7)],
                               sequence=sequence, account_number=1))
    return tx.tx.SerializeToString()


def send(amount: int = 5, sequence: int = 0, **spec: int) -> bytes:
    tx = signed_tx(ALICE, TxSpec([send_msg(str(ALICE.address()), str(BOB.address()), amount)],
                                 sequence=sequence, account_number=0, **spec))
    return tx.tx.SerializeToString()


def signed_raw(body_bytes: bytes, auth_info_bytes: bytes) -> bytes:
    """A TxRaw whose signature covers exactly these bytes, whatever their encoding."""
    doc = SignDoc(body_bytes=body_bytes, auth_info_bytes=auth_info_bytes, chain_id=CHAIN_ID,
                  account_number=0)
    signature = ALICE.signer().sign(doc.SerializeToString(), deterministic=True,
                                    canonicalise=True)
    return TxRaw(body_bytes=body_bytes, auth_info_bytes=auth_info_bytes,
                 signatures=[signature]).SerializeToString()


def parts() -> tuple[TxRaw, TxBody]:
    raw = TxRaw.FromString(send())
    return raw, TxBody.FromString(raw.body_bytes)


def with_body(body_bytes: bytes) -> bytes:
    return signed_raw(body_bytes, parts()[0].auth_info_bytes)


def with_send(message_bytes: bytes) -> bytes:
    """A signed tx whose one message is a MsgSend encoded as these bytes."""
    _, body = parts()
    body.messages[0].CopyFrom(AnyPb(type_url=body.messages[0].type_url, value=message_bytes))
    return with_body(body.SerializeToString())


def with_coin(amount: str) -> bytes:
    message = MsgSend(from_address=str(ALICE.address()), to_address=str(BOB.address()),
                      amount=[Coin(denom="ninfer", amount=amount)])
    return with_send(message.SerializeToString())


def send_bytes() -> bytes:
    return MsgSend(from_address=str(ALICE.address()), to_address=str(BOB.address()),
                   amount=[Coin(denom="ninfer", amount="5")]).SerializeToString()


# (what, bytes, code): every one was accepted, or crashed a node, before the chain decoded
# canonically and range-checked what it reads. Codes 2, 7 and 18 are refused while decoding, so
# a block keeps no trace of them; code 10 fails in the message, after the ante handler took the
# fee and the sequence, as in the Cosmos SDK.
HOSTILE = [
    ("TxRaw repeating body_bytes, garbage first",
     b"\x0a\x02\xff\xff" + send(), 2),
    ("TxRaw with an unknown field",
     send() + b"\x98\x06\x01", 2),
    ("signed body with an unknown field",
     lambda: with_body(parts()[0].body_bytes + b"\x98\x06\x01"), 2),
    ("signed body with a padded varint",
     lambda: with_body(parts()[0].body_bytes + b"\x18\x85\x00"), 2),
    ("signed body writing out an empty memo",
     lambda: with_body(parts()[0].body_bytes + b"\x12\x00"), 2),
    ("signed MsgSend repeating from_address, another account first",
     lambda: with_send(b"\x0a" + bytes([len(str(BOB.address()))]) + str(BOB.address()).encode()
                       + send_bytes()), 2),
    ("gas limit beyond int64",
     lambda: send(gas_limit=(1 << 64) - 1), 18),
    ("gas limit of exactly 2^63",
     lambda: send(gas_limit=1 << 63), 18),
    ("upper-case spelling of the sender's address",
     lambda: with_send(MsgSend(from_address=str(ALICE.address()).upper(),
                               to_address=str(BOB.address()),
                               amount=[Coin(denom="ninfer", amount="5")]).SerializeToString()), 7),
    ("a superscript digit as an amount", lambda: with_coin("²"), 10),
    ("an Arabic-Indic digit as an amount", lambda: with_coin("٣"), 10),
    ("an amount with a leading zero", lambda: with_coin("05"), 10),
    ("an amount of 5,000 digits", lambda: with_coin("9" * 5000), 10),
    ("a denom ending in a newline", lambda: with_send(MsgSend(
        from_address=str(ALICE.address()), to_address=str(BOB.address()),
        amount=[Coin(denom="ninfer\n", amount="5")]).SerializeToString()), 10),
]


class AbciClient:
    """CometBFT's side of one ABCI connection: requests out, responses back at each flush."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, **request: object) -> abci.Response:
        for message in (abci.Request(**request), abci.Request(flush={})):
            body = message.SerializeToString()
            self.writer.write(uvarint(len(body)) + body)
        await self.writer.drain()
        responses = []
        for _ in range(2):
            length = await read_uvarint(self.reader)
            responses.append(abci.Response.FromString(await self.reader.readexactly(length)))
        assert responses[1].WhichOneof("value") == "flush"
        return responses[0]


async def over_socket(app: Application, steps: object) -> None:
    server = AbciServer(app)
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await steps(AbciClient(reader, writer))
    finally:
        writer.close()
        await server.close()


@pytest.mark.parametrize(("what", "tx", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_tx_is_refused_in_checktx_and_fails_alone_in_a_block(what, tx, code):
    hostile = tx() if callable(tx) else tx
    honest = from_bob()
    charged = code == 10
    node, twin = started(), started()
    twin.finalize_block(finalize_request(1, [hostile, honest] if charged else [honest]))
    twin.commit(abci.RequestCommit())

    async def steps(client: AbciClient) -> None:
        checked = (await client.call(check_tx=abci.RequestCheckTx(tx=hostile))).check_tx
        assert checked.code == code, checked.log
        assert checked.log
        block = (await client.call(finalize_block=finalize_request(1, [hostile, honest])))
        results = block.finalize_block.tx_results
        assert [r.code for r in results] == [code, 0], results[0].log
        assert block.finalize_block.app_hash == twin.store.app_hash
        assert (await client.call(commit=abci.RequestCommit())).WhichOneof("value") == "commit"
        following = await client.call(finalize_block=finalize_request(
            2, [send(sequence=int(charged)), from_bob(sequence=1)]))
        assert [r.code for r in following.finalize_block.tx_results] == [0, 0]
        assert (await client.call(commit=abci.RequestCommit())).WhichOneof("value") == "commit"
        info = (await client.call(info=abci.RequestInfo())).info
        assert info.last_block_height == 2

    asyncio.run(over_socket(node, steps))
    stored = node.committed_tx(tx_hash(hostile).hex())
    assert stored is not None and stored.code == code
    if charged:  # the fee and the sequence, no coins moved
        state = node.store.begin_block()
        assert node.modules.bank.balance(state, bytes(ALICE.address()), "ninfer") == \
            FUNDS - 2 * 2_000 - 5 + 7 + 7


def test_the_canonical_tx_a_client_builds_is_accepted():
    for raw in (send(), with_body(parts()[0].body_bytes)):
        assert started().check_tx(abci.RequestCheckTx(tx=raw)).code == 0


def test_simulation_is_capped_by_the_nodes_gas_limit_not_the_txs():
    app = started()
    assert app.simulate(send(gas_limit=1)).ok
    app.simulate_gas_limit = 5_000
    outcome = app.simulate(send())
    assert outcome.code == 11 and "out of gas" in outcome.log


@pytest.mark.parametrize("raw", [b"\xff" * 10, b"\x0a\x80", send()[:-3]])
def test_undecodable_bytes_get_a_code_from_checktx_and_simulate(raw):
    app = started()
    before = app.store.app_hash
    assert app.check_tx(abci.RequestCheckTx(tx=raw)).code == 2
    assert app.simulate(raw).code == 2
    assert app.store.app_hash == before
