"""The API node: OpenAI-compatible gateway, transfer agent, executor and validator worker.

It talks to its own ML node through the gRPC service in ``inferchain_pb.mlnode.v1``.
"""
