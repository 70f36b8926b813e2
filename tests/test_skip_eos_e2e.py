"""An executor that goes on past the end of its outputs, end to end on a local network: real
chain, API node and ML node processes, the official openai client, validator workers that
re-score on their own ML nodes.

The cheater's ML node (``mlnode serve --cheat skip-eos``) never ends an output: where the
seeded rule picks EOS it takes another token and samples on to ``max_tokens``, reporting the
real model's logprobs, so the developer is billed for the whole budget while the rule is
broken at one position, within the violations the verdict forgives. Its outputs are
invalidated and refunded; honest outputs of the same network settle with no violation.
"""

from collections.abc import Iterator

import pytest
from inference_actors import developer_charge
from local_network import MODEL, LocalNetwork, MlNodes
from test_validation_e2e import FAST_WORKER, ONE_LONG_EPOCH, all_checked, wait_for_seeds

from inferchain_pb.inference.v1.inference_pb2 import INVALIDATED, VALIDATED
from inferchain_pb.inference.v1.validation_pb2 import FAILED

MAX_TOKENS = 40
# Low enough that where an honest answer ends, EOS holds most of the sampled mass: a skip is
# caught only where EOS's interval is wider than the rule's tolerance (docs/verification.md).
TEMPERATURE = 0.3
# Questions an honest answer ends well before MAX_TOKENS.
QUESTIONS = ["What is the capital of France? Answer in one word.",
             "What is 2 + 2? Answer with a number.",
             "Name one color of the sky. One word.",
             "What is the opposite of hot? One word."]


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(honest port, cheating port)."""
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2, cheats=[None, "skip-eos"])
    yield nodes.ports[0], nodes.ports[1]
    nodes.close()


def ask(net: LocalNetwork, n: int) -> str:
    reply = net.client(net.nodes[1]).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}],
        max_tokens=MAX_TOKENS, temperature=TEMPERATURE, seed=2000 + n)
    return reply.model_extra["inference_id"]


def test_outputs_that_skip_their_eos_are_invalidated_and_honest_ones_settle(mlnodes, tmp_path):
    honest_port, cheat_port = mlnodes
    net = LocalNetwork(tmp_path, [cheat_port, honest_port, honest_port], params=ONE_LONG_EPOCH,
                       in_genesis=True, node_settings=[FAST_WORKER] * 3)
    try:
        cheater = net.nodes[0].address
        wait_for_seeds(net, 0)
        before = net.account(net.developer.address).balance
        ids: list[str] = []
        for n in range(24):
            ids.append(ask(net, n))
            executors = [net.finished(i).executor for i in ids]
            if cheater in executors and len(set(executors)) == 3:
                break
        assert cheater in executors and len(set(executors)) == 3, executors

        tasks = all_checked(net, ids)
        inferences = {i: net.inference(i) for i in ids}
        for inference_id, found in tasks.items():
            inference = inferences[inference_id]
            if found.executor == cheater:
                # Billed for the whole budget, caught on the end alone.
                assert inference.output_tokens == MAX_TOKENS, inference_id
                assert (found.state, inference.status) == (FAILED, INVALIDATED), inference_id
                assert not any(r.ids_match for r in found.reports), found.reports
            else:
                assert inference.status == VALIDATED, inference_id
                assert all(r.passed and r.ids_match and r.rule_violations == 0
                           for r in found.reports), found.reports
        paid = developer_charge(inferences[i] for i in ids)
        account = net.account(net.developer.address)
        assert (before - account.balance, account.escrow) == (paid, 0)
    finally:
        net.close()
