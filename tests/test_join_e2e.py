"""A participant joins a running 3-validator CometBFT network, serves, is paid and leaves,
from an empty directory and with only the commands docs/operators.md gives.

The network: three validators (`python -m chain node start`, each with its CometBFT), each
the consensus key of a genesis participant whose API node shares one ML node, under 60-block
epochs whose first 20 blocks are the proof-of-compute window. The newcomer's steps are the
shell blocks of docs/operators.md marked ``<!-- step: NAME -->``, run with bash as written
(its variables set here), in an empty working directory. The test shows:

- ``inferchain init`` refuses a wrong chain id, a genesis that is not the network's (wrong
  hash), an unreachable peer and an existing home, each with a clear error, leaving the home
  absent or byte for byte as it was;
- the newcomer catches up by block sync; from then on its block headers carry the network's
  app hash at every height (CometBFT accepts block H + 1 only when its header's app hash is
  the one the node's own application computed for H, so this is the node's own state), and
  its application's ``Info`` answers, sampled throughout, agree as well;
- ``tx inference register`` with the consensus-key proof makes it a participant with weight
  0; its first proof of compute gives it weight at the next boundary, where it becomes a
  member and CometBFT counts its validator at power = weight from two blocks later;
- under a light load of real OpenAI requests (the official client with its default retries,
  round robin over every participant's endpoint), each inference runs on the first pick of its
  chain draw, and the newcomer serves a share close to its weight share (tolerances below);
- the checks its inferences were assigned (two owed on average each) pass (VALIDATED; one
  left unchecked stays FINISHED and is paid) and the epoch's settlement pays it work and
  reward;
- ``tx inference withdraw``: at the next boundary it is no member and its validator has no
  power; nothing it earned is left unpaid and none of its inferences is left in escrow.
"""

import base64
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import grpc
import openai
import pytest
from chain_nodes import FUNDS, ROOT, ChainNode
from conftest import free_port, free_port_block, wait_healthy
from inference_actors import genesis_models
from local_network import CHARGED, ApiNode, MlNodes, poll, stop_all, wait_http
from nacl.signing import SigningKey
from settled_records import query_at, validation_task
from test_consensus_power_e2e import comet_powers, rpc, validator_pubkey

from apinode.config import write_home
from apinode.openai_signing import signed_http_client
from genesis.account_keys import generate_account_keys
from genesis.comet_config import find_cometbft
from genesis.localnet import PORTS_PER_NODE, layout_localnet
from genesis.network_genesis import genesis_hash, read_genesis
from genesis.template import parse_template
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import FINISHED, STARTED, VALIDATED, Inference
from inferchain_pb.inference.v1.validation_pb2 import (
    IN_VOTE,
    OPEN,
    PASSED,
    UNCHECKED,
    ValidationTask,
)
from inferchain_pb.mlnode.v1 import mlnode_pb2_grpc as ml_grpc

pytestmark = pytest.mark.skipif(find_cometbft() is None,
                                reason="cometbft is not installed (make cometbft)")

CHAIN_ID = "inferchain-join"
MODEL = genesis_models()[0]["id"]
EPOCH = 60
# Checks run on CPU ML nodes that also serve: a window of 40 blocks leaves room for them on a
# busy machine; the reveal window holds it and the vote after it, with their openings.
REVEAL = 100
PARAMS = {
    "inference": {"expiration_blocks": 2000, "max_draw_age_blocks": 200},
    # No cap on a weight's share, so each weight is its accepted nonces as counted.
    "epochs": {"epoch_length_blocks": EPOCH, "poc_window_blocks": 20,
               "poc_validation_window_blocks": 15, "max_weight_share_ppm": 1_000_000},
    "validation": {"validation_window_blocks": 40, "voting_period_blocks": 20,
                   "opening_blocks": 20, "reveal_window_blocks": REVEAL, "canary_rate_ppm": 0},
}
# The genesis participants share one ML node: a fixed PoC budget each keeps their three
# proofs within the window on a small machine.
GENESIS_WORKER = {"poc_max_nonces": 1500, "poc_interval_s": 0.5, "validator_interval_s": 1.0}
REQUESTS = 24
DRAW_SAMPLE = 400
PASSPHRASE = "join-the-network"
OPERATORS = ROOT / "docs" / "operators.md"
STEP = re.compile(r"<!-- step: ([a-z-]+) -->\n```sh\n(.*?)```", re.S)


def doc_steps() -> dict[str, str]:
    steps = dict(STEP.findall(OPERATORS.read_text()))
    assert {"init", "start-chain", "catching-up", "start-mlnode", "address", "register",
            "start-apinode", "check", "withdraw"} <= set(steps), sorted(steps)
    return steps


def header_app_hashes(url: str, low: int, high: int) -> dict[int, str]:
    """Each block header's app hash (the state after the block before), ``/blockchain``
    answering 20 headers at a time."""
    found = {}
    for start in range(low, high + 1, 20):
        metas = rpc(url, f"blockchain?minHeight={start}&maxHeight={min(high, start + 19)}")
        for meta in metas["block_metas"]:
            found[int(meta["header"]["height"])] = meta["header"]["app_hash"]
    return found


def home_files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*"))
            if p.is_file()}


def binomial_bound(share: float, n: int, sigmas: float = 4.0) -> float:
    return sigmas * math.sqrt(share * (1 - share) / n)


class Network:
    """Three validators whose genesis participants serve from the first block."""

    def __init__(self, root: Path, stack: ExitStack) -> None:
        self.root = root
        self.developer, *owners = generate_account_keys(4)
        node_keys = [SigningKey.generate() for _ in owners]
        api_ports = [free_port() for _ in owners]
        template = parse_template({
            "chain_id": CHAIN_ID,
            "accounts": [{"address": k.address, "coins": f"{FUNDS}ninfer"}
                         for k in (self.developer, *owners)],
            "validators": [{"name": "val0", "power": 10}],
            "models": genesis_models(),
            "participants": [
                {"address": k.address, "url": f"http://127.0.0.1:{port}",
                 "node_pubkey": bytes(node_key.verify_key).hex(),
                 "models": [{"model_id": MODEL,
                             "weights_sha256": genesis_models()[0]["weights_sha256"]}]}
                for k, node_key, port in zip(owners, node_keys, api_ports, strict=True)],
            "params": PARAMS,
        })
        self.infos = layout_localnet(template, root / "net", validators=3,
                                     base_port=free_port_block(3 * PORTS_PER_NODE),
                                     timeout_commit="300ms")
        # Each genesis participant names its validator as its consensus key, so the
        # validator set follows the participants' weights from the first boundary on.
        keys = [validator_pubkey(info.home) for info in self.infos]
        for info in self.infos:
            path = info.home / "config" / "genesis.json"
            genesis = json.loads(path.read_text())
            for entry, key in zip(genesis["app_state"]["inference"]["participants"], keys,
                                  strict=True):
                entry["consensus_pubkey"] = key.hex()
            path.write_text(json.dumps(genesis, indent=2) + "\n")
        self.genesis = self.infos[0].home / "config" / "genesis.json"
        self.rpc_url = self.infos[0].ports.rpc_url
        self.mlnodes = MlNodes(root, 1)
        stack.callback(self.mlnodes.close)
        self.chains = [ChainNode(info.home, info.ports.grpc) for info in self.infos]
        for chain in self.chains:
            stack.callback(chain.close)
            chain.start()
        self.chains[0].wait_height(2)
        self.api_nodes = []
        for i, (owner, node_key, port) in enumerate(zip(owners, node_keys, api_ports,
                                                        strict=True)):
            home = root / f"participant{i}"
            write_home(home, {
                "chain_id": CHAIN_ID, "listen": f"127.0.0.1:{port}",
                "public_url": f"http://127.0.0.1:{port}",
                "chain_grpc": f"127.0.0.1:{self.infos[i].ports.grpc}",
                "mlnode": f"127.0.0.1:{self.mlnodes.ports[0]}",
                "consensus_key_file": str(self.infos[i].home / "config"
                                          / "priv_validator_key.json"),
                **GENESIS_WORKER}, owner.private_key_hex)
            (home / "node.key").write_text(bytes(node_key).hex() + "\n")
            node = ApiNode(home, f"http://127.0.0.1:{port}", owner,
                           f"sqlite:///{home / 'apinode.sqlite'}")
            stack.callback(node.close)  # closed before the chains and the ML node
            node.start()
            self.api_nodes.append(node)
        for node in self.api_nodes:
            node.wait_ready()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.infos[0].ports.grpc}")
        stack.callback(self.channel.close)

    def query(self, name: str, request, reply_type, height: int = 0):
        return query_at(self.channel, name, request, reply_type, height)

    def height(self) -> int:
        return self.query("Status", q.QueryStatusRequest(), q.QueryStatusResponse).height

    def epoch(self, number: int | None = None) -> q.QueryEpochResponse:
        request = q.QueryEpochRequest() if number is None else q.QueryEpochRequest(epoch=number)
        return self.query("Epoch", request, q.QueryEpochResponse)

    def participant(self, address: str):
        return self.query("Participant", q.QueryParticipantRequest(address=address),
                          q.QueryParticipantResponse).participant

    def known_participant(self, address: str):
        """The participant, or None while the validator queried here has not applied the
        block that registered it (the CLI waited for that block at the newcomer's node)."""
        try:
            return self.participant(address)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def inference(self, inference_id: str):
        return self.query("Inference", q.QueryInferenceRequest(id=inference_id),
                          q.QueryInferenceResponse).inference

    def task(self, inference_id: str) -> ValidationTask:
        return validation_task(self.query, inference_id)

    def draw_order(self, inference_id: str, height: int) -> list[str]:
        return list(self.query("Draw", q.QueryDrawRequest(
            inference_id=inference_id, model_id=MODEL, draw_height=height),
            q.QueryDrawResponse).order)

    def settlement(self, epoch: int) -> q.QueryEpochSettlementResponse | None:
        try:
            return self.query("EpochSettlement", q.QueryEpochSettlementRequest(epoch=epoch),
                              q.QueryEpochSettlementResponse)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def wait_height(self, height: int, timeout: float) -> None:
        poll(lambda: self.height() >= height or None, f"height {height}", timeout, 0.3)


class Newcomer:
    """Runs docs/operators.md's steps with bash, in an empty working directory."""

    def __init__(self, root: Path, net: Network, stack: ExitStack) -> None:
        self.steps = doc_steps()
        self.cwd = root / "newcomer"
        self.cwd.mkdir()
        self.home = self.cwd / "node"
        self.base_port = free_port_block(6)
        self.public_url = f"http://127.0.0.1:{self.base_port + 4}"
        self.rpc_url = f"http://127.0.0.1:{self.base_port + 1}"
        peers = ",".join(f"{info.node_id}@127.0.0.1:{info.ports.p2p}" for info in net.infos)
        self.env = {
            **os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1",
            "PATH": f"{Path(sys.executable).parent}:{Path.home() / 'go' / 'bin'}:"
                    f"{os.environ['PATH']}",
            "NODE_HOME": str(self.home), "MONIKER": "gpu-box-1", "CHAIN_ID": CHAIN_ID,
            "GENESIS_HASH": genesis_hash(read_genesis(net.genesis)),
            "PEER_RPC": net.rpc_url, "PEERS": peers, "BASE_PORT": str(self.base_port),
            "PUBLIC_URL": self.public_url, "MODEL": MODEL,
        }
        self.processes: list[subprocess.Popen] = []
        stack.callback(lambda: stop_all(self.processes))

    def run(self, step: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-euo", "pipefail", "-c", self.steps[step]],
                              cwd=self.cwd, env={**self.env, **env}, input=stdin, text=True,
                              capture_output=True, timeout=180, check=False)

    def ok(self, step: str, stdin: str = "") -> str:
        done = self.run(step, stdin)
        assert done.returncode == 0, f"{step}: {done.stderr[-3000:]}"
        return done.stdout

    def start(self, step: str) -> tuple[subprocess.Popen, Path]:
        """A long-running step (one command), its output in ``<step>.log``."""
        log = self.cwd / f"{step}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(["bash", "-c", "exec " + self.steps[step].strip()],
                                       cwd=self.cwd, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT)
        self.processes.insert(0, process)  # stopped before those started earlier
        return process, log


class AppHashWatch:
    """Samples the newcomer application's own ``Info`` (height, app hash) every 0.5 s."""

    def __init__(self, rpc_url: str) -> None:
        self.rpc_url = rpc_url
        self.samples: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                info = rpc(self.rpc_url, "abci_info")["response"]
            except OSError:
                continue
            height = int(info.get("last_block_height", 0))
            if height:
                self.samples[height] = base64.b64decode(info["last_block_app_hash"]).hex().upper()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def refused(newcomer: Newcomer, expected: str, **env: str) -> None:
    done = newcomer.run("init", PASSPHRASE + "\n", **env)
    assert done.returncode == 1, done
    assert done.stderr.startswith("Error: ") and expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not newcomer.home.exists(), "a refused init left a home behind"


def ask(client: openai.OpenAI, index: int, logs: list[Path]) -> str:
    """The inference id of an answered request; a refusal the client's retries did not get
    past fails the test with every API node's warnings, which tell what each pick did."""
    try:
        reply = client.chat.completions.create(
            model=MODEL, max_tokens=8, seed=index,
            messages=[{"role": "user", "content": f"Count to {index + 3}."}])
    except openai.APIStatusError as exc:
        warnings = "\n".join(f"{log.parent.name}: {line}" for log in logs
                             for line in log.read_text().splitlines()[-400:]
                             if " WARNING " in line or " ERROR " in line)
        raise AssertionError(f"request {index} refused: {exc}\n{warnings[-8000:]}") from exc
    return reply.model_extra["inference_id"]


def test_a_participant_joins_serves_is_paid_and_leaves(tmp_path):
    started = time.monotonic()
    with ExitStack() as stack:
        net = Network(tmp_path, stack)
        newcomer = Newcomer(tmp_path, net, stack)
        print(f"network up after {time.monotonic() - started:.0f}s at height {net.height()}")

        # Bad inputs first: each refused in words, no home left behind.
        refused(newcomer, f"the genesis is for chain '{CHAIN_ID}', not 'inferchain-other'",
                CHAIN_ID="inferchain-other")
        refused(newcomer, "not the expected " + "ab" * 32, GENESIS_HASH="ab" * 32)
        refused(newcomer, "cannot reach the peer's RPC",
                PEER_RPC=f"http://127.0.0.1:{free_port()}")

        summary = newcomer.ok("init", PASSPHRASE + "\n")
        assert "account: infer1" in summary and len(summary.split("\n\n")[-1].split()) == 24
        made = home_files(newcomer.home)
        again = newcomer.run("init", PASSPHRASE + "\n")
        assert again.returncode == 1 and "already exists" in again.stderr, again
        assert home_files(newcomer.home) == made, "a refused init changed the home"

        newcomer.start("start-chain")
        mlnode, mlnode_log = newcomer.start("start-mlnode")
        network_height = net.height()
        poll(lambda: newcomer.run("catching-up").stdout.strip() == "false" or None,
             "the newcomer to catch up", 240, 1.0)
        caught_up = int(rpc(newcomer.rpc_url, "status")["sync_info"]["latest_block_height"])
        assert caught_up >= network_height
        watch = AppHashWatch(newcomer.rpc_url)
        stack.callback(watch.close)
        print(f"caught up by block sync at height {caught_up} after "
              f"{time.monotonic() - started:.0f}s")

        address = newcomer.ok("address").strip()
        dev_home = tmp_path / "developer-client"
        client = [sys.executable, "-m", "chain"]
        dev = ["--home", str(dev_home), "--keyring-backend", "test"]
        for args in (["keys", "import-hex", "dev", net.developer.private_key_hex, *dev],
                     ["tx", "bank", "send", "dev", address, "10000000000ninfer", *dev,
                      "--node", f"127.0.0.1:{net.infos[0].ports.grpc}", "-b", "block", "-y"]):
            done = subprocess.run([*client, *args], cwd=ROOT, env=newcomer.env, text=True,
                                  capture_output=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr

        my_key = validator_pubkey(newcomer.home)
        newcomer.ok("register", PASSPHRASE + "\n")
        registered = poll(lambda: net.known_participant(address), "the registration on chain",
                          30, 0.3)
        assert registered.active and registered.weight == 0
        assert bytes(registered.consensus_pubkey) == my_key

        with grpc.insecure_channel(f"127.0.0.1:{newcomer.base_port + 5}") as channel:
            wait_healthy(ml_grpc.MLNodeStub(channel), mlnode, mlnode_log)
        apinode, apinode_log = newcomer.start("start-apinode")
        assert wait_http(f"{newcomer.public_url}/health", apinode, apinode_log)["address"] \
            == address
        print(f"registered and serving after {time.monotonic() - started:.0f}s, at height "
              f"{net.height()}")

        # Its first accepted proof of compute gives it weight at the next boundary B.
        weight = poll(lambda: net.participant(address).weight or None,
                      f"the newcomer's first weight:\n{apinode_log.read_text()[-3000:]}",
                      6 * EPOCH, 1.0)
        joined = net.epoch().current.number
        submission = submissions(net, joined - 1)[address]
        assert submission.accepted and submission.weight == weight == submission.nonces
        start = 1 + joined * EPOCH
        members = {m.address: m.weight for m in net.epoch(joined).members.members}
        assert members[address] == weight, members
        # CometBFT counts the validator from two heights after the boundary's updates.
        net.wait_height(start + 2, 60)
        comet = comet_powers(net.rpc_url, start + 2)
        assert comet[my_key] == weight, comet
        assert my_key not in comet_powers(net.rpc_url, start + 1), "counted before the boundary"
        participant, listed, _ = json_documents(newcomer.ok("check"))
        assert participant["active"] and int(participant["weight"]) == weight, participant
        assert {"pubkey": base64.b64encode(my_key).decode(), "power": str(weight),
                "participant": address} in listed["validators"], listed
        print(f"epoch {joined}: weight {weight} of {sum(members.values())}, validator power "
              f"{comet[my_key]} of {sum(comet.values())}")

        # A signed request draws at the first block stamped at or after its timestamp, in
        # whole seconds: the load is signed from the second after the last block before the
        # boundary, so every draw is made among the new members.
        last_before = block_second(net.rpc_url, start - 1)
        poll(lambda: time.time() >= last_before + 1 or None, "the boundary's second to pass",
             5, 0.1)

        # A light load through every participant's endpoint.
        endpoints = [(node.url, node.address) for node in net.api_nodes]
        endpoints.append((newcomer.public_url, address))
        key = bytes.fromhex(net.developer.private_key_hex)
        # The official client's default retries: a developer asks again after a 503 (a draw
        # whose picks all failed on a loaded machine), and what is checked is what was served.
        clients = [openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=2,
                                 http_client=signed_http_client(key, agent, CHAIN_ID))
                   for url, agent in endpoints]
        # The draw's own share at the boundary, over many ids: 4 sigma of a binomial over
        # DRAW_SAMPLE picks (about ±0.1 at a share of 0.5).
        at_start = weight_share(net, joined, address)
        picks = sum(net.draw_order(f"sample-{n}", start)[0] == address
                    for n in range(DRAW_SAMPLE))
        assert abs(picks / DRAW_SAMPLE - at_start) <= binomial_bound(at_start, DRAW_SAMPLE), \
            (picks, at_start)

        logs = [node.log_path for node in net.api_nodes] + [apinode_log]

        def served(index: int) -> tuple[str, Inference, list[str]]:
            """One request's inference once charged, with its draw's order read then: the
            chain keeps a draw's block hash only while a start may still use it, and a slow
            load can outlast that (its epoch may even be settled and summarized by the
            end)."""
            inference_id = ask(clients[index % len(clients)], index, logs)
            found = poll(lambda: charged(net, inference_id), f"{inference_id} charged", 120, 0.5)
            return inference_id, found, net.draw_order(inference_id, found.draw_height)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(served, range(REQUESTS)))
        done = {inference_id: found for inference_id, found, _ in answers}
        assert all(d.draw_height >= start for d in done.values()), "drawn before the boundary"
        # The transfer agent takes the draw's order: the first pick runs each inference, or
        # the next one when the first did not answer in time (a retry, counted).
        for _, inference, order in answers:
            assert inference.executor == order[inference.attempt], (inference, order)
        retries = sum(d.attempt > 0 for d in done.values())
        mine = [i for i, d in done.items() if d.executor == address]
        # A draw picks by the weights of its height's epoch; a slow load may reach the next.
        expected = {e: weight_share(net, e, address)
                    for e in {(d.draw_height - 1) // EPOCH for d in done.values()}}
        # What it served: 4 sigma of a binomial over REQUESTS draws (about ±0.4 at 0.5: 24
        # requests are a light load, so the served share alone pins little; the exact
        # draw-order check above is what ties each request to the weights).
        share = len(mine) / REQUESTS
        mean = sum(expected[(d.draw_height - 1) // EPOCH] for d in done.values()) / REQUESTS
        print(f"newcomer served {len(mine)} of {REQUESTS} ({share:.0%}); weight share "
              f"{mean:.0%}; first picks {picks} of {DRAW_SAMPLE} sampled draws at height "
              f"{start} (weight share {at_start:.0%}); {retries} served by a later pick")
        assert mine and abs(share - mean) <= binomial_bound(mean, REQUESTS), (share, mean)

        # Leaving, as soon as the load is served: withdraw, then the next boundary.
        withdrawn = newcomer.ok("withdraw", PASSPHRASE + "\n")
        # In a block at the newcomer's node; the validator queried here may apply it later.
        left = poll(lambda: None if net.participant(address).active
                    else net.participant(address), f"the withdrawal on chain:\n{withdrawn}",
                    30, 0.3)
        assert left.withdrawn_height > 0
        last = (left.withdrawn_height - 1) // EPOCH  # the last epoch it is a member of
        after = 1 + (last + 1) * EPOCH
        net.wait_height(after + 2, 4 * EPOCH)
        assert address not in {m.address for m in net.epoch(last + 1).members.members}
        assert my_key not in comet_powers(net.rpc_url, after + 2)
        print(f"withdrew at height {left.withdrawn_height}; no power from height {after + 2}")

        # Its inferences were checked as the other members' seeds assigned them (two checks
        # owed on average at reputation 0, so now and then none) and every check passed.
        closed = {i: poll(lambda i=i: net.task(i) if net.task(i).state not in (OPEN, IN_VOTE)
                          else None, f"{i}'s checks closed", 2 * EPOCH, 1.0) for i in mine}
        assert all(t.state in (PASSED, UNCHECKED) for t in closed.values()), closed
        assert any(t.state == PASSED for t in closed.values()), closed
        for inference_id, found in closed.items():
            assert net.inference(inference_id).status == \
                (VALIDATED if found.state == PASSED else FINISHED), inference_id

        # Every epoch it was a member of is settled and paid; nothing of it is in escrow.
        for epoch in range(joined, last + 1):
            settled = poll(lambda e=epoch: net.settlement(e), f"epoch {epoch} settled",
                           2 * EPOCH + REVEAL, 1.0).settlement
            reward, = [r for r in settled.rewards if r.address == address]
            assert reward.paid and reward.reward_coins > 0, reward
            print(f"epoch {epoch} settlement: {reward.work_coins} work + "
                  f"{reward.reward_coins} reward")
        first = [r for r in net.settlement(joined).settlement.rewards if r.address == address]
        assert first[0].work_coins > 0
        # A probe it was drawn for before leaving may be charged after its last boundary (a
        # loaded machine finishes it a block late): that work is the next epoch's, settled
        # with it.
        poll(lambda: net.settlement(last + 1), f"epoch {last + 1} settled", 2 * EPOCH + REVEAL,
             1.0)
        account = net.query("Account", q.QueryAccountRequest(address=address),
                            q.QueryAccountResponse)
        assert account.work_balance == 0 and account.escrow == 0, account
        assert all(net.inference(i).status != STARTED for i in mine)

        # Its node agreed with the network at every height since it caught up.
        top = min(int(rpc(url, "status")["sync_info"]["latest_block_height"])
                  for url in (net.rpc_url, newcomer.rpc_url))
        theirs = header_app_hashes(net.rpc_url, caught_up, top)
        assert header_app_hashes(newcomer.rpc_url, caught_up, top) == theirs
        watch.close()
        sampled = {h: a for h, a in watch.samples.items() if h + 1 in theirs}
        assert len(sampled) > 20 and all(theirs[h + 1] == a for h, a in sampled.items())
        print(f"app hashes agree at heights {caught_up}..{top}; {len(sampled)} Info samples")
        print("state sizes at height", top, ":", state_sizes(newcomer.home))
    print(f"run time {time.monotonic() - started:.0f}s")


def comet_time_ns(stamp: str) -> int:
    """A CometBFT header time (RFC 3339, UTC, up to nanoseconds) in Unix nanoseconds."""
    seconds, _, fraction = stamp.rstrip("Z").partition(".")
    return int(datetime.fromisoformat(seconds + "+00:00").timestamp()) * 10**9 + \
        int(fraction.ljust(9, "0")[:9] or 0)


def block_second(url: str, height: int) -> int:
    """The whole second (Unix time) that block ``height``'s time falls in."""
    return comet_time_ns(rpc(url, f"block?height={height}")["block"]["header"]["time"]) \
        // 10**9


def weight_share(net: Network, epoch: int, address: str) -> float:
    members = {m.address: m.weight for m in net.epoch(epoch).members.members}
    return members.get(address, 0) / sum(members.values())


def submissions(net: Network, epoch: int) -> dict:
    reply = net.query("PocSubmissions", q.QueryPocSubmissionsRequest(epoch=epoch),
                      q.QueryPocSubmissionsResponse)
    return {s.participant: s for s in reply.submissions}


def charged(net: Network, inference_id: str):
    try:
        found = net.inference(inference_id)
    except grpc.RpcError:
        return None
    return found if found.status in CHARGED else None


def json_documents(text: str) -> list:
    """The JSON documents printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        document, at = decoder.raw_decode(text, at)
        found.append(document)
    return found


def state_sizes(home: Path) -> str:
    data = home / "data"
    app = sum(p.stat().st_size for p in data.glob("app.sqlite*"))
    comet = sum(p.stat().st_size for d in data.glob("*.db") for p in d.rglob("*")
                if p.is_file())
    return f"chain state {app / 1e6:.1f} MB, CometBFT {comet / 1e6:.1f} MB"
