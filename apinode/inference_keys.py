"""The outbox keys of the messages an API node owes the chain for one inference.

One key per inference and message, so a message queued twice (a delivery handed over again, a
restart) is sent once; and a key names its inference, so a row whose bytes were damaged can be
traced back to the records it was made from and made again (``Executor.repair``).
"""

START = "start_inference"  # the transfer agent's MsgStartInference
FINISH = "finish_inference"  # the executor's MsgFinishInference
RELAY = "relay_start"  # the executor's MsgRelayStart of the agent's start


def start_key(inference_id: str) -> str:
    return f"{START}:{inference_id}"


def finish_key(inference_id: str) -> str:
    return f"{FINISH}:{inference_id}"


def relay_key(inference_id: str) -> str:
    return f"{RELAY}:{inference_id}"


def parse(key: str) -> tuple[str, str] | None:
    """(kind, inference id) of an inference's key; None for any other outbox key."""
    kind, _, inference_id = key.partition(":")
    if kind in (START, FINISH, RELAY) and inference_id:
        return kind, inference_id
    return None
