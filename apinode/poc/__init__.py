"""The API node's part of proof of compute (DESIGN.md §4): prove in the epoch's PoC window,
check the other members' proofs in the window after it (``worker.PocWorker``)."""
