"""Row iteration over small data frames, without pandas' per-element cost.

A report walks many small frames row by row (a hospital's scales, teams, items, trend). The
obvious ``DataFrame.itertuples`` builds one Series per column through ``iloc`` and a new
namedtuple class per call, and pandas' pyarrow-backed string columns (the ``str`` dtype) are
iterated one ``pyarrow`` scalar at a time; together that was the largest part of a report's
content. ``rows`` yields the same rows, value for value, from whole columns.

``rows(df)`` is ``df.itertuples(index=False)`` with the same values: a numpy column gives
Python scalars (``ndarray.tolist``, as ``Series.__iter__`` does with ``.item()``), a ``str``
column its strings and its missing value (``NaN`` for ``str``, ``pd.NA`` for ``string``,
as its iteration does), and any other extension column (categorical, datetime, nullable
integer) iterates itself exactly as pandas does. A frame of numpy and string columns only
(most of a report's) is read as one object array (``to_numpy(dtype=object)``), which holds
those same values. The namedtuple class is built once per set of column names
(``rename=True`` as pandas: a name that is not an identifier becomes ``_k``).
tests/test_report_frames.py compares it with ``itertuples`` on every kind of column.
"""

from __future__ import annotations

from collections import namedtuple
from functools import lru_cache
from itertools import repeat

import numpy as np
import pandas as pd


@lru_cache(maxsize=256)
def _row_type(fields: tuple):
    return namedtuple("Pandas", fields, rename=True)


def column(s: pd.Series) -> list:
    """The values of ``s`` as iterating it gives them, as one list."""
    if isinstance(s.dtype, pd.StringDtype) or isinstance(s.array, pd.arrays.NumpyExtensionArray):
        return s.tolist()
    return list(s)


def rows(df: pd.DataFrame):
    """``df.itertuples(index=False)``: one namedtuple per row, the same values."""
    make = _row_type(tuple(map(str, df.columns)))._make
    if not len(df.columns):
        return map(make, repeat((), len(df)))
    if all(map(_plain, df.dtypes)):
        # numbers, objects and strings only: one object array gives every column's values as
        # its iteration does (numbers as Python scalars, a str column's missing value as is)
        return map(make, df.to_numpy(dtype=object).tolist())
    return map(make, zip(*[column(s) for _, s in df.items()], strict=True))


def _plain(dtype) -> bool:
    """A numpy number, bool or object column, or a ``str``/``string`` column."""
    return isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, np.dtype) and dtype.kind in "biufcO"
    )
