"""The results of one wave, as the report stage reads them (DataFrames, never paths below here).

``load_wave`` reads the files the pipeline writes (CONTRACT section 4) into a ``WaveResults``;
tests build a ``WaveResults`` directly from frames. Optional inputs (change since the previous
wave, hypotheses, agreement, the Maturity Matrix, the teams register of a study without teams)
may be absent: the report then says so instead of failing (see ``shape``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from flaqum.outputs import WAVE_FILES, wave_file

ID_COLS = {"hospital_id": "string", "team_id": "string", "respondent_id": "string"}
#: WaveResults field -> file name under results/<wave>/benchmark/ (flaqum.outputs.WAVE_FILES)
BENCHMARK_FILES = {
    key: Path(path).name for key, path in WAVE_FILES.items() if key.startswith("bench_")
}


@dataclass
class WaveResults:
    wave: str
    organisations: pd.DataFrame  # hospital_id, hospital_name, ...
    team_register: pd.DataFrame  # team_id, hospital_id, team_name, team_type
    hospitals: pd.DataFrame  # multilevel/hospitals.csv
    teams: pd.DataFrame  # multilevel/teams.csv
    maturity: pd.DataFrame  # scores/maturity.parquet: one row per hospital, one column per scale
    maturity_items: pd.DataFrame  # processed/maturity.parquet: the 52 core processes
    responses: dict[str, pd.DataFrame] = field(default_factory=dict)  # processed survey items
    agreement: pd.DataFrame | None = None  # psychometrics/agreement.csv
    change: pd.DataFrame | None = None  # multilevel/change.csv (not in a first wave)
    scales: pd.DataFrame | None = None  # psychometrics/scales.csv
    items: pd.DataFrame | None = None  # psychometrics/items.csv
    variance: pd.DataFrame | None = None  # multilevel/variance.csv
    hypotheses: pd.DataFrame | None = None  # hypotheses/summary.csv
    # the report statistics (benchmark/*.csv); None: computed from the frames here when a
    # view is built (tests, hand-made results), trends then for this wave alone
    bench_items: pd.DataFrame | None = None  # benchmark/items.csv
    bench_scales: pd.DataFrame | None = None  # benchmark/scales.csv
    bench_stakeholders: pd.DataFrame | None = None  # benchmark/stakeholders.csv
    bench_maturity: pd.DataFrame | None = None  # benchmark/maturity.csv
    bench_peers: pd.DataFrame | None = None  # benchmark/peers.csv
    bench_trends: pd.DataFrame | None = None  # benchmark/trends.csv (every wave up to this)
    validation: dict = field(default_factory=dict)  # validation.json
    # the consortium report's extra inputs (``RESEARCH``): tables by key, "hypothesis_results"
    # a list of the hypotheses' JSON documents
    research: dict = field(default_factory=dict)

    def hospital_ids(self) -> list[str]:
        return sorted(self.organisations["hospital_id"].astype(str))

    def hospital_names(self) -> dict[str, str]:
        """Each hospital's name in the organisations register, by id: the name of its first
        row, its id where that name is blank."""
        orgs = self.organisations
        ids = orgs["hospital_id"].astype(str).tolist()
        names = orgs["hospital_name"].tolist() if "hospital_name" in orgs else [None] * len(ids)
        out: dict[str, str] = {}
        for hid, name in zip(ids, names, strict=True):
            if hid not in out:
                out[hid] = str(name) if pd.notna(name) else hid
        return out

    def hospital_name(self, hospital_id: str) -> str:
        names = self.hospital_names()
        if hospital_id not in names:
            raise KeyError(f"hospital {hospital_id!r} is not in the wave's organisations register")
        return names[hospital_id]


def _ids(df: pd.DataFrame) -> pd.DataFrame:
    for col, typ in ID_COLS.items():
        if col in df.columns:
            df[col] = df[col].astype(typ)
    return df


#: columns of the benchmark files that hold names, read as text ("2024" is a wave, not a year)
BENCHMARK_TEXT = (
    "wave",
    "previous_wave",
    "scale",
    "column",
    "group",
    "measure",
    "kind",
    "level",
    "item",
    "instrument",
    "source",
    "dimension",
    "instrument_a",
    "instrument_b",
)


def read_table(path: Path | str | None, text=()) -> pd.DataFrame | None:
    """A CSV or parquet result with ids (and the columns in ``text``) as strings; None when
    the path is None or missing."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    if path.suffix == ".parquet":
        return _ids(pd.read_parquet(path))
    if not text:
        return _ids(pd.read_csv(path, dtype={c: str for c in ID_COLS}))
    # names as written: only an empty field is missing (a peer group may be called "NA")
    dtype = {c: str for c in (*ID_COLS, *text)}
    return _ids(pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""]))


# The consortium report's extra tables (key -> file under results/<wave>/).
RESEARCH = {
    key: WAVE_FILES[key].removeprefix("results/{wave}/")
    for key in ("invariance", "adjusted", "funnel", "planning", "planning_hospitals")
}


def load_research(paths: dict) -> dict:
    """The consortium report's extra inputs that ``paths`` names and that exist."""
    out = {key: read_table(paths.get(key)) for key in RESEARCH}
    out = {k: v for k, v in out.items() if v is not None}
    docs = paths.get("hypothesis_results") or []
    out["hypothesis_results"] = [
        json.loads(Path(p).read_text())
        for p in ([docs] if isinstance(docs, str) else docs)
        if Path(p).exists()
    ]
    return out


def load_wave(wave: str, paths: dict[str, str | list[str]]) -> WaveResults:
    """Read the wave's results. ``paths`` maps the WaveResults fields to files; ``responses``
    is a list of processed survey files (their stem is the source)."""
    paths = dict(paths)
    if "item_stats" in paths:  # "items" is a reserved name in a Snakemake rule's input
        paths.setdefault("items", paths.pop("item_stats"))
    responses = {}
    for p in paths.get("responses", []) or []:
        responses[Path(p).stem] = read_table(p)
    validation = {}
    if paths.get("validation") and Path(paths["validation"]).exists():
        validation = json.loads(Path(paths["validation"]).read_text())
    frames = {
        key: read_table(paths.get(key), BENCHMARK_TEXT if key in BENCHMARK_FILES else ())
        for key in (
            "organisations",
            "team_register",
            "hospitals",
            "teams",
            "maturity",
            "maturity_items",
            "agreement",
            "change",
            "scales",
            "items",
            "variance",
            "hypotheses",
            *BENCHMARK_FILES,
        )
    }
    for key in ("organisations", "hospitals", "teams"):
        if frames[key] is None:
            raise FileNotFoundError(f"report input {key!r} not found: {paths.get(key)}")
    for key in BENCHMARK_FILES:
        # a report statistic named but missing is an error, not a silent fallback
        if frames[key] is None and paths.get(key) is not None:
            raise FileNotFoundError(f"report input {key!r} not found: {paths[key]}")
    if frames["team_register"] is None:
        if paths.get("team_register") is not None:
            raise FileNotFoundError(
                f"report input 'team_register' not found: {paths['team_register']}"
            )
        # a study without teams has no teams register
        frames["team_register"] = pd.DataFrame(
            {c: pd.Series(dtype="string") for c in ("team_id", "hospital_id", "team_name")}
        )
    if frames["maturity"] is None:
        frames["maturity"] = pd.DataFrame({"hospital_id": pd.Series(dtype="string")})
    if frames["maturity_items"] is None:
        frames["maturity_items"] = pd.DataFrame({"hospital_id": pd.Series(dtype="string")})
    return WaveResults(
        wave=wave,
        responses=responses,
        validation=validation,
        research=load_research(paths),
        **frames,
    )


def wave_paths(root: Path | str, wave: str, sources=("staff", "patients")) -> dict:
    """The report inputs of a wave under ``root``, where the pipeline writes them
    (:data:`flaqum.outputs.WAVE_FILES`), keyed as :func:`load_wave` reads them."""
    r = Path(root)
    paths = {key: str(r / wave_file(key, wave)) for key in WAVE_FILES}
    # a study without teams has no teams register (None: none expected)
    if not Path(paths["team_register"]).exists():
        paths["team_register"] = None
    # the report statistics, where the benchmark stage has written them (results of an
    # older run without them: computed when a view is built)
    if not (r / "results" / wave / "benchmark").exists():
        paths = {k: v for k, v in paths.items() if k not in BENCHMARK_FILES}
    paths["responses"] = [str(r / wave_file("processed", wave, s)) for s in sources]
    hypotheses = Path(paths["hypotheses"]).parent
    paths["hypothesis_results"] = sorted(str(p) for p in hypotheses.glob("*.json"))
    return paths
