"""Calibration of the validator's detection thresholds (docs/design.md §6.3): ``python -m
bench.detection``. See ``__main__`` for what it measures and why."""
