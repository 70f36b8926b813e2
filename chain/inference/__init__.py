"""The inference module: participants, models, inferences, escrow and the executor draw."""
