"""Runs one participant's API node: registers it on chain, serves HTTP, drains the outbox,
validates, proves compute, probes the served models.

On start the node makes sure the chain knows it (MsgRegisterParticipant with its public URL,
node key and the model its ML node serves, checked against the registry), so an operator
only starts it; the outbox worker then sends every start, finish, seed and validation the
node produces, and the validator worker (unless ``validator = false``) does this
participant's share of the checks, and the PoC worker (unless ``poc = false``) proves the
participant's compute in each epoch's PoC window and checks the other members' proofs, and
the probe worker (unless ``probes_per_epoch = 0``) sends the participant's paid probes.
"""

import asyncio
import logging
import signal

import aiohttp
import grpc
from aiohttp import web

from apinode.api_keys import ApiKeys
from apinode.chain_queries import ChainQueries
from apinode.config import ApiNodeConfig
from apinode.draw_audit import DrawAudit
from apinode.executor import Executor
from apinode.http_server import HttpApi
from apinode.key_commitments import KeyRequestCommitter
from apinode.metrics import ApiMetrics
from apinode.mlnode_client import MlNodeClient, MlNodeError
from apinode.outbox import Outbox
from apinode.outbox_chain import outbox_confirm, outbox_submit
from apinode.outbox_worker import OutboxWorker
from apinode.pass_notices import PassClaimer, PassNoticer
from apinode.poc.worker import PocWorker
from apinode.probe_worker import ProbeWorker
from apinode.store import Database
from apinode.transfer_agent import TransferAgent
from apinode.tx_sender import TxSender
from apinode.validation.seeds import SeedStore
from apinode.validation.worker import ValidatorWorker
from chain.inference import payload
from chain.metrics import serve_metrics
from inferchain_pb.inference.v1.inference_pb2 import (
    MsgRegisterParticipant,
    MsgUpdateParticipant,
    PassNotice,
    ServedModel,
)

log = logging.getLogger(__name__)

# How long a pass claim waits for the ML node to say what it serves: one that cannot answer
# that quickly would not serve the claimed request in time either.
ML_HEALTH_WAIT_S = 5.0


async def register(config: ApiNodeConfig, sender: TxSender, chain: ChainQueries,
                   mlnode: MlNodeClient) -> None:
    """Registers this participant unless the chain already has it; then sends the
    configured consensus key should the chain have another (or none)."""
    consensus_key = config.consensus_key()
    pubkey = bytes(consensus_key.verify_key) if consensus_key else b""
    signature = consensus_key.sign(payload.consensus_key_payload(
        config.chain_id, sender.address, pubkey)).signature if consensus_key else b""
    known = await chain.participant(sender.address)
    if known is not None:
        log.info("participant %s is registered", sender.address)
        if pubkey and known.consensus_pubkey != pubkey:
            await sender.send([MsgUpdateParticipant(
                creator=sender.address, url=known.url, node_pubkey=known.node_pubkey,
                models=known.models, consensus_pubkey=pubkey,
                consensus_key_signature=signature)])
            log.info("sent consensus key %s for participant %s", pubkey.hex()[:16],
                     sender.address)
        return
    info = await mlnode.info()
    model = await chain.model(info.model_id)
    if model is None or model.weights_sha256 != info.weights_sha256:
        raise RuntimeError(f"the ML node serves {info.model_id} ({info.weights_sha256[:16]}…), "
                           "which the chain's model registry does not list")
    if info.dtype != model.serving_dtype:
        raise RuntimeError(f"the ML node serves {info.model_id} in {info.dtype}; the registry "
                           f"fixes {model.serving_dtype}, so this participant cannot declare it "
                           f"(start the ML node with --dtype {model.serving_dtype})")
    node_key = config.node_key()
    await sender.send([MsgRegisterParticipant(
        creator=sender.address, url=config.public_url, node_pubkey=bytes(node_key.verify_key),
        models=[ServedModel(model_id=info.model_id, weights_sha256=info.weights_sha256,
                            dtype=info.dtype)],
        consensus_pubkey=pubkey, consensus_key_signature=signature)])
    for _ in range(60):
        if await chain.participant(sender.address) is not None:
            log.info("registered participant %s at %s", sender.address, config.public_url)
            return
        await asyncio.sleep(0.5)
    raise RuntimeError("registration did not reach the chain within 30s")


def local_host(listen_host: str) -> str:
    """Where this node reaches its own HTTP server: a wildcard listen address is not one."""
    return "127.0.0.1" if listen_host in ("", "0.0.0.0", "::", "[::]") else listen_host


async def run(config: ApiNodeConfig) -> None:
    channel = grpc.aio.insecure_channel(config.chain_grpc)
    chain = ChainQueries(channel)
    sender = TxSender(channel, config.account_key(), config.chain_id, gas_price=config.gas_price)
    db = Database.open(config.database_url)
    outbox = Outbox(db)
    metrics = ApiMetrics()
    metrics.watch_outbox(outbox)
    metrics_server = serve_metrics(metrics.registry, config.listen_host_port()[0],
                                   config.metrics_port, f"{config.home}/apinode.toml: metrics_port")
    async with MlNodeClient(config.mlnode) as mlnode, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)) as session:
        await register(config, sender, chain, mlnode)
        audit = DrawAudit()
        executor = Executor(sender.address, config.node_key(), chain, mlnode, db, outbox,
                            audit, fault=config.executor_fault,
                            relay_delay_s=config.start_relay_delay_s,
                            delivery_interval_tokens=config.delivery_interval_tokens,
                            delivery_wait_s=config.delivery_wait_s, chain_id=config.chain_id)
        agent = TransferAgent(sender.address, config.node_key(), chain, mlnode, executor,
                              outbox, session, KeyRequestCommitter(sender),
                              PassNoticer(sender),
                              first_token_timeout_s=config.first_token_timeout_s,
                              token_gap_timeout_s=config.token_gap_timeout_s,
                              fault=config.transfer_agent_fault,
                              delivery_interval_tokens=config.delivery_interval_tokens,
                              metrics=metrics)

        async def model_ids() -> list[str]:
            return [m.id for m in await chain.served_models()]

        keys = ApiKeys(db)
        api = HttpApi(agent, executor, model_ids, config.signature_window_s, keys, db,
                      config.chain_id, metrics)
        worker = OutboxWorker(outbox, outbox_submit(sender, audit.outbox_refusal,
                                                    executor.repair),
                              outbox_confirm(sender), interval_s=0.5)
        runner = web.AppRunner(api.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, *config.listen_host_port()).start()
        log.info("API node %s listening on %s", sender.address, config.listen)
        await agent.resume_deliveries()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        draining = asyncio.create_task(worker.run())
        validator = None
        if config.validator:
            validator = ValidatorWorker(
                sender.address, config.node_key(), chain, mlnode, SeedStore(db, sender.address),
                outbox, interval_s=config.validator_interval_s,
                concurrency=config.validator_concurrency, fault=config.validator_fault)
        else:
            log.warning("validator worker off (validator = false): this participant does none "
                        "of its checks, and the chain may withhold its epoch rewards")
        validating = asyncio.create_task(validator.run()) if validator else None
        prover = None
        if config.poc:
            prover = PocWorker(sender.address, chain, mlnode, outbox,
                               interval_s=config.poc_interval_s,
                               max_nonces=config.poc_max_nonces, dtype=config.poc_dtype,
                               submit_margin_blocks=config.poc_submit_margin_blocks,
                               fault=config.poc_fault)
        else:
            log.warning("PoC worker off (poc = false): this participant proves no compute (no "
                        "weight from the next epoch) and skips its PoC checks")
        proving = asyncio.create_task(prover.run()) if prover else None
        prober = None
        if config.probes_per_epoch:
            host, port = config.listen_host_port()
            prober = ProbeWorker(chain, f"http://{local_host(host)}:{port}", keys,
                                 sender.address, per_epoch=config.probes_per_epoch,
                                 max_tokens=config.probe_max_tokens)
        else:
            log.info("probes off (probes_per_epoch = 0): this participant sends none, and "
                     "while the chain's probe_quota is above 0 every epoch it is a member "
                     "of judges it lazy (no rewards)")
        probing = asyncio.create_task(prober.run()) if prober else None

        async def serves(notices: list[PassNotice]) -> list[PassNotice]:
            """The requests transfer agents say they pass that this node would run: it has
            not had their forward, runs honestly, and its ML node answers with the model."""
            if executor.fault:
                return []
            try:
                info = await asyncio.wait_for(mlnode.info(), ML_HEALTH_WAIT_S)
            except (MlNodeError, TimeoutError, aiohttp.ClientError):
                return []
            return [n for n in notices if n.model_id == info.model_id
                    and not executor.forwarded(n.inference_id)]

        claimer = PassClaimer(chain, sender, serves)
        claiming = asyncio.create_task(claimer.run())
        await stop.wait()
        claimer.stop()
        await claiming
        if prober is not None and probing is not None:
            prober.stop()
            await probing
        if prover is not None and proving is not None:
            prover.stop()  # its last nonces go through the outbox below
            await proving
        if validator is not None and validating is not None:
            validator.stop()  # first: its last checks still go through the outbox below
            await validating
        log.info("shutting down; %d outbox entries left to send", outbox.pending_count())
        worker.stop()
        await draining
        await runner.cleanup()
    await channel.close()
    if metrics_server is not None:
        metrics_server.close()
    db.close()
