"""The API node's part of proof of compute (docs/design.md §7.2): prove in the epoch's PoC window,
check the other members' proofs in the window after it (``worker.PocWorker``)."""
