"""Which delivery a transfer agent's signature over an output attests (docs/design.md §3.5).

The chain settles a finish on either kind; the executor checks a delivery with the same rule
before it holds it, and a validator asks which kind settled an output: only a whole one must
end on EOS, a stop sequence or max_tokens, since a prefix stops where the agent stopped signing.
"""

import enum

from nacl.exceptions import BadSignatureError

from chain.inference import payload
from chain.verified_signatures import verify_ed25519
from inferchain_pb.inference.v1.inference_pb2 import Participant


class Delivered(enum.Enum):
    WHOLE = "whole"  # the stream ended with exactly this output, all of it passed on
    PREFIX = "prefix"  # this much of the output had reached the developer so far


def signed_delivery(agent: Participant, executor: str, inference_id: str, output_hash: bytes,
                    signature: bytes) -> Delivered | None:
    """The kind of delivery ``agent``'s node key signed for this output of ``executor``'s;
    None if neither."""
    for kind, build in ((Delivered.WHOLE, payload.delivery_payload),
                        (Delivered.PREFIX, payload.prefix_delivery_payload)):
        try:
            verify_ed25519(agent.node_pubkey,
                           build(inference_id, output_hash, agent.address, executor), signature)
        except (BadSignatureError, ValueError, TypeError):
            continue
        return kind
    return None
