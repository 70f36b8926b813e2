"""Artifacts this process has already read and found to hold top-k entries for exactly their
finish's output ids, so that a finish checked at CheckTx does not have its artifact read again
when its block executes (reading it is a 512-token finish's costliest check).

Reading an artifact (``artifact.token_ids``) is a pure function of its bytes, and the finish
check compares the output hash with the output ids before it asks here, so an entry keyed by
(sha256 of the artifact, output hash, k) vouches for exactly the ids that hash to it: a hit
answers what reading again would. Only matches are kept; an artifact that failed is read, and
fails, again. Bounded and shared by every caller in the process like the signatures in
chain/verified_signatures.py, whose LRU set it uses.
"""

import hashlib

from chain.verified_signatures import VerifiedSet

MATCHED = VerifiedSet(max_entries=65_536)  # about 16 MiB of digests


def entry(artifact: bytes, output_hash: bytes, top_k: int) -> tuple[str, bytes, bytes, bytes]:
    return ("artifact", hashlib.sha256(artifact).digest(), bytes(output_hash),
            top_k.to_bytes(4, "big"))
