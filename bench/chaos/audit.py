"""What the soak checks once the load has stopped and the chain has settled what it will:
every figure is read from the chain and the developers' own records, never from the nodes'
logs.

- Every request either answered (and settled on chain exactly once) or refused before any
  token was billed; a stream cut mid-way charged for no more than the developer received.
- The developer's balance fell by exactly what the chain says its inferences cost (plus the
  escrow of any still open): anything more is a double charge.
- The inference module's account holds exactly all escrows plus all work balances; the payee
  of the bank transfers holds exactly one transfer per tx the payer committed.
- Every chain node has the same app hash at every height.
- A participant's misses grew only by its lone starts that expired (a skipped pick with no
  signed refusal, a slow or dead executor, is never charged, docs/design.md §3.3).
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.chaos.faults import Fault
from bench.chaos.load import TRANSFER, Load, Outcome, ledger
from bench.chaos.network import ChaosNetwork
from chain.auth.address import encode
from chain.inference.keeper import ESCROW_ACCOUNT
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import (
    EXPIRED,
    FINISHED,
    INVALIDATED,
    STARTED,
    VALIDATED,
    VOTING,
    Inference,
)

CHARGED = (FINISHED, VALIDATED, VOTING, INVALIDATED)
HEIGHT_SPAN = 50  # heights per Inferences query, well under a page of inferences
HEADERS_PER_CALL = 20  # CometBFT's /blockchain answers at most 20 headers
# The inference module's events that name an inference (chain/inference/msg_server.py, blocks.py).
INFERENCE_EVENTS = frozenset({"start_inference", "relay_start", "finish_inference",
                              "expire_inference", "settle_inference", "void_finish"})
TRACED = 3  # lost inferences whose log lines the report carries
TRACE_LINES = 40
TRACE_CHARS = 400


@dataclass
class Opening:
    """The balances and counters the audit compares the end with, taken before the load."""

    height: int
    developer_balance: int
    misses: dict[str, int]

    @classmethod
    def take(cls, network: ChaosNetwork) -> Opening:
        return cls(network.height(), account(network, network.developer["address"]).balance,
                   {a: participant(network, a).misses for a in network.addresses})


def account(network: ChaosNetwork, address: str, height: int = 0) -> q.QueryAccountResponse:
    return network.query("Account", q.QueryAccountRequest(address=address),
                         q.QueryAccountResponse, height)


def participant(network: ChaosNetwork, address: str):
    return network.query("Participant", q.QueryParticipantRequest(address=address),
                         q.QueryParticipantResponse).participant


def chain_inferences(network: ChaosNetwork, developer: str, from_height: int,
                     to_height: int, known: set[str]) -> dict[str, Inference]:
    """Every inference of ``developer`` whose status last changed in the range and is not yet
    summarized (the status index lists those), and each of the ``known`` ids, read by id:
    once its epoch is settled an inference is a summary, out of the index."""
    found: dict[str, Inference] = {}
    for status in (STARTED, *CHARGED, EXPIRED):
        for low in range(from_height, to_height + 1, HEIGHT_SPAN):
            reply = network.query("Inferences", q.QueryInferencesRequest(
                status=status, from_height=low, to_height=min(low + HEIGHT_SPAN - 1, to_height),
                limit=1000), q.QueryInferencesResponse)
            found.update((i.id, i) for i in reply.inferences if i.developer == developer)
    found.update(inferences_by_id(network, known - set(found)))
    return found


def inferences_by_id(network: ChaosNetwork, ids: set[str]) -> dict[str, Inference]:
    """Each of ``ids`` the chain knows, whole or summarized."""
    found: dict[str, Inference] = {}
    for inference_id in sorted(ids):
        try:
            found[inference_id] = network.query(
                "Inference", q.QueryInferenceRequest(id=inference_id),
                q.QueryInferenceResponse).inference
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
    return found


def inference_ids_in_blocks(network: ChaosNetwork, from_height: int,
                            to_height: int) -> set[str]:
    """Every inference id the inference module's events name in the heights' block results
    (its txs' events and the blocks' own, where expiries are): with the status index (which
    drops an inference once it is summarized) and the load's ids, the audit then sees every
    inference, also one whose request broke off before its developer learnt its id and that
    its epoch's settlement has summarized since."""
    ids: set[str] = set()
    for height in range(max(from_height, 1), to_height + 1):
        for node in range(network.participants):
            url = f"{network.comet_rpc(node)}/block_results?height={height}"
            try:
                with urllib.request.urlopen(url, timeout=10) as reply:
                    result = json.loads(reply.read())["result"]
            except (OSError, KeyError, ValueError):  # down, or pruned there: the next node
                continue
            events = [*(result.get("finalize_block_events") or []),
                      *(e for tx in result.get("txs_results") or []
                        for e in tx.get("events") or [])]
            ids.update(a["value"] for e in events if e.get("type") in INFERENCE_EVENTS
                       for a in e.get("attributes") or [] if a.get("key") == "inference_id")
            break
    return ids


@dataclass
class Agreement:
    """What the nodes' block headers say about consensus."""

    heights: int  # heights compared (held by at least two answering nodes)
    differing: list[int]  # heights where the app hashes differ
    silent: list[int]  # nodes whose CometBFT did not answer
    # Heights at or below a node's own latest that its block store holds no header for
    # (CometBFT answers null for them): node → those heights, left out of the comparison.
    holes: dict[int, list[int]]


def app_hashes(network: ChaosNetwork, to_height: int) -> Agreement:
    """Each node is read up to its own latest height (one a block behind the others refuses
    a range past it); every height is compared among the nodes that hold it."""
    by_node: dict[int, dict[int, str]] = {}
    silent: list[int] = []
    holes: dict[int, list[int]] = {}
    for node in range(network.participants):
        try:
            with urllib.request.urlopen(f"{network.comet_rpc(node)}/status",
                                        timeout=10) as reply:
                status = json.loads(reply.read())
        except OSError:  # a node that never came back: the recovery goal says so too
            silent.append(node)
            continue
        latest = int(status["result"]["sync_info"]["latest_block_height"])
        hashes: dict[int, str] = {}
        top = min(to_height, latest)
        for low in range(1, top + 1, HEADERS_PER_CALL):
            high = min(low + HEADERS_PER_CALL - 1, top)
            url = f"{network.comet_rpc(node)}/blockchain?minHeight={low}&maxHeight={high}"
            try:
                with urllib.request.urlopen(url, timeout=10) as reply:
                    metas = json.loads(reply.read())["result"]["block_metas"]
            except urllib.error.HTTPError:  # heights this node does not serve: not compared
                continue
            hashes.update((int(m["header"]["height"]), m["header"]["app_hash"])
                          for m in metas if m)
            missing = [h for h in range(low, high + 1) if h not in hashes]
            if missing and len(metas) == high - low + 1:
                holes.setdefault(node, []).extend(missing)
        by_node[node] = hashes
    compared, differing = 0, []
    for height in range(1, to_height + 1):
        held = [hashes[height] for hashes in by_node.values() if height in hashes]
        compared += len(held) >= 2
        if len(set(held)) > 1:
            differing.append(height)
    return Agreement(compared, differing, silent, holes)


def wait_settled(network: ChaosNetwork, developer: str, from_height: int, answered: set[str],
                 known: set[str], timeout: float, say) -> dict[str, Inference]:
    """The developer's inferences once no start is left open and every answered one is on
    chain past its start (charged, or expired), or as they stand after ``timeout`` (an open
    start expires after the chain's ``expiration_blocks``)."""
    started = time.monotonic()
    while True:
        found = chain_inferences(network, developer, from_height, network.height(), known)
        open_ = [i for i in found.values() if i.status == STARTED]
        # An answered inference that expired stays unsettled for good: no use waiting on it.
        unsettled = [i for i in answered if i not in found or found[i].status == STARTED]
        if (not open_ and not unsettled) or time.monotonic() - started > timeout:
            return found
        say(f"waiting for the chain to settle: {len(open_)} open starts, "
            f"{len(unsettled)} answered inferences not yet charged")
        time.sleep(5)


def traces(logs: Path, inference_ids: list[str]) -> list[str]:
    """Every process log's lines that name one of ``inference_ids`` (by the first 16 hex
    digits, as the outbox's lines name an entry), per log oldest first and at most
    TRACE_LINES per inference: how a lost inference went, readable from the report alone
    once the network's folders are gone."""
    found: list[str] = []
    for inference_id in inference_ids:
        lines = [f"{path.name}: {line[:TRACE_CHARS]}"
                 for path in sorted(logs.glob("*.log"))
                 for line in path.read_text(errors="replace").splitlines()
                 if inference_id[:16] in line]
        found += [f"-- {inference_id}: {len(lines)} log lines", *lines[:TRACE_LINES]]
    return found


def p99(values: list[float]) -> float:
    if not values:
        return 0.0
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


@dataclass
class Report:
    """The audit's figures; ``goals`` holds each goal, its figure and whether it was met."""

    outcomes: Counter = field(default_factory=Counter)
    goals: list[tuple[str, str, bool]] = field(default_factory=list)
    latency: dict[str, tuple[int, float]] = field(default_factory=dict)
    recovery: dict[str, list[float]] = field(default_factory=dict)
    slow_skips: list[tuple[str, int, float]] = field(default_factory=list)
    misses: dict[str, tuple[int, int]] = field(default_factory=dict)
    figures: dict[str, int | float] = field(default_factory=dict)
    request_rows: list[list[str]] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)  # what the logs say of a lost inference

    def goal(self, name: str, figure: str, met: bool) -> None:
        self.goals.append((name, figure, met))

    @property
    def met(self) -> bool:
        return all(met for _, _, met in self.goals)


def audit(network: ChaosNetwork, load: Load, faults: list[Fault], opening: Opening,
          baseline_end: float, settle_timeout: float, latency_multiple: float,
          say) -> Report:
    report = Report()
    outcomes = load.snapshot()
    developer = network.developer["address"]
    answered = {o.inference_id for o in outcomes if o.result == "answered"}
    by_id = {o.inference_id: o for o in outcomes if o.inference_id}
    say("audit: waiting for the chain to settle every answered and open inference")
    chain = wait_settled(network, developer, opening.height, answered, set(by_id),
                         settle_timeout, say)
    end_height = network.height()
    unseen = inference_ids_in_blocks(network, opening.height, end_height) - set(chain)
    chain.update((i, inference) for i, inference in inferences_by_id(network, unseen).items()
                 if inference.developer == developer)

    # Requests: answered and settled once, or refused with nothing billed.
    report.outcomes = Counter(o.result for o in outcomes)
    report.request_rows = outcome_rows(outcomes)
    unsettled = sorted(i for i in answered if i not in chain or chain[i].status not in CHARGED)
    billed_unanswered, cut_overcharged = [], []
    for inference in chain.values():
        billed = inference.status == STARTED or (inference.status in CHARGED
                                                 and inference.cost > 0)
        outcome = by_id.get(inference.id)
        if outcome is None and billed:
            billed_unanswered.append(inference.id)
        elif outcome is not None and outcome.result == "cut" and billed and \
                inference.output_tokens > outcome.tokens:
            cut_overcharged.append(inference.id)
    no_answer = report.outcomes["timeout"] + report.outcomes[""]
    lost = no_answer + len(unsettled) + len(billed_unanswered) + len(cut_overcharged)
    report.figures.update(requests=len(outcomes), unsettled=len(unsettled),
                          billed_unanswered=len(billed_unanswered),
                          cut_overcharged=len(cut_overcharged), lost=lost)
    report.goal("developer requests lost", f"{lost} of {len(outcomes)} (no answer {no_answer}, "
                f"answered but unsettled {len(unsettled)}, billed without an answer "
                f"{len(billed_unanswered)}, cut streams charged beyond what arrived "
                f"{len(cut_overcharged)})" + "".join(
                    f"; billed {i[:12]}… (status {chain[i].status}, {chain[i].output_tokens} "
                    f"tokens, executor {chain[i].executor[-6:]}, TA "
                    f"{chain[i].transfer_agent[-6:]}, start height {chain[i].start_height})"
                    for i in billed_unanswered[:6]) + "".join(
                    f"; unsettled {i[:12]}… ("
                    + (f"status {chain[i].status}, executor {chain[i].executor[-6:]}, TA "
                       f"{chain[i].transfer_agent[-6:]}, start height {chain[i].start_height})"
                       if i in chain else "not on chain)")
                    for i in unsettled[:6]), lost == 0)
    lags = sorted(i.finish_height - i.start_height for i in chain.values()
                  if i.started and i.finished and i.finish_height >= i.start_height)
    if lags:  # how close to its expiry a finish came, faults and all
        report.figures.update(finish_lag_p50=lags[len(lags) // 2],
                              finish_lag_p99=lags[min(len(lags) - 1, len(lags) * 99 // 100)],
                              finish_lag_max=lags[-1], finished=len(lags))
    report.traces = traces(network.devnet.logs, [*unsettled, *billed_unanswered,
                                                 *cut_overcharged][:TRACED])

    # Charges: the developer paid exactly what its inferences cost, with each one's transfer
    # agent's fee, once. An invalidated inference is refunded from its executor's unsettled
    # work, which may fall short of its cost: its refund lies between 0 and its cost (the
    # agent's fee stays paid).
    paid = opening.developer_balance - account(network, developer).balance
    held = sum(i.escrow for i in chain.values() if i.status == STARTED)
    costs = sum(i.cost + i.agent_fee for i in chain.values() if i.status in CHARGED) + held
    refundable = sum(i.cost for i in chain.values() if i.status == INVALIDATED)
    extra = paid - costs
    report.figures.update(double_charged_ninfer=max(extra, 0))
    report.goal("double charges", f"paid {paid} ninfer; the chain's costs {costs} ninfer "
                f"({sum(i.status in CHARGED for i in chain.values())} settled inferences, "
                f"{held} held by {sum(i.status == STARTED for i in chain.values())} open), "
                f"less up to {refundable} refunded for "
                f"{sum(i.status == INVALIDATED for i in chain.values())} invalidated",
                -refundable <= extra <= 0)
    report.goal("every finished inference settled exactly once",
                f"{len(answered) - len(unsettled)} of {len(answered)} answered inferences "
                "charged once on chain", not unsettled and extra <= 0)

    # Coins: the escrow account, and the bank transfers.
    # All read at one height: the network keeps making blocks (probes, settlements), and
    # accounts read a block apart need not add up.
    at = network.height() - 1
    holders = [developer, *network.addresses, load.payee, str(load.payer.address())]
    accounts = [account(network, a, at) for a in holders]
    escrow_account = account(network, encode(ESCROW_ACCOUNT), at).balance
    owed = sum(a.escrow + a.work_balance for a in accounts)
    sequence = ledger(network, 0).query_account(load.payer.address()).sequence
    payee = account(network, load.payee).balance
    report.goal("coins conserved", f"escrow account {escrow_account} = escrows + work "
                f"balances {owed}; payee {payee} = {sequence} committed transfers × {TRANSFER}"
                f" ({load.transfer_errors} sends refused"
                + (f", the last: {load.transfer_error}" if load.transfer_error else "") + ")",
                escrow_account == owed and payee == sequence * TRANSFER)
    report.figures.update(transfers=sequence)

    # Consensus: one app hash per height.
    agreement = app_hashes(network, end_height - 1)
    differing, silent = agreement.differing, agreement.silent
    report.figures.update(heights=agreement.heights)
    report.goal("same app hash on every node at every height",
                f"{agreement.heights} of {end_height - 1} heights × "
                f"{network.participants - len(silent)} nodes, {len(differing)} differ"
                + (f" (first {differing[0]})" if differing else "")
                + (f"; not compared: {', '.join(f'val{n}' for n in silent)}, whose CometBFT "
                   f"does not answer" if silent else "")
                + "".join(f"; val{n}'s block store has no header at {len(h)} heights "
                          f"(first {h[0]})" for n, h in agreement.holes.items()),
                not differing and not silent)

    # Latency: answered requests during a fault against the fault-free run.
    windows = [(f.injected, f.recovered) for f in faults]
    base = [o.latency for o in outcomes if o.result == "answered" and o.ended <= baseline_end]
    during = [o.latency for o in outcomes if o.result == "answered" and any(
        o.started <= end and o.ended >= start for start, end in windows)]
    report.latency = {"fault-free": (len(base), p99(base)), "during faults": (len(during),
                                                                             p99(during))}
    ratio = p99(during) / p99(base) if base and during else 0.0
    report.figures.update(p99_ratio=ratio)
    report.goal("p99 latency during faults / fault-free",
                f"{ratio:.2f}× ({p99(during):.1f}s / {p99(base):.1f}s; stated bound "
                f"{latency_multiple:g}×)", 0 < ratio <= latency_multiple)

    # The slow executor: skipped for a later pick, and never charged for being slow.
    timeout = network.first_token_timeout_s
    for fault in faults:
        if fault.kind.startswith("stop "):
            report.slow_skips.append((fault.target, len(fault.skips),
                                      max(fault.skips, default=0.0)))
    for address in network.addresses:
        grown = participant(network, address).misses - opening.misses[address]
        expired = sum(1 for i in chain.values() if i.executor == address and i.status == EXPIRED
                      and i.started and not i.finished)
        report.misses[address] = (grown, expired)
    unfair = {a: m for a, m in report.misses.items() if m[0] != m[1]}
    skips = sum(n for _, n, _ in report.slow_skips)
    slowest = max((s for _, _, s in report.slow_skips), default=0.0)
    report.goal("slow executor skipped, charged a miss only as the protocol allows",
                f"{skips} requests skipped a stopped node for a later pick (first-token "
                f"timeout {timeout:g}s; the slowest answered in {slowest:.1f}s all told); "
                f"misses grew by exactly the expired lone starts at "
                f"{len(report.misses) - len(unfair)} of {len(report.misses)} participants"
                + "".join(f"; {a[-6:]}: misses +{grown}, expired lone starts {expired}"
                          for a, (grown, expired) in unfair.items()),
                not unfair)

    stuck = [f for f in faults if not f.recovered]
    report.goal("every fault recovered from", f"{len(faults) - len(stuck)} of {len(faults)}"
                + "".join(f"; {f.kind}: {f.note}" for f in stuck), not stuck)
    for fault in faults:
        if fault.recovered:
            report.recovery.setdefault(fault.kind, []).append(fault.recovery_s)
    return report


def outcome_rows(outcomes: list[Outcome]) -> list[list[str]]:
    """Per request kind: how many ended each way."""
    kinds = Counter((o.stream, o.signed, o.result) for o in outcomes)
    rows = []
    for stream in (False, True):
        for signed in (False, True):
            row = [f"{'streaming' if stream else 'whole answer'}, "
                   f"{'signed' if signed else 'API key'}"]
            row += [str(kinds[(stream, signed, r)]) for r in RESULTS]
            rows.append(row)
    return rows


RESULTS = ("answered", "refused", "unreachable", "dropped", "cut", "timeout")
