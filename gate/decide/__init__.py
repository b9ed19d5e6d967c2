"""Verdicts: the timing, memory and size rules (compare), quality and parity (quality),
budgets and tails (limits), and the sequential paired rounds that call the decision between
batches (sequential, calibrate)."""
