"""Timing: one trajectory (trajectory), the repeats around it (repeats), their statistics (stats, torch-free)
and the interference canary (canary)."""
