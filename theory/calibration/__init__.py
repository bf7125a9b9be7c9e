"""Predict from a kernel calibration (`python -m bench kernels` writes it): data, never torch.

- predict.py: the calibration file (format, loading, checks) and a pass predicted from it;
- interp.py: an op's kernel time at a size the calibration lacks, by its work, and the as-run workload mapping;
- cli.py: `python -m theory --hardware <calibration.json>`.
"""
from theory.calibration.predict import (FORMAT, FORMAT_V1, FORMATS, SHAPE_FIELDS, PassPrediction, check_matches,
                                        is_calibration, load_calibration, predict_pass, request, status_line,
                                        upgrade)

__all__ = ["FORMAT", "FORMAT_V1", "FORMATS", "SHAPE_FIELDS", "PassPrediction", "check_matches", "is_calibration",
           "load_calibration", "predict_pass", "request", "status_line", "upgrade"]
