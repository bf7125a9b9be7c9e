"""Strict JSON reading for the project's own files (unknown keys rejected)."""
import json
import math
from pathlib import Path
from typing import Any

from theory.errors import TheoryError


def read_json(path: str | Path) -> Any:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise TheoryError(f"cannot read {p}: {e.strerror}") from None
    return loads_finite(text, str(p))


def loads_finite(text: str, where: str) -> Any:
    """json.loads, refusing NaN, Infinity and numbers that overflow to infinity (Python's json accepts all three):
    every number in the project's files is finite, so every field added later is checked for free."""
    def finite(s: str) -> float:
        v = float(s)
        if not math.isfinite(v):
            raise TheoryError(f"{where}: number {s} is not finite")
        return v

    def constant(s: str):
        raise TheoryError(f"{where}: {s} is not a number JSON allows here")
    try:
        return json.loads(text, parse_float=finite, parse_constant=constant)
    except json.JSONDecodeError as e:
        raise TheoryError(f"{where} is not valid JSON: {e.msg} at line {e.lineno}") from None


def check_keys(obj: Any, allowed: set[str], required: set[str], where: str) -> dict:
    """Reject anything but a JSON object whose keys are all known and whose required keys are present."""
    if not isinstance(obj, dict):
        raise TheoryError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise TheoryError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(obj))
    if missing:
        raise TheoryError(f"{where}: missing required key(s) {', '.join(missing)}")
    return obj


def positive_int(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TheoryError(f"{where}: {name} must be a positive integer, got {value!r}")
    return value


def positive_number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise TheoryError(f"{where}: {name} must be a positive finite number, got {value!r}")
    return float(value)


def non_negative_number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise TheoryError(f"{where}: {name} must be a non-negative finite number, got {value!r}")
    return float(value)
