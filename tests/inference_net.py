"""An in-process chain for module tests: one app, funded actors, a block clock.

Every transaction goes through FinalizeBlock and Commit exactly as CometBFT would drive them,
so module tests exercise the real ante handler, router and state, without processes.
"""

import json

from cosmpy.protos.tendermint.abci import types_pb2 as abci
from google.protobuf.timestamp_pb2 import Timestamp
from inference_actors import (
    MODEL_ID,
    Actor,
    genesis_models,
    genesis_participant,
    key_commitment,
    pass_notice,
    request_id,
    seal_of,
    start_msg,
)
from proposals import VALIDATOR_SECRET, genesis_validators, proposed_block

from chain.app import Application
from chain.auth import address
from chain.inference import start_rules
from chain.inference.keeper import ESCROW_ACCOUNT
from chain.store import StateAt, Store
from chain.validation.keeper import ValidationKeeper
from chain.validation.seals import opening_heights
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.validation_pb2 import MsgValidation, ValidationTask

FUNDS = 10_000_000_000
T0 = 1_700_000_000
# What a test's API-key commitment lets its start escrow: above any start the tests make.
COMMITTED_ESCROW = 10_000_000


class Net:
    """One app, its accounts and a block clock; every tx goes through FinalizeBlock."""

    def __init__(self, participants: int = 3, expiration_blocks: int = 5,
                 extra_state: dict | None = None, weights: list[int] | None = None,
                 extra_supply: int = 0, newcomers: int = 0, reputation_ppm: int = 0,
                 inference_params: dict | None = None, models: list[dict] | None = None,
                 serves: list[tuple[str, ...]] | None = None,
                 retired_models: list[dict] | None = None) -> None:
        """``extra_state`` adds app_state sections (e.g. epochs and validation params);
        the participants are in genesis (members of epoch 0), with ``weights`` or else the
        inference param ``genesis_weight``: a participant registering later has no weight
        until its proof of compute settles; ``newcomers`` funded accounts are left out of
        genesis, to register later; ``extra_supply`` ninfer go to an account no actor holds;
        ``reputation_ppm``: every participant's starting reputation; ``inference_params``
        overrides inference params beside ``expiration_blocks``; ``models``: the registry,
        genesis_models() unless given; ``serves[i]``: the model ids participant i declares
        (the test model unless given); ``retired_models``: models governance retired before
        genesis (as an export carries them)."""
        self.developer = Actor.new(0, 0)
        self.poor = Actor.new(1, 1)
        self.parts = [Actor.new(10 + i, 2 + i) for i in range(participants)]
        self.newcomers = [Actor.new(60 + i, 2 + participants + i) for i in range(newcomers)]
        everyone = [self.developer, self.poor, *self.parts, *self.newcomers]
        balances = [{"address": a.address, "coins": [{"denom": "ninfer", "amount": str(
            5_000 if a is self.poor else FUNDS)}]} for a in everyone]
        if extra_supply:
            balances.append({"address": Actor.new(99, 99).address, "coins": [
                {"denom": "ninfer", "amount": str(extra_supply)}]})
        state = dict(extra_state or {})
        # No member here runs a probe worker: a test that plays probes sets the quota.
        validation = state.get("validation", {})
        state["validation"] = {**validation, "params": {"probe_quota": 0,
                                                       **validation.get("params", {})}}
        if reputation_ppm:
            state["validation"] = {**state.get("validation", {}), "reputations": [
                {"address": p.address, "reputation_ppm": reputation_ppm} for p in self.parts]}
        self.app = Application(Store.memory(), validator_secret=VALIDATOR_SECRET)
        self.init_request = abci.RequestInitChain(
            chain_id="inferchain-test", initial_height=1, validators=genesis_validators(),
            app_state_bytes=json.dumps({
                "bank": {"balances": balances},
                "inference": {"params": {"expiration_blocks": expiration_blocks,
                                         **(inference_params or {})},
                              "models": models or genesis_models(),
                              "retired_models": retired_models or [],
                              "participants": [
                                  {**genesis_participant(
                                      p, f"http://127.0.0.1:{9000 + i}",
                                      *([serves[i]] if serves else [])),
                                   **({"weight": weights[i]} if weights else {})}
                                  for i, p in enumerate(self.parts)]},
                **state}).encode())
        self.app.init_chain(self.init_request)
        # Every block so far, so that a replica can replay the chain (replica()).
        self.blocks: list[abci.RequestFinalizeBlock] = []
        self.height = 0
        self.ids: dict[str, str] = {}  # request label → inference id, for starts built here
        self.block([])
        self.all_accounts = everyone

    def block(self, txs: list[bytes]) -> list[abci.ExecTxResult]:
        """Every tx goes through CheckTx first, as the mempool would put it (the verdict may
        differ: the tests send txs CometBFT would drop), and must not fail internally there."""
        for tx in txs:
            checked = self.app.check_tx(abci.RequestCheckTx(tx=tx))
            assert "internal error" not in checked.log, checked.log
        self.height += 1
        request = proposed_block(self.app, self.height, Timestamp(seconds=T0 + self.height),
                                 txs, self.height.to_bytes(4, "big") * 8)
        self.blocks.append(request)
        result = self.app.finalize_block(request)
        self.app.commit(abci.RequestCommit())
        self.last_block = result
        return list(result.tx_results[1:])  # after the beacon proof's

    def replica(self) -> Application:
        """A second node that has applied the same genesis and blocks."""
        app = Application(Store.memory())
        app.init_chain(self.init_request)
        for request in self.blocks:
            app.finalize_block(request)
            app.commit(abci.RequestCommit())
        assert app.store.app_hash == self.app.store.app_hash
        return app

    def one(self, raw: bytes) -> abci.ExecTxResult:
        return self.block([raw])[0]

    def seal(self, reports: list[tuple[Actor, MsgValidation]]) -> None:
        """Seals each report (``validation_msg``) in one block; every seal must be taken."""
        results = self.block([actor.tx(seal_of(report)) for actor, report in reports])
        assert all(r.code == 0 for r in results), [r.log for r in results]

    def open_reports(self, reports: list[tuple[Actor, MsgValidation]]
                     ) -> list[abci.ExecTxResult]:
        """Opens sealed reports in one block, at the first height they all open at: after
        the window's sealing (or once every member that checks the model sealed) for window
        reports, after the vote's (or once every voter sealed) for ballots."""
        opens_at = []
        for actor, report in reports:
            task = self.query("ValidationTask", q.QueryValidationTaskRequest(
                inference_id=report.inference_id)).task
            sealed = {s.validator: s for s in task.seals}
            opens_at.append(opening_heights(task, sealed[actor.address])[0]
                            if actor.address in sealed else self.height + 1)
        while self.height + 1 < max(opens_at):
            self.block([])
        return self.block([actor.tx(report) for actor, report in reports])

    def report(self, reports: list[tuple[Actor, MsgValidation]]) -> list[abci.ExecTxResult]:
        """Seals the reports, then opens them as soon as they open (``open_reports``)."""
        self.seal(reports)
        return self.open_reports(reports)

    def query(self, name: str, request):
        return self.app.queries.call(f"/inference.v1.Query/{name}", request)

    def draw(self, inference_id: str) -> list[str]:
        return list(self.query("Draw", q.QueryDrawRequest(inference_id=inference_id,
                                                          model_id=MODEL_ID)).order)

    def draw_at(self, inference_id: str, height: int, model_id: str = MODEL_ID) -> list[str]:
        return list(self.query("Draw", q.QueryDrawRequest(
            inference_id=inference_id, model_id=model_id, draw_height=height)).order)

    def actor(self, addr: str) -> Actor:
        return next(p for p in self.parts if p.address == addr)

    def drawn(self, agent: Actor, label: str, developer: Actor | None = None,
              body: bytes | None = None, model_id: str = MODEL_ID) -> list[str]:
        """The draw order of the signed request ``label`` that ``agent`` takes now (stamped
        with the latest block's time, so it draws at the latest height)."""
        inference_id = request_id(agent, developer or self.developer, label, T0 + self.height,
                                  body)
        return self.draw_at(inference_id, self.height, model_id)

    def serving(self, label: str, developer: Actor | None = None, body: bytes | None = None,
                attempt: int = 0, model_id: str = MODEL_ID) -> tuple[Actor, Actor]:
        """The (agent, executor) that ``start`` gives the request ``label`` now: an agent other
        than its drawn executor where one exists."""
        picks = [(agent, self.actor(self.drawn(agent, label, developer, body,
                                               model_id)[attempt]))
                 for agent in self.parts]
        return next(((a, e) for a, e in picks if a is not e), picks[0])

    def commit_key_requests(self, agent: Actor, inference_ids: list[str],
                            max_escrow: int = COMMITTED_ESCROW) -> int:
        """``agent`` commits API-key requests in a block, then the block whose random value
        their draws read follows; returns that draw height (their starts land after it)."""
        result = self.one(agent.tx(key_commitment(agent, inference_ids, max_escrow)))
        assert result.code == 0, result.log
        self.block([])
        return self.height

    def pass_picks(self, *starts) -> None:
        """Each start's agent notices the picks its start passes without their signed
        refusals, and the blocks of their claim window go by unclaimed: the starts may land
        next (a start of each request, with its draw height, attempt and refusals)."""
        by_agent: dict[str, list] = {}
        for start in starts:
            order = start_rules.executor_order(
                self.draw_at(start.inference_id, start.draw_height, start.model_id),
                start.creator, bool(start.request_signature))
            by_agent.setdefault(start.creator, []).extend(
                (start, j, order[j]) for j in range(start.attempt)
                if j >= len(start.refusals) or not start.refusals[j])
        results = self.block([self.actor(agent).tx(pass_notice(self.actor(agent), passes))
                              for agent, passes in by_agent.items() if passes])
        assert all(r.code == 0 for r in results), [r.log for r in results]
        claim_blocks = json.loads(self.query("Params", q.QueryParamsRequest(
            module="inference")).params_json)["pass_claim_blocks"]
        for _ in range(claim_blocks):
            self.block([])

    def key_start(self, label: str, agent: Actor | None = None, **kw) -> tuple:
        """An API-key start of the request ``label``: its agent (the first participant
        unless given) stamps it now and commits it, and the draw at the block after the
        commitment's names its executor (never the agent); (agent, executor, start)."""
        agent = agent or self.parts[0]
        attempt = kw.pop("attempt", 0)
        developer = kw.pop("developer", self.developer)
        prompt_ids = kw.pop("prompt_ids", [1, 2, 3, 4])
        timestamp = T0 + self.height
        stamped = start_msg(agent, developer, label, agent.address, self.height, timestamp,
                            prompt_ids, signed_request=False, **kw)
        draw_height = self.commit_key_requests(agent, [stamped.inference_id])
        order = start_rules.executor_order(
            self.draw_at(stamped.inference_id, draw_height, kw.get("model_id", MODEL_ID)),
            agent.address, False)
        executor = self.actor(order[attempt])
        msg = start_msg(agent, developer, label, executor.address, draw_height, timestamp,
                        prompt_ids, attempt=attempt, signed_request=False, **kw)
        self.ids[label] = msg.inference_id
        return agent, executor, msg

    def start(self, label: str, **kw) -> tuple:
        """A start of the request ``label`` by an agent other than its drawn executor where
        one exists (else the agent runs it itself); the inference is then known to
        ``inference`` by the label too. Unsigned (``signed_request=False``): ``key_start``."""
        if not kw.pop("signed_request", True):
            return self.key_start(label, **kw)
        attempt = kw.pop("attempt", 0)
        developer = kw.pop("developer", self.developer)
        agent, executor = self.serving(label, developer, kw.get("body"), attempt,
                                       model_id=kw.get("model_id", MODEL_ID))
        msg = start_msg(agent, developer, label, executor.address, self.height,
                        T0 + self.height, kw.pop("prompt_ids", [1, 2, 3, 4]), attempt=attempt,
                        **kw)
        self.ids[label] = msg.inference_id
        return agent, executor, msg

    def balance(self, actor_or_raw) -> int:
        raw = actor_or_raw if isinstance(actor_or_raw, bytes) else address.decode(
            actor_or_raw.address)
        return self.app.modules.bank.balance(self.app.store.begin_block(), raw, "ninfer")

    def account(self, actor: Actor) -> q.QueryAccountResponse:
        return self.query("Account", q.QueryAccountRequest(address=actor.address))

    def participant_record(self, actor: Actor):
        return self.query("Participant", q.QueryParticipantRequest(
            address=actor.address)).participant

    def closed_task(self, inference_id: str) -> ValidationTask:
        """An inference's validation task as it stood in the block before its epoch's
        settlement cut the inference to a summary and dropped the task, read from the
        store's history."""
        summarized = self.inference(inference_id).summarized_height
        assert summarized, f"inference {inference_id} is not summarized"
        return ValidationKeeper().task(StateAt(self.app.store, summarized - 1),
                                       self.ids.get(inference_id, inference_id))

    def inference(self, inference_id: str):
        """The inference by id, or by the label of a request ``start`` built."""
        return self.query("Inference", q.QueryInferenceRequest(
            id=self.ids.get(inference_id, inference_id))).inference

    def assert_conserved(self) -> None:
        """The escrow account holds exactly all escrows plus all work balances."""
        escrows = sum(self.account(a).escrow for a in self.all_accounts)
        work = sum(self.account(a).work_balance for a in self.all_accounts)
        assert self.balance(ESCROW_ACCOUNT) == escrows + work
