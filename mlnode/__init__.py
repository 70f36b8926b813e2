"""The ML node: hosts one model and serves generate, score, tokenize and info over gRPC.

It depends on nothing else in inferchain, so a participant can run it on a GPU host apart
from its chain and API nodes.
"""
