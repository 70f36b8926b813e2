"""A whole (non-streamed) answer whose executor breaks off reaches the developer as an OpenAI
error, and the developer is charged nothing for it: none of its tokens reached the developer,
so its transfer agent signs no delivery of them and the start expires with a full refund.

Real processes: a solo chain, one participant (its transfer agent is its own executor) and an
ML node that is SIGKILLed mid-answer, once the start is on chain.
"""

import signal
import threading

import openai
from local_network import MODEL, LocalNetwork, MlNodes, poll

from inferchain_pb.inference.v1.inference_pb2 import EXPIRED, FINISHED, STARTED

# Longer than the answer, so that the only delivery a whole answer could get is the one of
# all of it (or of the prefix the agent holds when the executor breaks off).
SETTINGS = {"validator": False, "poc": False, "delivery_interval_tokens": 512}
PARAMS = {"inference": {"expiration_blocks": 40, "max_draw_age_blocks": 200}}


def test_a_whole_answer_broken_off_mid_way_is_refused_and_never_charged(tmp_path):
    mlnodes = MlNodes(tmp_path, 1)
    network = LocalNetwork(tmp_path, mlnodes.ports, params=PARAMS, node_settings=[SETTINGS])
    try:
        developer = network.developer.address
        funds = network.account(developer).balance
        client = network.client(network.nodes[0])
        outcome: dict[str, BaseException | None] = {}

        def ask() -> None:
            try:
                client.chat.completions.create(
                    model=MODEL, max_tokens=300, temperature=0.0,
                    messages=[{"role": "user", "content": "Count from 1 to 500."}])
                outcome["error"] = None
            except openai.APIError as exc:
                outcome["error"] = exc

        asker = threading.Thread(target=ask)
        asker.start()
        started = poll(lambda: next(iter(network.inferences(STARTED)), None),
                       "the start on chain", 120)
        mlnodes.processes[0].send_signal(signal.SIGKILL)
        asker.join(120)

        assert isinstance(outcome["error"], openai.APIStatusError)
        assert outcome["error"].status_code == 502
        expired = poll(lambda: found if (found := network.inference(started.id)) is not None
                       and found.status == EXPIRED else None, "the start's expiry", 120)
        assert expired.cost == 0 and not expired.finished
        assert network.account(developer).balance == funds
        assert not network.inferences(FINISHED)
    finally:
        network.close()
        mlnodes.close()
