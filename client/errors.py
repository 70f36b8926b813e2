"""What the client refuses, said in one line: every expected failure is a ``CliError``, which
the command line prints as ``Error: …`` and exits 1, never a traceback."""

import grpc


class CliError(Exception):
    """A bad input, a missing key, an unreachable node, a refused transaction."""


def from_rpc(exc: grpc.RpcError, node: str) -> CliError:
    """The node's answer to a call in words: unreachable and timed-out nodes are told apart
    from a node that answered with a refusal, whose own message is kept."""
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or str(code)
    if code == grpc.StatusCode.UNAVAILABLE:
        return CliError(f"cannot reach the node at {node} ({details.splitlines()[0]}); "
                        f"check --node or `inferchain config set node`")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"the node at {node} did not answer in time")
    if code == grpc.StatusCode.NOT_FOUND and "not found" not in details:
        return CliError(f"not found: {details}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return CliError(f"the node at {node} does not serve this query ({details})")
    return CliError(details)
