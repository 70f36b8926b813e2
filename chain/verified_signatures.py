"""Signatures this process has already verified, so that a tx checked at CheckTx is not
verified again when its block executes (nor its node-key signatures, each tx's costliest part
after the artifact).

Verification is a pure function of (public key, message, signature), so remembering that a
triple verified cannot change any result: a hit answers exactly what verifying again would.
Only successes are kept; a signature that failed, or a key that did not parse, is checked again
every time and fails again the same way. Entries are keyed by the key and signature bytes and
the message's sha256 (collision resistance is what the chain already relies on for tx hashes
and signed digests), so a different byte anywhere misses. The cache is bounded (least recently
used entries go first) and shared by every caller in the process: CheckTx, FinalizeBlock and
the API node's own checks alike.
"""

import hashlib
import threading
from collections import OrderedDict

from nacl.signing import VerifyKey

Entry = tuple[str, bytes, bytes, bytes]
MAX_ENTRIES = 65_536  # about 25 MiB; a full mempool's worth of txs and their node-key signatures


class VerifiedSet:
    """A bounded LRU set of facts checked true, each a tuple of bytes led by its kind: here
    (scheme, public key, sha256 of the message, signature) that verified, the scheme keeping
    one scheme's entry from ever answering for another's; chain/inference/matched_artifacts.py
    keeps artifacts that matched their output in one of its own."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Entry, None] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, key: Entry) -> bool:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return True
            self.misses += 1
            return False

    def add(self, key: Entry) -> None:
        with self._lock:
            self._entries[key] = None
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


VERIFIED = VerifiedSet()


def verify_ed25519(pubkey: bytes, message: bytes, signature: bytes) -> None:
    """``VerifyKey(pubkey).verify(message, signature)``, raising what it raises
    (BadSignatureError, ValueError, TypeError), answered from the cache when this very
    signature already verified."""
    key = ("ed25519", bytes(pubkey), hashlib.sha256(message).digest(), bytes(signature))
    if VERIFIED.seen(key):
        return
    VerifyKey(pubkey).verify(message, signature)
    VERIFIED.add(key)
