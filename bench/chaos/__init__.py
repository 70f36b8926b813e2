"""The chaos soak (``python -m bench.chaos``): the whole network under load while its
processes are killed, paused and starved, and an audit of what was lost or charged twice."""
