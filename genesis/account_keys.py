"""Fresh secp256k1 account keys and their `infer1...` addresses, for funding test accounts.

Templates list accounts by address only, and no key is ever committed to the repository: whoever
needs a funded account (a test, the quickstart) makes keys here and writes a template around them.
"""

from dataclasses import dataclass

from cosmpy.crypto.address import Address
from cosmpy.crypto.keypairs import PrivateKey

from genesis.addresses import ACCOUNT_PREFIX


@dataclass(frozen=True)
class AccountKey:
    """A private key (64 hex chars) and the account address it controls."""

    private_key_hex: str
    address: str


def generate_account_keys(count: int, prefix: str = ACCOUNT_PREFIX) -> list[AccountKey]:
    """`count` new keys from the OS's random source, addresses derived as the Cosmos SDK does."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    keys = []
    for _ in range(count):
        private_key = PrivateKey()
        address = str(Address(private_key.public_key, prefix=prefix))
        keys.append(AccountKey(private_key_hex=private_key.private_key_hex, address=address))
    return keys
