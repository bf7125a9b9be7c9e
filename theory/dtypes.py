"""Canonical dtype strings and their storage width."""
from theory.errors import TheoryError

# tf32 is a matmul mode, stored as fp32 (4 bytes); fp8 and int8 are 1 byte.
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}


def dtype_bytes(dtype: str) -> int:
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise TheoryError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}") from None
