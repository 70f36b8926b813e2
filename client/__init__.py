"""The inferchain client: keys, queries, transactions, status and client config from the command
line, as a Cosmos chain's ``<app>d`` binary offers them (docs/cli.md).

It talks to a chain node only through the node's gRPC services, as any outside client does,
and keeps its own state (config and keyring) in a client home, ``~/.inferchain`` by default.
"""
