"""Measured side of the harness: real Llama-style models timed on CPU or CUDA."""
import os

# Kineto prints a line per profiler start/stop unless told otherwise; keep progress output readable.
os.environ.setdefault("KINETO_LOG_LEVEL", "99")
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
