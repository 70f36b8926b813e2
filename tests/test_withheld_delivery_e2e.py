"""A transfer agent that takes the output and withholds its delivery signatures still pays
its executor for the longest prefix it signed, and takes at most K tokens unpaid: the
executor runs no more than K tokens ahead of the signatures it holds, and the developer is
charged exactly for the signed prefix.

Real processes (tests/local_network.py): a solo chain and two participants with K
(``delivery_interval_tokens``) = 4. Participant 0 is the developer's transfer agent with the
"withhold-delivery" fault (it signs delivery of the first 4 tokens only) and refuses to
execute itself ("refuse-all"), so every request runs on participant 1, an honest executor.
Participant 0's validator worker is honest: the prefixes, cut short by the agent's missing
signatures rather than ending on EOS or max_tokens, pass their checks.
"""

from collections.abc import Iterator

import openai
import pytest
from inference_actors import developer_charge
from local_network import MODEL, LocalNetwork, MlNodes
from test_validation_e2e import FAST_WORKER, ONE_LONG_EPOCH, all_checked, wait_for_seeds

from inferchain_pb.inference.v1.inference_pb2 import VALIDATED

K = 4
COUNTING = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


@pytest.fixture(scope="module")
def mlnodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlNodes]:
    nodes = MlNodes(tmp_path_factory.mktemp("mlnodes"), 2)
    yield nodes
    nodes.close()


def streamed_tokens(chunks: Iterator) -> tuple[int, bool, str]:
    """(tokens the developer received, whether the stream ended cleanly, inference id)."""
    received, inference_id = 0, ""
    try:
        for chunk in chunks:
            inference_id = chunk.model_extra["inference_id"]
            if chunk.choices and chunk.choices[0].logprobs:
                received += len(chunk.choices[0].logprobs.content or [])
    except openai.APIError:
        return received, False, inference_id
    return received, True, inference_id


def test_a_transfer_agent_withholding_delivery_pays_for_the_signed_prefix(
        mlnodes: MlNodes, tmp_path) -> None:
    shared = {**FAST_WORKER, "poc": False, "delivery_interval_tokens": K,
              "delivery_wait_s": 2.0}
    network = LocalNetwork(
        tmp_path, mlnodes.ports,
        params={**ONE_LONG_EPOCH,
                "inference": {"max_draw_age_blocks": 40, "expiration_blocks": 100}},
        node_settings=[{**shared, "transfer_agent_fault": "withhold-delivery",
                        "executor_fault": "refuse-all"}, shared])
    agent, executor = network.nodes
    try:
        wait_for_seeds(network, 0)
        client = network.client(agent)
        # Six tokens: the output completes, but its agent signs only the first four.
        done, clean, completed_id = streamed_tokens(client.chat.completions.create(
            model=MODEL, messages=COUNTING, max_tokens=6, temperature=0, seed=1,
            stream=True, logprobs=True))
        assert (done, clean) == (6, True)
        # Up to 300: the executor stops K tokens past the last signature, at 2K.
        cut, clean, stopped_id = streamed_tokens(client.chat.completions.create(
            model=MODEL, messages=COUNTING, max_tokens=300, temperature=0, seed=2,
            stream=True, logprobs=True))
        assert (cut, clean) == (2 * K, False)

        ids = [completed_id, stopped_id]
        for inference_id in ids:
            network.finished(inference_id, timeout=60)
        tasks = all_checked(network, ids)
        charged = [network.inference(i) for i in ids]
        assert all(i.status == VALIDATED for i in charged)
        assert all(r.passed and r.ids_match for t in tasks.values() for r in t.reports)
        for inference in charged:
            assert (inference.executor, inference.transfer_agent) == (executor.address,
                                                                      agent.address)
            # Paid for the signed prefix only, and charged exactly that.
            assert inference.output_tokens == len(inference.output_ids) == K
            assert inference.cost == (inference.prompt_tokens + K) * inference.price_per_token
        spent = network.funds[network.developer.address] - network.account(
            network.developer.address).balance
        assert spent == developer_charge(charged)
        assert network.participant(executor.address).completions == 2
        assert network.participant(executor.address).misses == 0

        # The executor passed on no more than K tokens beyond the signatures it held.
        log = executor.log()
        assert f"signed delivery of {K} of the 6 tokens passed on" in log
        assert f"signed delivery of {K} of the {2 * K} tokens passed on and no more" in log
        assert "FAULT INJECTION 'withhold-delivery' is on" in agent.log()
    finally:
        network.close()
