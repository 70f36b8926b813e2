"""Every process serves Prometheus metrics on its own port, and real traffic shows in them.

A solo chain node, one participant's API node and its ML node (the one model-loading process
here), each with its metrics port on, serve a developer's requests through the official openai
client and the ML node's own gRPC clients; then each /metrics is scraped over HTTP and parsed
as Prometheus parses it. A metrics port that is taken or no port at all stops each process at
start-up with an error naming the setting.
"""

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import openai
import pytest
from chain_client import TxSpec, broadcast_raw, ledger, send_msg, signed_tx
from chain_nodes import ROOT, funded_keys, template
from conftest import free_port
from local_network import MODEL, LocalNetwork, MlNodes, poll
from metrics_scrape import Scrape
from mlnode_client import chat_ids
from test_chain_cometbft import Localnet

from apinode.config import write_home
from genesis.app_config import add_metrics_port
from genesis.comet_config import find_cometbft
from genesis.solo import layout_solo
from inferchain_pb.mlnode.v1 import mlnode_pb2 as pb
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as pb_grpc

HI = [{"role": "user", "content": "What is the capital of France?"}]
CHAT_ROUTE = "/v1/chat/completions"
START_EXIT_S = 120  # a process refusing its config exits before it serves anything


class Metered:
    """The network and where each of its processes serves /metrics."""

    def __init__(self, network: LocalNetwork, ml: MlNodes, api_metrics_port: int) -> None:
        self.network = network
        self.mlnode_port = ml.ports[0]
        self.chain = f"http://127.0.0.1:{network.chain_metrics_port}/metrics"
        self.api = f"http://127.0.0.1:{api_metrics_port}/metrics"
        self.mlnode = f"http://127.0.0.1:{ml.metrics_ports[0]}/metrics"


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Metered]:
    ml = MlNodes(tmp_path_factory.mktemp("mlnodes"), 1, metrics=True)
    try:
        api_metrics_port = free_port()
        network = LocalNetwork(tmp_path_factory.mktemp("network"), ml.ports,
                               node_settings=[{"metrics_port": api_metrics_port}],
                               chain_metrics_port=free_port())
        try:
            yield Metered(network, ml, api_metrics_port)
        finally:
            network.close()
    finally:
        ml.close()


def test_requests_tokens_blocks_and_score_jobs_show_in_each_process_metrics(metered: Metered):
    network = metered.network
    height_before = Scrape(metered.chain).value("inferchain_chain_height")
    assert height_before >= 2  # the network waited for height 2 before starting the API node
    client = network.client(network.nodes[0])
    reply = client.chat.completions.create(model=MODEL, messages=HI, max_tokens=8,
                                           temperature=0)
    stream = list(client.chat.completions.create(
        model=MODEL, messages=HI, max_tokens=6, temperature=0, seed=3, stream=True,
        stream_options={"include_usage": True}))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=HI, temperature=7)
    completion_tokens = reply.usage.completion_tokens + stream[-1].usage.completion_tokens
    assert reply.usage.completion_tokens >= 1 and stream[-1].usage.completion_tokens >= 1

    # A streamed request is counted once its response has closed, which can come a moment
    # after the client read its last chunk.
    api = poll(lambda: (lambda s: s if s.value("inferchain_api_requests_total", route=CHAT_ROUTE,
                                               code="200") >= 2 else None)(Scrape(metered.api)),
               "both answered requests counted", 30)
    assert api.value("inferchain_api_requests_total", route=CHAT_ROUTE, code="400") >= 1
    assert api.value("inferchain_api_request_seconds_count", route=CHAT_ROUTE) >= 3
    assert api.value("inferchain_api_time_to_first_token_seconds_count") >= 2
    assert api.value("inferchain_api_output_tokens_total") >= completion_tokens
    assert api.value("inferchain_api_executor_fallbacks_total") == 0  # nobody to fall back to
    # The two starts the transfer agent owes the chain, in whatever state they are now.
    assert api.value("inferchain_api_outbox_entries") >= 2
    assert api.value("inferchain_api_outbox_oldest_age_seconds") >= 0

    for choice in (reply.model_extra["inference_id"], stream[0].model_extra["inference_id"]):
        network.finished(choice)  # the starts and finishes are in blocks now

    def risen() -> Scrape | None:
        scrape = Scrape(metered.chain)
        return scrape if scrape.value("inferchain_chain_height") > height_before else None

    chain = poll(risen, "the chain's height to rise", 30)
    # Two starts and two finishes went through CheckTx into blocks, and succeeded there. The
    # node's outbox may carry several of them in one tx, so only one tx is certain; and in
    # solo mode every tx a block carries passed CheckTx first.
    executed = chain.value("inferchain_chain_txs_total", code="0")
    assert executed >= 1
    assert chain.value("inferchain_chain_checktx_total", kind="new", code="0") >= executed
    assert chain.value("inferchain_chain_block_txs_sum") >= executed
    assert chain.value("inferchain_chain_block_txs_count") >= chain.value(
        "inferchain_chain_height") - 1  # every block since the first
    assert chain.value("inferchain_chain_finalize_block_seconds_count") >= 1
    assert chain.value("inferchain_chain_commit_seconds_count") >= 1
    assert chain.value("inferchain_chain_block_interval_seconds_count") >= 1
    assert chain.value("inferchain_chain_mempool_txs") >= 0

    with grpc.insecure_channel(f"127.0.0.1:{metered.mlnode_port}") as channel:
        stub = pb_grpc.MLNodeStub(channel)
        prompt = chat_ids(stub, "Say hi.")
        stub.Score(pb.ScoreRequest(prompt_ids=prompt, output_ids=prompt[:3], top_logprobs=2),
                   timeout=120)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Score(pb.ScoreRequest(prompt_ids=prompt, output_ids=[], top_logprobs=2),
                       timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ml = Scrape(metered.mlnode)
    assert ml.value("inferchain_mlnode_generated_tokens_total") >= completion_tokens
    assert ml.value("inferchain_mlnode_batch_size_count") >= 1
    assert ml.value("inferchain_mlnode_score_seconds_count") >= 1
    assert ml.value("inferchain_mlnode_score_refused_total") >= 1
    assert ml.value("inferchain_mlnode_queued_requests") == 0
    assert ml.value("inferchain_mlnode_running_requests") == 0


def test_the_chain_height_in_metrics_keeps_rising(metered: Metered):
    first = Scrape(metered.chain).value("inferchain_chain_height")
    poll(lambda: Scrape(metered.chain).value("inferchain_chain_height") > first or None,
         "the height in the chain node's metrics to rise", 30)


@pytest.mark.skipif(find_cometbft() is None, reason="cometbft is not installed (make cometbft)")
def test_a_cometbft_node_counts_what_its_app_sees_in_check_tx_and_blocks(tmp_path):
    net = Localnet(tmp_path / "net", validators=1)
    metrics_port = free_port()
    add_metrics_port(net.infos[0].home, metrics_port)
    node = net.nodes[0].start()
    try:
        node.wait_height(2)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        client = ledger(net.infos[0].ports.grpc)
        alice, bob = net.wallets
        sent = client.send_tokens(bob.address(), 1_000, "ninfer", alice).wait_to_complete()
        assert sent.response.code == 0
        number = client.query_account(alice.address()).number
        stale = signed_tx(alice, TxSpec([send_msg(str(alice.address()), str(bob.address()), 1)],
                                        sequence=0, account_number=number)).tx.SerializeToString()
        assert broadcast_raw(client, stale)[0] == 32  # the sequence is used: CheckTx refuses it
        node.wait_height(sent.response.height + 1)
        scrape = Scrape(url)
        assert scrape.value("inferchain_chain_height") >= sent.response.height
        assert scrape.value("inferchain_chain_checktx_total", kind="new", code="0") >= 1
        assert scrape.value("inferchain_chain_checktx_total", kind="new", codespace="sdk",
                            code="32") == 1
        assert scrape.value("inferchain_chain_txs_total", code="0") >= 1
        assert scrape.value("inferchain_chain_mempool_txs") == 0  # the block carried the send
        assert scrape.value("inferchain_chain_finalize_block_seconds_count") >= 2
        assert scrape.value("inferchain_chain_block_interval_seconds_count") >= 1
    finally:
        node.close()


# A metrics port the process cannot serve.

@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def refused_start(args: list[str]) -> str:
    """The output of a process that must exit at start-up, which it did with an error."""
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=START_EXIT_S)
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def chain_home(root: Path, metrics_port: int) -> Path:
    home = layout_solo(template(funded_keys(1)), root / "chain", grpc_port=free_port()).home
    add_metrics_port(home, metrics_port)
    return home


def api_home(root: Path, metrics_port: object) -> Path:
    home = root / "participant"
    write_home(home, {"chain_id": "inferchain-test", "listen": f"127.0.0.1:{free_port()}",
                      "chain_grpc": f"127.0.0.1:{free_port()}",
                      "mlnode": f"127.0.0.1:{free_port()}",
                      "metrics_port": metrics_port}, funded_keys(1)[0].private_key_hex)
    return home


def test_a_chain_node_whose_metrics_port_is_taken_stops_saying_so(tmp_path, taken_port):
    home = chain_home(tmp_path, taken_port)
    out = refused_start(["-m", "chain", "node", "start", "--home", str(home)])
    assert (f"inferchain node: {home}/config/app.toml: metrics_port = {taken_port}: cannot "
            f"serve metrics on 127.0.0.1:{taken_port} (Address already in use)") in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("port", ["70000", "-1", '"9100"', "true"])
def test_a_chain_node_whose_metrics_port_is_no_port_stops_saying_so(tmp_path, port):
    home = layout_solo(template(funded_keys(1)), tmp_path / "chain", grpc_port=free_port()).home
    with (home / "config" / "app.toml").open("a") as app_toml:
        app_toml.write(f"metrics_port = {port}\n")
    out = refused_start(["-m", "chain", "node", "start", "--home", str(home)])
    assert f"{home}/config/app.toml: metrics_port must be a port number from 1 to 65535, or 0 " \
           "for no metrics" in out, out


def test_an_api_node_whose_metrics_port_is_taken_stops_saying_so(tmp_path, taken_port):
    home = api_home(tmp_path, taken_port)
    out = refused_start(["-m", "apinode", "serve", "--home", str(home)])
    assert (f"apinode: {home}/apinode.toml: metrics_port = {taken_port}: cannot serve metrics "
            f"on 127.0.0.1:{taken_port} (Address already in use)") in out, out


def test_an_api_node_whose_metrics_port_is_no_port_stops_saying_so(tmp_path):
    home = api_home(tmp_path, 65536)
    out = refused_start(["-m", "apinode", "serve", "--home", str(home)])
    assert f"{home}/apinode.toml: metrics_port must be a port number from 1 to 65535" in out, out


def test_an_ml_node_whose_metrics_port_is_taken_stops_before_loading_its_model(taken_port):
    out = refused_start(["-m", "mlnode", "serve", "--port", str(free_port()),
                         "--metrics-port", str(taken_port)])
    assert (f"mlnode: error: --metrics-port {taken_port}: cannot serve metrics on "
            f"127.0.0.1:{taken_port} (Address already in use)") in out, out
    assert "torch engine ready" not in out


def test_an_ml_node_whose_metrics_port_is_no_port_stops_saying_so():
    out = refused_start(["-m", "mlnode", "serve", "--metrics-port", "70000"])
    assert "--metrics-port must be a port number from 1 to 65535, or 0 for no metrics" in out
