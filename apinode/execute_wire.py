"""How an executor's stream travels back to the transfer agent: one JSON object per line.

A line is {"step": …}, {"executed": …} or {"error": "…"}; the last line of a good stream is
"executed". Newline-delimited JSON keeps each token flowing as soon as it exists.
"""

import json
from dataclasses import asdict
from typing import Any

from apinode.executor import Executed, ExecutedStep

EXECUTE_PATH = "/internal/v1/execute"


class ExecutorFailed(Exception):
    """The remote executor broke off or answered with an error line."""


def encode(item: ExecutedStep | Executed | str) -> bytes:
    if isinstance(item, ExecutedStep):
        body: dict[str, Any] = {"step": asdict(item)}
    elif isinstance(item, Executed):
        body = {"executed": asdict(item)}
    else:
        body = {"error": item}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> ExecutedStep | Executed:
    try:
        body = json.loads(line)
        if "step" in body:
            step = body["step"]
            return ExecutedStep(int(step["token_id"]), str(step["text"]), float(step["logprob"]),
                                tuple(int(t) for t in step["top_ids"]),
                                tuple(float(v) for v in step["top_logprobs"]))
        if "executed" in body:
            done = body["executed"]
            return Executed(tuple(int(t) for t in done["output_ids"]), str(done["text"]),
                            str(done["finish_reason"]), int(done["prompt_tokens"]),
                            int(done["completion_tokens"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ExecutorFailed(f"malformed line from the executor: {exc}") from exc
    raise ExecutorFailed(f"the executor failed: {body.get('error', body)}")
