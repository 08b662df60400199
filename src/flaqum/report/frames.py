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
integer) iterates itself exactly as pandas does. The numpy and string columns (most of a
report's) are read from the frame's arrays (``DataFrame._iter_column_arrays``: a Series per
column, or one object array of the frame, ``to_numpy(dtype=object)``, cost five times more;
a ``str`` column's strings from its pyarrow array, ``to_pylist``, a null as the column's
missing value). The namedtuple class is built once per set of column names
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
    arrays = getattr(df, "_iter_column_arrays", None)  # pandas' own, without a Series each
    if arrays is None:  # pragma: no cover
        return map(make, zip(*[column(s) for _, s in df.items()], strict=True))
    # each column's values as its iteration gives them, read from its array (a Series per
    # column, or one object array of the frame, cost five times more)
    values = [
        _values(a) if _plain(a.dtype) else column(df.iloc[:, i]) for i, a in enumerate(arrays())
    ]
    return map(make, zip(*values, strict=True))


def _values(array) -> list:
    """The values of a numpy number, bool or object array (Python scalars, as a Series'
    iteration gives them: ``ndarray.tolist``) or a ``str``/``string`` array (its strings, and
    its missing value where pyarrow has a null)."""
    if isinstance(array, np.ndarray):
        return array.tolist()
    dtype = array.dtype
    if dtype.storage == "pyarrow":
        chunks = array.__arrow_array__()
        values = chunks.to_pylist()
        if chunks.null_count:
            na = dtype.na_value
            return [na if v is None else v for v in values]
        return values
    return list(array)


def _plain(dtype) -> bool:
    """A numpy number, bool or object column, or a ``str``/``string`` column."""
    return isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, np.dtype) and dtype.kind in "biufcO"
    )
