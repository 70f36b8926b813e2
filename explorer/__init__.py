"""The network explorer: a web page that shows what the chain holds (status, blocks,
participants, inferences with their artifacts and verdicts, epochs, proposals), so a
participant can see whether it is paid, checked or invalidated without writing code.

It is read-only and reads everything over the chain node's gRPC queries; docs/explorer.md
describes its pages.
"""
