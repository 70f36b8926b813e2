"""The node's client-facing services: Cosmos gRPC queries, the tx service, our own queries."""
