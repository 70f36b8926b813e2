"""Economic security: whether cheating, laziness and collusion pay under the chain's
parameters (docs/economics.md). `python -m bench.economics` prints the tables."""
