"""The one CSV writer: a header and rows of dicts, numbers in a fixed format, written atomically.

Floats use `float_format` (".6g" by default); None and NaN are empty cells (a missing figure, not the
string "nan"); infinities stay "inf" / "-inf"; fields with commas or quotes are quoted by the csv module.
"""

from __future__ import annotations

import csv
import io
import math
import os
from typing import Any, Iterable, Mapping, Sequence

from protgan.core.atomic import write_text


def format_cell(value: Any, float_format: str = ".6g") -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return format(value, float_format)
    return str(value)


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], float_format: str = ".6g") -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_cell(row.get(c), float_format) for c in columns])
    return buf.getvalue()


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str],
              float_format: str = ".6g") -> None:
    write_text(path, csv_text(rows, columns, float_format))
