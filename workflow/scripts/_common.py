"""Shared start of every rule script: the study and a logger writing to the rule's log."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from flaqum.config import load_study  # noqa: E402
from flaqum.utils import get_logger  # noqa: E402


def setup(snakemake):
    log = get_logger(snakemake.log[0] if snakemake.log else None)
    return load_study(snakemake.config), log


def split_previous(inputs) -> tuple[dict, dict]:
    """(this wave's, the previous wave's) input paths by source, from keys ``source`` and
    ``previous__source`` (common.smk, ``_with_previous``)."""
    current, previous = {}, {}
    for key, path in inputs.items():
        if key.startswith("previous__"):
            previous[key.removeprefix("previous__")] = path
        else:
            current[key] = path
    return current, previous
