"""All reads and writes of auth state: accounts by address, the next account number, params."""


from cosmpy.protos.cosmos.auth.v1beta1.auth_pb2 import BaseAccount
from cosmpy.protos.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from google.protobuf.any_pb2 import Any as AnyPb

from chain.auth import address
from chain.auth.params import KEY as PARAMS_KEY
from chain.auth.params import AuthParams
from chain.gas import GasKV
from chain.store import KVReader

ACCOUNT_PREFIX = b"auth/acct/"
NEXT_NUMBER = b"auth/next_number"


def account_key(raw_address: bytes) -> bytes:
    return ACCOUNT_PREFIX + raw_address


class AuthKeeper:
    def get_account(self, kv: GasKV | KVReader, raw_address: bytes) -> BaseAccount | None:
        data = kv.get(account_key(raw_address))
        if data is None:
            return None
        account = BaseAccount()
        account.ParseFromString(data)
        return account

    def new_account(self, kv: GasKV, raw_address: bytes) -> BaseAccount:
        """Creates the account with the next account number (first funds or first use)."""
        number = int.from_bytes(kv.get(NEXT_NUMBER) or b"\0", "big")
        kv.set(NEXT_NUMBER, (number + 1).to_bytes(8, "big"))
        account = BaseAccount(address=address.encode(raw_address), account_number=number)
        self.set_account(kv, raw_address, account)
        return account

    def set_account(self, kv: GasKV, raw_address: bytes, account: BaseAccount) -> None:
        kv.set(account_key(raw_address), account.SerializeToString(deterministic=True))

    def set_pubkey(self, kv: GasKV, raw_address: bytes, account: BaseAccount,
                   compressed: bytes) -> None:
        packed = AnyPb()
        packed.Pack(PubKey(key=compressed), type_url_prefix="/")
        account.pub_key.CopyFrom(packed)
        self.set_account(kv, raw_address, account)

    def params(self, kv: GasKV | KVReader) -> AuthParams:
        return AuthParams.stored(kv, PARAMS_KEY)

    def set_params(self, kv: GasKV, params: AuthParams) -> None:
        kv.set(PARAMS_KEY, params.to_bytes())
