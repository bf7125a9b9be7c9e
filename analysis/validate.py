"""A damaged run file is refused in one line naming the file and the line, never read as numbers it does not hold:
a row cut short (a truncated write), a time that is not a positive finite number (NaN, inf, zero, negative), an
empty or unreadable CSV beside the measurements (kernels, compose, framework, profile)."""
import csv
import math
from pathlib import Path

import pandas as pd

from theory.errors import TheoryError


def check_fields(path: Path) -> None:
    """Every line has as many fields as the header (pandas fills a short line with NaN without a word)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise TheoryError(f"{path} is empty (no header line)")
        for row in reader:
            if row and len(row) != len(header):
                raise TheoryError(f"{path} line {reader.line_num}: {len(row)} of {len(header)} fields; the file is "
                                  "truncated or damaged")


def check_times(path: Path, df: pd.DataFrame, column: str = "time_s", where: pd.Series | None = None) -> None:
    """`column` is a positive finite number in every row (of `where`), else one line naming the CSV line."""
    sel = df if where is None else df[where]
    values = pd.to_numeric(sel[column], errors="coerce")
    bad = values[~values.map(lambda v: isinstance(v, float) and math.isfinite(v) and v > 0)]
    if len(bad):
        i = bad.index[0]
        raw = sel.loc[i, column]
        who = ", ".join(f"{k} {sel.loc[i, k]}" for k in ("point_id", "phase", "step", "repeat") if k in sel.columns)
        raise TheoryError(f"{path} line {int(i) + 2} ({who}): {column} is {raw!r}, not a positive finite time "
                          f"({len(bad)} such row(s)); the file is damaged")


def read_side_csv(path: Path, **kw) -> pd.DataFrame:
    """A CSV the report reads beside the measurements, or one line naming it."""
    try:
        return pd.read_csv(path, **kw)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise TheoryError(f"{path} is not a readable CSV ({str(e).splitlines()[0][:120]}); delete it or measure "
                          "the run again") from None
