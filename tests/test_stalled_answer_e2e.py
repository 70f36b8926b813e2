"""An executor that stops sending mid-answer while keeping its stream open does not hold the
developer's request for ever: past ``token_gap_timeout_s`` without a token the transfer agent
breaks the answer off as the executor's failure, and the executor is paid for exactly the
tokens that reached the developer.

Real processes: a solo chain, one participant (its transfer agent is its own executor) and an
ML node that is SIGSTOPped mid-answer, once tokens have reached the developer.
"""

import signal

import openai
import pytest
from inference_actors import developer_charge
from local_network import MODEL, LocalNetwork, MlNodes, poll

from inferchain_pb.inference.v1.inference_pb2 import FINISHED

GAP_S = 5.0
SETTINGS = {"validator": False, "poc": False, "token_gap_timeout_s": GAP_S}
MAX_TOKENS = 300


def test_a_stream_whose_executor_goes_silent_is_broken_off_and_paid_for_what_arrived(
        tmp_path):
    mlnodes = MlNodes(tmp_path, 1)
    network = LocalNetwork(tmp_path, mlnodes.ports, node_settings=[SETTINGS])
    stopped = False
    try:
        developer = network.developer.address
        funds = network.account(developer).balance
        # The client's own read timeout is far above the gap: only the node can end this.
        client = network.client(network.nodes[0]).with_options(timeout=300, max_retries=0)
        stream = client.chat.completions.create(
            model=MODEL, max_tokens=MAX_TOKENS, temperature=0.0, stream=True,
            messages=[{"role": "user", "content": "Count from 1 to 500."}])
        text, pieces, inference_id = "", 0, None
        with pytest.raises(openai.APIError, match="executor") as broken:
            for chunk in stream:
                inference_id = chunk.model_extra.get("inference_id") or inference_id
                if chunk.choices and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                    pieces += 1
                if len(text) >= 8 and not stopped:
                    mlnodes.processes[0].send_signal(signal.SIGSTOP)
                    stopped = True
        assert stopped, broken.value
        mlnodes.processes[0].send_signal(signal.SIGCONT)
        stopped = False

        finished = network.finished(inference_id)
        assert finished.status == FINISHED
        # Paid for the tokens that reached the developer (one chunk each: the answer is
        # plain ASCII), not for the max_tokens escrowed.
        assert len(finished.output_ids) == pieces < MAX_TOKENS
        assert finished.cost == (finished.prompt_tokens + pieces) * finished.price_per_token
        account = poll(lambda: found if (found := network.account(developer)).escrow == 0
                       else None, "the escrow released", 60)
        assert funds - account.balance == developer_charge([finished])
        assert "Traceback" not in network.nodes[0].log()
    finally:
        if stopped:
            mlnodes.processes[0].send_signal(signal.SIGCONT)
        network.close()
        mlnodes.close()
