"""Calibration of the validator's detection thresholds (DESIGN.md §3.6): ``python -m
bench.detection``. See ``__main__`` for what it measures and why."""
