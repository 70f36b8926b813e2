"""Cosmos transactions: decoding, the ante checks (fees, signatures, sequences), execution."""
