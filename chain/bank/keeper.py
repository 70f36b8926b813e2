"""All reads and writes of bank state: balances per (address, denom) and supply per denom."""


from chain.auth import address
from chain.auth.keeper import AuthKeeper
from chain.bank.coins import render
from chain.bank.params import KEY as PARAMS_KEY
from chain.bank.params import BankParams
from chain.context import Context
from chain.errors import InsufficientFunds
from chain.gas import GasKV
from chain.store import KVReader

BALANCE_PREFIX = b"bank/bal/"
SUPPLY_PREFIX = b"bank/supply/"


def balance_key(raw_address: bytes, denom: str) -> bytes:
    return BALANCE_PREFIX + raw_address + b"/" + denom.encode()


def _amount(data: bytes | None) -> int:
    return 0 if data is None else int(data)


class BankKeeper:
    def __init__(self, auth: AuthKeeper) -> None:
        self._auth = auth

    def balance(self, kv: GasKV | KVReader, raw_address: bytes, denom: str) -> int:
        return _amount(kv.get(balance_key(raw_address, denom)))

    def balances(self, kv: GasKV | KVReader, raw_address: bytes) -> dict[str, int]:
        prefix = BALANCE_PREFIX + raw_address + b"/"
        return {k[len(prefix):].decode(): int(v) for k, v in kv.iterate(prefix)}

    def supply(self, kv: GasKV | KVReader, denom: str) -> int:
        return _amount(kv.get(SUPPLY_PREFIX + denom.encode()))

    def send(self, ctx: Context, sender: bytes, recipient: bytes, coins: dict[str, int]) -> None:
        """Moves coins, creating the recipient's account on first receipt as Cosmos does."""
        self._subtract(ctx.kv, sender, coins)
        if self._auth.get_account(ctx.kv, recipient) is None:
            self._auth.new_account(ctx.kv, recipient)
        self._add(ctx.kv, recipient, coins)
        amount = render(coins)
        ctx.emit("coin_spent", spender=address.encode(sender), amount=amount)
        ctx.emit("coin_received", receiver=address.encode(recipient), amount=amount)
        ctx.emit("transfer", recipient=address.encode(recipient),
                 sender=address.encode(sender), amount=amount)

    def mint(self, kv: GasKV, recipient: bytes, coins: dict[str, int]) -> None:
        """New coins into an account, raising supply: genesis and, later, epoch rewards."""
        if self._auth.get_account(kv, recipient) is None:
            self._auth.new_account(kv, recipient)
        self._add(kv, recipient, coins)
        for denom, amount in coins.items():
            key = SUPPLY_PREFIX + denom.encode()
            kv.set(key, str(_amount(kv.get(key)) + amount).encode())

    def burn(self, kv: GasKV, holder: bytes, coins: dict[str, int]) -> None:
        """Destroys coins an account holds, lowering supply: burned governance deposits."""
        self._subtract(kv, holder, coins)
        for denom, amount in coins.items():
            key = SUPPLY_PREFIX + denom.encode()
            kv.set(key, str(_amount(kv.get(key)) - amount).encode())

    def params(self, kv: GasKV | KVReader) -> BankParams:
        return BankParams.stored(kv, PARAMS_KEY)

    def set_params(self, kv: GasKV, params: BankParams) -> None:
        kv.set(PARAMS_KEY, params.to_bytes())

    def _subtract(self, kv: GasKV, owner: bytes, coins: dict[str, int]) -> None:
        """Every balance is read once and checked before any is written, so a send short
        of one denom changes none."""
        have = {denom: self.balance(kv, owner, denom) for denom in coins}
        for denom, amount in coins.items():
            if have[denom] < amount:
                raise InsufficientFunds(f"spendable balance {have[denom]}{denom} is smaller "
                                        f"than {amount}{denom}")
        for denom, amount in coins.items():
            key = balance_key(owner, denom)
            left = have[denom] - amount
            if left:
                kv.set(key, str(left).encode())
            else:
                kv.delete(key)

    def _add(self, kv: GasKV, owner: bytes, coins: dict[str, int]) -> None:
        for denom, amount in coins.items():
            key = balance_key(owner, denom)
            kv.set(key, str(self.balance(kv, owner, denom) + amount).encode())
