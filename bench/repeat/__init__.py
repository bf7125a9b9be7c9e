"""Adaptive repeats: the stopping rule (stats), the interference canary, and the repeat loop that uses both."""
