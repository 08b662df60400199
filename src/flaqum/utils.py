"""Small shared helpers: atomic writes (a failed stage leaves no half-written file), logging."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a new file gets under this process's umask (0644 under the usual 022)."""
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(path: Path | str):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary file is private while it is written (mkstemp: 0600) and gets the mode of any
    new file under the umask before it is moved into place, so outputs are readable by the
    group and others as the user's umask allows, like every other file they make."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_parquet(df: pd.DataFrame, path: Path | str, metadata: dict | None = None) -> None:
    """Parquet with optional JSON metadata (labels) under the key ``flaqum``."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta[b"flaqum"] = json.dumps(metadata, default=str).encode()
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_csv(df: pd.DataFrame, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")


def read_parquet_meta(path: Path | str) -> dict:
    import json

    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"flaqum")
    return json.loads(raw) if raw else {}


def get_logger(log_path: str | None = None, name: str = "flaqum") -> logging.Logger:
    """A logger writing to the rule's log file and to stderr (Snakemake shows it)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger
