"""Which picks of an inference's draw were skipped before the one that served it."""

from bench.chaos.network import ChaosNetwork
from inferchain_pb.inference.v1 import query_pb2 as q
from inferchain_pb.inference.v1.inference_pb2 import Inference


def skipped_picks(network: ChaosNetwork, inference: Inference) -> list[str]:
    """The draw's picks before the one that served ``inference``. The chain keeps the block
    hashes a draw needs only while the draw is young (``max_draw_age_blocks``): ask soon."""
    if not inference.attempt:
        return []
    order = network.query("Draw", q.QueryDrawRequest(
        inference_id=inference.id, model_id=inference.model_id,
        draw_height=inference.draw_height), q.QueryDrawResponse).order
    return list(order[:inference.attempt])
