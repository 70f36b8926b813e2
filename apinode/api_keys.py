"""Bearer API keys: the OpenAI client's usual way in, for developers who granted this
transfer agent an allowance on chain (MsgGrantAllowance, docs/design.md §3.1).

A key is issued to whoever proves control of an account with one signed request, and maps
back to that account. The transfer agent then starts inferences without a per-request
signature; the chain takes their escrow from the allowance, so a leaked key can spend at
most what the developer allowed this agent, and a zero grant revokes it.
"""

import hashlib
import secrets

from apinode.store import ApiKeyRow, Database

PREFIX = "ick-"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    def issue(self, developer: str) -> str:
        key = PREFIX + secrets.token_hex(24)
        with self._db.session() as session:
            session.add(ApiKeyRow(key_hash=_digest(key), developer=developer))
        return key

    def developer_of(self, key: str) -> str | None:
        if not key.startswith(PREFIX):
            return None
        with self._db.session() as session:
            row = session.get(ApiKeyRow, _digest(key))
            return row.developer if row else None
