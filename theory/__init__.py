"""Predicted side of the harness: FLOPs, bytes, roofline time and memory for decoder-only transformers.

Pure Python; never imports torch. Everything downstream (bench, analysis) uses the op names,
specs and step contract defined here.
"""
from theory.errors import TheoryError
from theory.dtypes import DTYPE_BYTES, dtype_bytes
from theory.model import ModelSpec
from theory.hfconfig import load_model, model_presets
from theory.hardware import HardwareSpec, load_hardware, hardware_presets
from theory.ops import OPS, OP_GROUPS, OpCount, Workload, count_ops
from theory.roofline import OpTime, Prediction, predict

__all__ = [
    "TheoryError", "DTYPE_BYTES", "dtype_bytes", "ModelSpec", "load_model", "model_presets",
    "HardwareSpec", "load_hardware", "hardware_presets", "OPS", "OP_GROUPS", "OpCount",
    "Workload", "count_ops", "OpTime", "Prediction", "predict",
]
