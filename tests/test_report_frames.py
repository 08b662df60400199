"""``flaqum.report.frames.rows`` gives what ``DataFrame.itertuples(index=False)`` gives.

Compared value by value, with the value's type (a Python float is not a numpy float64 to a
formatter, and ``NaN`` is not ``pd.NA`` to ``pd.isna``-free code), on every kind of column a
report's frames hold, with and without missing values, and on the frame shapes pandas treats
specially (no rows, no columns, repeated and non-identifier column names).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flaqum.report.frames import rows


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if a is pd.NA or b is pd.NA or a is pd.NaT or b is pd.NaT:
        return a is b
    return bool(a == b)


COLUMNS = {
    "float": pd.Series([1.5, np.nan, -0.25], dtype="float64"),
    "int": pd.Series([1, 2, 3], dtype="int64"),
    "bool": pd.Series([True, False, True]),
    "object": pd.Series(["a", None, np.float64(2.5)], dtype=object),
    "str": pd.Series(["a", None, "c"], dtype="str"),
    "str_full": pd.Series(["a", "b", "c"], dtype="str"),
    "string": pd.Series(["a", None, "c"], dtype="string"),
    "string_python": pd.Series(["a", None, "c"], dtype="string[python]"),
    "str_python": pd.Series(["a", None, "c"], dtype=pd.StringDtype("python", na_value=np.nan)),
    "category": pd.Series(["x", None, "y"], dtype="category"),
    "Int64": pd.Series([1, None, 3], dtype="Int64"),
    "Int64_full": pd.Series([1, 2, 3], dtype="Int64"),
    "Float64": pd.Series([0.5, None, 1.0], dtype="Float64"),
    "boolean": pd.Series([True, None, False], dtype="boolean"),
    "datetime": pd.Series(pd.to_datetime(["2024-01-01", None, "2025-06-30"])),
    "arrow_int": pd.Series([1, None, 3], dtype="int64[pyarrow]"),
}


@pytest.mark.parametrize("kind", sorted(COLUMNS))
def test_rows_match_itertuples_per_column_kind(kind):
    df = pd.DataFrame({"x": COLUMNS[kind], "label": ["p", "q", "r"]}).set_index(
        pd.Index([10, 11, 12])
    )
    assert df["x"].notna().any()
    got, want = list(rows(df)), list(df.itertuples(index=False))
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        assert g._fields == w._fields
        assert all(_same(a, b) for a, b in zip(g, w, strict=True)), (kind, g, w)


def test_rows_of_a_whole_frame_and_of_a_filtered_view():
    df = pd.DataFrame(COLUMNS)
    for frame in (df, df[df["int"] > 1], df.iloc[::-1]):
        got, want = list(rows(frame)), list(frame.itertuples(index=False))
        assert [g._fields for g in got] == [w._fields for w in want]
        for g, w in zip(got, want, strict=True):
            assert all(_same(a, b) for a, b in zip(g, w, strict=True)), (g, w)


def test_rows_of_a_frame_of_numbers_and_strings_only():
    # read from the frame's arrays (frames._plain): the same values and types as itertuples
    plain = ["float", "int", "bool", "object", "str", "str_full", "string", "string_python"]
    df = pd.DataFrame({k: COLUMNS[k] for k in plain}).set_index(pd.Index([5, 3, 9]))
    assert df.isna().any().sum() >= 4  # missing values in the number and string columns
    for frame in (df, df.iloc[::-1], df[df["int"] > 1], df.iloc[0:0]):
        got, want = list(rows(frame)), list(frame.itertuples(index=False))
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g._fields == w._fields
            assert all(_same(a, b) for a, b in zip(g, w, strict=True)), (g, w)


def test_rows_rename_fields_as_pandas_does():
    df = pd.DataFrame([[1, 2, 3, 4]], columns=["a", "a", "not an id", "_x"])
    (got,), (want,) = list(rows(df)), list(df.itertuples(index=False))
    assert got._fields == want._fields
    assert tuple(got) == tuple(want) == (1, 2, 3, 4)


def test_rows_of_empty_frames():
    assert list(rows(pd.DataFrame({"a": pd.Series([], dtype="str")}))) == []
    no_columns = pd.DataFrame(index=range(2))
    assert list(rows(no_columns)) == list(no_columns.itertuples(index=False))


# --- complementary suppression on arrays: the same decisions as the Series version ----------


def _complementary_status_series(n, k, hidden=None):
    """The Series implementation ``confidentiality.complementary_status`` replaced (the
    oracle): one pandas operation per step."""
    from flaqum.report.confidentiality import SHOWN, SMALL, WITHHELD

    n = pd.Series(n, dtype=float).fillna(0)
    status = pd.Series(np.where(n < k, SMALL, SHOWN), index=n.index, dtype=object)
    if hidden is not None:
        status[(status == SHOWN) & hidden.reindex(n.index, fill_value=False)] = WITHHELD
    while True:
        hid = (status != SHOWN) & (n > 0)
        if not ((status == SMALL) & (n > 0)).any():
            break
        if hid.sum() >= 2 and n[hid].sum() >= k:
            break
        shown = n[status == SHOWN].sort_values(kind="stable")
        if shown.empty:
            break
        status[shown.index[0]] = WITHHELD
    return status


@pytest.mark.parametrize("seed", range(40))
def test_complementary_status_decides_as_the_series_version(seed):
    from flaqum.report.confidentiality import complementary_status

    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 12))
    # small counts with ties, zeros and missing counts, as team sizes are
    n = rng.integers(0, 9, size).astype(float)
    n[rng.random(size) < 0.15] = np.nan
    index = pd.Index([f"T{i}" for i in rng.permutation(size)]) if seed % 2 else None
    n = pd.Series(n, index=index)
    hidden = None
    if seed % 3:
        hidden = pd.Series(rng.random(size) < 0.2, index=n.index).iloc[: max(size - 1, 0)]
    k = int(rng.integers(3, 7))
    got = complementary_status(n, k, hidden)
    want = _complementary_status_series(n, k, hidden)
    pd.testing.assert_series_equal(got, want)


# --- team sizes without a pivot table: the same sizes, teams and order -----------------------


def _team_sizes_pivot(ts, scales, names):
    """The pivot-table version ``confidentiality.team_sizes`` replaced (the oracle)."""
    wide = ts.pivot_table(index="team_id", columns="scale", values="n", aggfunc="first")
    size = wide.reindex(columns=scales).fillna(0).min(axis=1)
    return size.reindex(size.index.union(list(names)), fill_value=0)


@pytest.mark.parametrize("seed", range(30))
def test_team_sizes_are_the_pivot_tables(seed):
    from flaqum.report.confidentiality import team_sizes

    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 25))
    n = rng.integers(0, 12, size).astype(float)
    n[rng.random(size) < 0.2] = np.nan  # a team without a result on a scale
    ts = pd.DataFrame(
        {
            "team_id": pd.Series(rng.choice(["T1", "T2", "T10", "T3", "A"], size), dtype="str"),
            "scale": pd.Series(rng.choice(["s1", "s2", "s3"], size), dtype="str"),
            "n": n,
        }
    )
    scales = ["s1", "s2"] if seed % 2 else ["s2", "s1", "s3"]
    ts = ts[ts["scale"].isin(scales)]
    names = dict.fromkeys(rng.choice(["T9", "T2", "B", "T1"], int(rng.integers(0, 4))), "x")
    if ts.empty or ts["n"].isna().all():
        pytest.skip("the pivot table of no result is the empty case below")
    pd.testing.assert_series_equal(
        team_sizes(ts, scales, names), _team_sizes_pivot(ts, scales, names)
    )


@pytest.mark.parametrize("n", [[], [np.nan, np.nan]])
def test_team_sizes_without_results_list_the_register_in_its_order(n):
    from flaqum.report.confidentiality import team_sizes

    ts = pd.DataFrame(
        {
            "team_id": pd.Series(["T3", "T1"][: len(n)], dtype="str"),
            "scale": pd.Series(["a"] * len(n), dtype="str"),
            "n": pd.Series(n, dtype=float),
        }
    )
    names = {"T2": "x", "T1": "y"}
    got, want = team_sizes(ts, ["a", "b"], names), _team_sizes_pivot(ts, ["a", "b"], names)
    pd.testing.assert_series_equal(got, want)
    assert list(got.index) == ["T2", "T1"]


# --- a frame's rows by scale: set_index("scale").to_dict("index") ---------------------------


def test_rows_by_scale_are_to_dict_index():
    from flaqum.report.tables import _by_scale

    df = pd.DataFrame(
        {
            "scale": pd.Series(["b", "a", "c"], dtype="str"),
            "n": [3, 5, 7],
            "change": [0.25, np.nan, -1.5],
            "status": pd.Series(["shown", None, "small"], dtype="str"),
            "ok": [True, False, True],
        }
    ).iloc[::-1]
    got, want = _by_scale(df), df.set_index("scale").to_dict("index")
    assert list(got) == list(want) == ["c", "a", "b"]
    for key in want:
        assert list(got[key]) == list(want[key])
        assert all(_same(got[key][c], want[key][c]) for c in want[key]), (key, got, want)
    twice = pd.concat([df, df.iloc[:1]])
    with pytest.raises(ValueError, match="unique"):
        twice.set_index("scale").to_dict("index")
    with pytest.raises(ValueError, match="unique"):
        _by_scale(twice)
