"""cosmjs, the library Keplr-style wallets are built on, against a CometBFT-mode chain node over
CometBFT RPC alone (no gRPC): queries through abci_query, gas by simulation, broadcast, tx
lookup by hash and by height, and bad txs refused with a clear error.

The client is `tests/cosmjs/client_flow.js` with the exact cosmjs versions of
`tests/cosmjs/package-lock.json` (`make cosmjs` runs `npm ci` there); it prints what it saw as
JSON and the assertions are here. cosmpy, over the node's gRPC, checks the same balances.
"""

import json
import math
import urllib.request
from collections.abc import Iterator
from decimal import Decimal

import pytest
from chain_client import ledger
from chain_nodes import FUNDS, ChainNode, beacon_tx_hash, funded_keys, template
from conftest import free_port_block
from cosmjs_client import client_flow

from genesis.localnet import PORTS_PER_NODE, layout_localnet

AMOUNT = 12_345
GAS_MULTIPLIER = Decimal("1.4")  # cosmjs's for an "auto" fee


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Iterator[dict]:
    keys = funded_keys(2)
    [info] = layout_localnet(template(keys), tmp_path_factory.mktemp("cosmjs") / "net",
                             validators=1, base_port=free_port_block(PORTS_PER_NODE),
                             timeout_commit="300ms")
    node = ChainNode(info.home, info.ports.grpc).start()
    try:
        node.wait_height(2)
        yield {"rpc": info.ports.rpc_url, "grpc": info.ports.grpc, "keys": keys, "node": node}
    finally:
        node.close()


@pytest.fixture(scope="module")
def flow(chain) -> dict:
    """What client_flow.js saw, run once against the chain."""
    sender, recipient = chain["keys"]
    return client_flow(chain["rpc"], sender.private_key_hex, recipient.address, AMOUNT)


def test_cosmjs_reads_chain_id_height_account_balances_and_inference_queries(chain, flow):
    sender = chain["keys"][0].address
    assert flow["chain_id"] == flow["status_chain_id"] == "inferchain-test"
    assert flow["height"] >= 2
    assert flow["sender_account"] == {"address": sender, "number": 0, "sequence": 0}
    assert flow["unknown_account"] is None
    assert flow["all_balances"] == [f"{FUNDS}ninfer"]
    assert flow["min_gas_price"] == "0.01"


def test_an_auto_fee_send_is_simulated_paid_at_the_minimum_gas_price_and_lands(chain, flow):
    sender, recipient = (k.address for k in chain["keys"])
    delivered, found = flow["delivered"], flow["looked_up"]
    assert delivered["code"] == 0 and delivered["height"] > flow["height"]
    gas_limit = round(flow["gas_estimate"] * GAS_MULTIPLIER)
    fee = math.ceil(gas_limit * Decimal(flow["min_gas_price"]))
    assert delivered["gas_wanted"] == found["gas_limit"] == gas_limit
    assert 0 < delivered["gas_used"] <= flow["gas_estimate"]
    assert {"transfer", "message", "coin_spent", "coin_received"} <= \
        set(delivered["event_types"])
    assert found == {
        "hash": delivered["hash"], "height": delivered["height"], "code": 0,
        "memo": "sent by cosmjs", "type_url": "/cosmos.bank.v1beta1.MsgSend",
        "to_address": recipient, "amount": [{"denom": "ninfer", "amount": str(AMOUNT)}],
        "gas_limit": gas_limit, "fee": [{"denom": "ninfer", "amount": str(fee)}],
        "signer_sequence": 0}
    assert flow["balances_before"] == {sender: str(FUNDS), recipient: str(FUNDS)}
    assert flow["balances_after"] == {sender: str(FUNDS - AMOUNT - fee),
                                      recipient: str(FUNDS + AMOUNT)}
    client = ledger(chain["grpc"])
    assert client.query_bank_balance(recipient, "ninfer") == FUNDS + AMOUNT
    assert client.query_bank_balance(sender, "ninfer") == FUNDS - AMOUNT - fee


def test_the_tx_is_found_by_hash_by_height_and_by_sender_and_a_missing_one_is_none(chain,
                                                                                   flow):
    tx_hash = flow["delivered"]["hash"]
    assert flow["by_hash"] == flow["by_sender"] == [tx_hash]
    # Its block's txs: the proposer's beacon proof, first in every block, and the send.
    assert sorted(flow["by_height"]) == sorted(
        [beacon_tx_hash(chain["rpc"], flow["delivered"]["height"]), tx_hash])
    assert flow["missing_tx"] is None
    with urllib.request.urlopen(f"{chain['rpc']}/tx?hash=0x{tx_hash}", timeout=5) as reply:
        indexed = json.loads(reply.read())["result"]
    assert (indexed["hash"], int(indexed["height"]), indexed["tx_result"]["code"]) == (
        tx_hash, flow["delivered"]["height"], 0)


def test_bad_txs_are_refused_with_a_clear_error_and_change_nothing(chain, flow):
    assert flow["auto_fee_overspend"]["message"].startswith(
        "Query failed with (18): rpc error: code = InvalidArgument desc = simulation failed "
        "(code 5, codespace sdk): spendable balance")
    overspend = flow["overspend"]
    assert (overspend["code"], overspend["codespace"]) == (5, "sdk")
    assert "Broadcasting transaction failed with code 5" in overspend["message"]
    assert "is smaller than" in overspend["message"]
    for bad in ("wrong_chain", "bad_signature"):
        assert (flow[bad]["code"], flow[bad]["codespace"]) == (4, "sdk"), flow[bad]
        assert "signature verification failed; please verify account number (0) and " \
               "chain-id (inferchain-test)" in flow[bad]["message"]
    assert flow["balances_final"] == flow["balances_after"]
    assert flow["sequence_final"] == 1
