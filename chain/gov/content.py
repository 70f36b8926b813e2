"""What a proposal can change: one handler per content message type.

A handler validates its message against the state it runs on and applies it. Submission runs
every handler of a proposal on a throwaway branch, so an invalid proposal is refused with
the handler's message; execution runs them again, on a branch kept only if all succeed,
since the state may have changed meanwhile (another proposal, a module's own updates).
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.message import DecodeError, Message

from chain.bank.coins import NATIVE_DENOM
from chain.context import Context
from chain.errors import ChainError
from chain.gov.errors import InvalidContent
from chain.gov.expected_keepers import BankKeeper, InferenceKeeper
from chain.gov.keeper import GovKeeper
from chain.gov.params import GovParams
from chain.inference.model import model_error, with_default_rule
from chain.params import ParamsKeeper
from inferchain_pb.inference.v1.gov_pb2 import (
    ParamChange,
    RegisterModel,
    RetireModel,
    SoftwareUpgrade,
    UpdateModel,
)
from inferchain_pb.inference.v1.inference_pb2 import Model

MAX_UPGRADE_NAME = 140
MAX_UPGRADE_INFO = 4096


Handler = Callable[[Context, Message, int], None]


@dataclass(frozen=True)
class ContentType:
    message: type[Message]
    apply: Handler


class Contents:
    def __init__(self, modules: Mapping[str, ParamsKeeper], inference: InferenceKeeper,
                 gov: GovKeeper, bank: BankKeeper) -> None:
        """``modules`` maps each module name to its keeper, for parameter changes."""
        self._modules = modules
        self._inference = inference
        self._gov = gov
        self._bank = bank
        self._types = {"/" + t.message.DESCRIPTOR.full_name: t for t in [
            ContentType(ParamChange, self._param_change),
            ContentType(RegisterModel, self._register_model),
            ContentType(UpdateModel, self._update_model),
            ContentType(RetireModel, self._retire_model),
            ContentType(SoftwareUpgrade, self._software_upgrade)]}

    def apply_all(self, ctx: Context, messages: Sequence[AnyPb], proposal_id: int) -> None:
        """Applies every content message in order; raises InvalidContent naming the first
        that fails (the caller discards the branch ``ctx`` writes to)."""
        if not messages:
            raise InvalidContent("a proposal needs at least one content message")
        for index, packed in enumerate(messages):
            try:
                content_type, message = self._unpack(packed)
                content_type.apply(ctx, message, proposal_id)
            except ChainError as exc:
                raise InvalidContent(f"content {index} ({packed.type_url}): {exc.message}"
                                     ) from exc

    def _unpack(self, packed: AnyPb) -> tuple[ContentType, Message]:
        content_type = self._types.get(packed.type_url)
        if content_type is None:
            raise InvalidContent(f"unknown content type; proposals carry "
                                 f"{', '.join(sorted(self._types))}")
        try:
            return content_type, content_type.message.FromString(packed.value)
        except DecodeError as exc:
            raise InvalidContent(f"cannot decode: {exc}") from exc

    def _param_change(self, ctx: Context, msg: ParamChange, proposal_id: int) -> None:
        keeper = self._modules.get(msg.module)
        if keeper is None:
            raise InvalidContent(f"unknown module {msg.module!r}; modules with params: "
                                 f"{', '.join(sorted(self._modules))}")
        try:
            value = json.loads(msg.value_json)
        except (ValueError, RecursionError) as exc:
            # Also a number of thousands of digits, or arrays nested past the parser's depth:
            # no param takes either, and the message must not echo them.
            raise InvalidContent(f"value_json of {msg.module} param {msg.param!r} is not JSON "
                                 f"the parser reads") from exc
        params = keeper.params(ctx.kv).changed(msg.param, value)
        if isinstance(params, GovParams):
            self._check_deposit_payable(ctx, params)
        keeper.set_params(ctx.kv, params)
        ctx.emit("param_change", proposal_id=str(proposal_id), module=msg.module,
                 param=msg.param, value=msg.value_json)

    def _check_deposit_payable(self, ctx: Context, params: GovParams) -> None:
        """Beyond its fixed bounds, min_deposit must be payable from the coins that exist:
        one above the supply would keep every later proposal, the one that could lower it
        included, in its deposit period for good."""
        supply = self._bank.supply(ctx.kv, NATIVE_DENOM)
        if params.min_deposit > supply:
            raise InvalidContent(f"gov param min_deposit {params.min_deposit} is above the "
                                 f"{NATIVE_DENOM} supply {supply}: no proposal could open its "
                                 f"vote")

    def _register_model(self, ctx: Context, msg: RegisterModel, proposal_id: int) -> None:
        _check_model(msg.model)
        if self._inference.model(ctx.kv, msg.model.id) is not None:
            # Retired ids stay taken: old inferences are still judged by their record.
            raise InvalidContent(f"model id {msg.model.id!r} is already used")
        self._inference.set_model(ctx.kv, with_default_rule(msg.model))
        ctx.emit("register_model", proposal_id=str(proposal_id), model_id=msg.model.id,
                 weights_sha256=msg.model.weights_sha256)

    def _update_model(self, ctx: Context, msg: UpdateModel, proposal_id: int) -> None:
        _check_model(msg.model)
        current = self._live_model(ctx, msg.model.id)
        if current.weights_sha256 != msg.model.weights_sha256:
            raise InvalidContent("an update keeps the weights; other weights are a new model")
        if current.serving_dtype != msg.model.serving_dtype:
            # Participants declared the model in its dtype; another precision is a new model.
            raise InvalidContent(f"an update keeps the serving dtype {current.serving_dtype}; "
                                 f"another dtype is a new model")
        self._inference.set_model(ctx.kv, with_default_rule(msg.model))
        ctx.emit("update_model", proposal_id=str(proposal_id), model_id=msg.model.id,
                 price_per_token=str(msg.model.price_per_token))

    def _retire_model(self, ctx: Context, msg: RetireModel, proposal_id: int) -> None:
        self._inference.retire_model(ctx.kv, self._live_model(ctx, msg.model_id))
        ctx.emit("retire_model", proposal_id=str(proposal_id), model_id=msg.model_id)

    def _software_upgrade(self, ctx: Context, msg: SoftwareUpgrade, proposal_id: int) -> None:
        if not 0 < len(msg.name) <= MAX_UPGRADE_NAME or len(msg.info) > MAX_UPGRADE_INFO:
            raise InvalidContent(f"an upgrade needs a name of 1 to {MAX_UPGRADE_NAME} "
                                 f"characters and info of at most {MAX_UPGRADE_INFO}")
        if msg.height <= ctx.block.height:
            raise InvalidContent(f"upgrade height {msg.height} is not after the current "
                                 f"height {ctx.block.height}")
        plan = SoftwareUpgrade(name=msg.name, height=msg.height, info=msg.info,
                               proposal_id=proposal_id)
        self._gov.set_upgrade_plan(ctx.kv, plan)
        ctx.emit("software_upgrade", proposal_id=str(proposal_id), name=msg.name,
                 height=str(msg.height))

    def _live_model(self, ctx: Context, model_id: str) -> Model:
        found = self._inference.model(ctx.kv, model_id)
        if found is None or self._inference.retired_model(ctx.kv, model_id) is not None:
            raise InvalidContent(f"model {model_id!r} is not in the registry")
        return found


def _check_model(model: Model) -> None:
    error = model_error(model)
    if error is not None:
        raise InvalidContent(error)
