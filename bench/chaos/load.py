"""The soak's steady load: developers calling the participants' transfer agents with the
official openai client (streaming and not, signed requests and API keys), and a payer sending
bank transfers through cosmpy, each outcome recorded for the audit.

A request ends one of these ways (``Outcome.result``):

- ``answered``: the whole answer arrived;
- ``refused``: an HTTP error with an OpenAI error body (the client's APIStatusError), or a
  stream whose first event is an OpenAI error;
- ``unreachable``: the TA's port took no connection (its API node is down): nothing was sent;
- ``dropped``: the TA's connection broke before any token (it died holding the request);
- ``cut``: a stream broke after some tokens (its connection, or an error event);
- ``timeout``: no answer within the client's timeout.

Whether a dropped or cut request was charged, and for what, the audit reads from the chain.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import grpc
import httpx
import openai
from cosmpy.aerial.client import LedgerClient, NetworkConfig
from cosmpy.aerial.wallet import LocalWallet
from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey

from apinode.openai_signing import signed_http_client
from bench.chaos.network import MODEL, ChaosNetwork
from devnet.layout import CHAIN_ID
from genesis.addresses import ACCOUNT_PREFIX

REQUEST_TIMEOUT_S = 300
MAX_TOKENS = 8
TRANSFER = 1_000  # ninfer per bank send
PAYER_FUNDS = 10**12
GAS_PRICE = 0.01  # the devnet's minimum (devnet/gas_price.py reads it from the chain)
PROMPTS = ("Count from one to five.", "Name three colours.", "Say hello to the network.",
           "What is two plus two?")


@dataclass
class Outcome:
    """One developer request, as the developer saw it."""

    ta: int
    stream: bool
    signed: bool
    started: float  # time.monotonic()
    ended: float = 0.0
    result: str = ""
    inference_id: str = ""
    tokens: int = 0
    error: str = ""

    @property
    def latency(self) -> float:
        return self.ended - self.started


@dataclass
class Load:
    """``workers`` threads sending requests back to back, and one sending bank transfers."""

    network: ChaosNetwork
    workers: int
    seed: int
    outcomes: list[Outcome] = field(default_factory=list)
    transfers_sent: int = 0
    transfer_errors: int = 0
    transfer_error: str = ""  # the last one, for the report
    payer: LocalWallet = field(default_factory=lambda: LocalWallet.generate(
        prefix=ACCOUNT_PREFIX))
    payee: str = field(default_factory=lambda: str(LocalWallet.generate(
        prefix=ACCOUNT_PREFIX).address()))
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for worker in range(self.workers):
            self._threads.append(threading.Thread(target=self._requests, args=(worker,),
                                                  name=f"load-{worker}", daemon=True))
        self._threads.append(threading.Thread(target=self._transfers, name="transfers",
                                              daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stops sending and waits for the requests in flight to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 30)

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    # Inference requests.

    def _client(self, ta: int, signed: bool) -> openai.OpenAI:
        url = f"{self.network.api_url(ta)}/v1"
        if signed:
            key = bytes.fromhex(self.network.developer["private_key_hex"])
            return openai.OpenAI(base_url=url, api_key="unused", max_retries=0,
                                 timeout=REQUEST_TIMEOUT_S,
                                 http_client=signed_http_client(
                                     key, self.network.addresses[ta], CHAIN_ID,
                                     timeout=REQUEST_TIMEOUT_S))
        return openai.OpenAI(base_url=url, api_key=self.network.api_keys[ta], max_retries=0,
                             timeout=REQUEST_TIMEOUT_S)

    def _requests(self, worker: int) -> None:
        rng = random.Random(f"{self.seed}/load/{worker}")
        clients = {(ta, signed): self._client(ta, signed)
                   for ta in range(self.network.participants) for signed in (False, True)}
        while not self._stop.is_set():
            outcome = Outcome(ta=rng.randrange(self.network.participants),
                              stream=rng.random() < 0.5, signed=rng.random() < 0.5,
                              started=time.monotonic())
            request = {"model": MODEL, "max_tokens": MAX_TOKENS, "temperature": 0.0,
                       "messages": [{"role": "user", "content": rng.choice(PROMPTS)}]}
            client = clients[(outcome.ta, outcome.signed)]
            try:
                if outcome.stream:
                    self._stream(client, request, outcome)
                else:
                    reply = client.chat.completions.create(**request)
                    outcome.inference_id = (reply.model_extra or {}).get("inference_id", "")
                    outcome.tokens = reply.usage.completion_tokens if reply.usage else 0
                    outcome.result = "answered"
            except openai.APIStatusError as exc:
                outcome.result, outcome.error = "refused", f"{exc.status_code} {exc.message}"
            except openai.APITimeoutError as exc:
                outcome.result, outcome.error = "timeout", str(exc)
            except openai.APIConnectionError as exc:
                outcome.result = ("unreachable" if isinstance(exc.__cause__, httpx.ConnectError)
                                  else "dropped")
                outcome.error = repr(exc.__cause__)
            except openai.APIError as exc:  # an error event in the stream
                outcome.result = "cut" if outcome.tokens else "refused"
                outcome.error = str(exc)
            except httpx.HTTPError as exc:  # the stream broke after its first chunk
                outcome.result = "cut" if outcome.tokens else "dropped"
                outcome.error = repr(exc)
            outcome.ended = time.monotonic()
            self.record(outcome)
            if outcome.result == "unreachable":
                time.sleep(0.5)  # a developer whose TA is down tries again a little later

    @staticmethod
    def _stream(client: openai.OpenAI, request: dict, outcome: Outcome) -> None:
        finished = False
        for chunk in client.chat.completions.create(**request, stream=True):
            for choice in chunk.choices:
                outcome.inference_id = outcome.inference_id or (choice.model_extra or {}).get(
                    "inference_id", "")
                if choice.delta.content:
                    outcome.tokens += 1
                finished = finished or choice.finish_reason is not None
        outcome.result = "answered" if finished else "cut"
        if not finished:
            outcome.error = "the stream ended without a finish reason"

    # Chain transactions.

    def fund_payer(self) -> None:
        """The developer funds the payer, before the audit's opening balances are taken."""
        developer = LocalWallet(PrivateKey(bytes.fromhex(
            self.network.developer["private_key_hex"])), prefix=ACCOUNT_PREFIX)
        ledger(self.network, 0).send_tokens(self.payer.address(), PAYER_FUNDS, "ninfer",
                                            developer).wait_to_complete(timeout=60)

    def _transfers(self) -> None:
        """Bank sends from the payer to the payee through each chain node in turn: a node
        that is down refuses, and the next send goes to the next node. The audit counts what
        reached the payee against the payer's committed sequence, not these counters."""
        node = 0
        while not self._stop.wait(1.0):
            node = (node + 1) % self.network.participants
            try:
                ledger(self.network, node).send_tokens(
                    Address(self.payee), TRANSFER, "ninfer", self.payer
                ).wait_to_complete(timeout=30)
                self.transfers_sent += 1
            except Exception as exc:  # a node down or a sequence race: counted, audited
                self.transfer_errors += 1
                self.transfer_error = _one_line(exc)


def _one_line(exc: Exception) -> str:
    """A refusal as one short line for the report's table: gRPC's own text spans lines."""
    if isinstance(exc, grpc.RpcError) and isinstance(exc, grpc.Call):
        return f"{exc.code().name}: {exc.details()}"[:300]
    return " ".join(repr(exc).split())[:300]


def ledger(network: ChaosNetwork, node: int) -> LedgerClient:
    """cosmpy's client on chain node ``node``."""
    return LedgerClient(NetworkConfig(
        chain_id=CHAIN_ID, url=f"grpc+http://{network.chain_grpc(node)}",
        fee_minimum_gas_price=GAS_PRICE, fee_denomination="ninfer",
        staking_denomination="ninfer"))
