"""Deterministic output: fixed float precision, no negative zero, sorted keys. Every file a report writes goes
through here, so re-running a report on the same run gives the same bytes."""
import json
import math
import re

import numpy as np
import pandas as pd

from analysis.names import point_name  # noqa: F401  (re-exported: the report's modules import it from here)

SIGNIFICANT = 10                    # digits kept in CSV and JSON: hides last-bit float noise, far below any
                                    # measured spread, and keeps column sums (the decomposition) exact to 1e-9
CSV_FLOAT = f"%.{SIGNIFICANT}g"
_NEG_ZERO = re.compile(r"(?<![\w.])-(?=0(?:\.0+)?(?![\d.]))")


def round_sig(x: float) -> float:
    if not math.isfinite(x) or x == 0:
        return 0.0 if x == 0 else x
    return float(f"{x:.{SIGNIFICANT}g}") + 0.0          # + 0.0 turns -0.0 into 0.0


def canonical(obj):
    """JSON-safe and stable: NaN/inf → null, numpy scalars → Python, floats rounded, -0 → 0 (in numbers, and in
    text such as a flag's message, whose fixed formats round a tiny negative to '-0.000')."""
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float):
        return round_sig(obj) if math.isfinite(obj) else None
    if isinstance(obj, str):
        return no_negative_zero(obj)
    return obj


def json_text(obj) -> str:
    return json.dumps(canonical(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def csv_text(df: pd.DataFrame) -> str:
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].where(out[c] != 0, 0.0)     # -0.0 == 0: written as 0
    return out.to_csv(index=False, float_format=CSV_FLOAT, lineterminator="\n")


def no_negative_zero(text: str) -> str:
    """'-0', '-0.0', '-0.00%' as a fixed format rounds them → '0', '0.0', '0.00%'."""
    return _NEG_ZERO.sub("", text)


def is_missing(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(v))
