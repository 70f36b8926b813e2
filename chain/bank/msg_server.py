"""Turns bank transaction messages into keeper calls."""

from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend

from chain.auth import address
from chain.bank import coins
from chain.bank.keeper import BankKeeper
from chain.context import Context
from chain.errors import InvalidRequest


class BankMsgServer:
    def __init__(self, keeper: BankKeeper) -> None:
        self._keeper = keeper

    def send(self, ctx: Context, msg: MsgSend) -> None:
        sender = address.decode(msg.from_address)
        recipient = address.decode(msg.to_address)
        amount = coins.parse(msg.amount, allow_empty=False)
        if not self._keeper.params(ctx.kv).send_enabled:
            raise InvalidRequest("transfers are disabled (bank param send_enabled)")
        self._keeper.send(ctx, sender, recipient, amount)
        ctx.emit("message", action="/cosmos.bank.v1beta1.MsgSend", sender=msg.from_address,
                 module="bank")
