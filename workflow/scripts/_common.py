"""Shared start of every rule script: the study, a logger writing to the rule's log, and how a
failure is told.

An input problem (``FlaqumError``: it names file, row, column, value and rule) is printed once,
without a traceback, and the job exits with status 1. Anything else is a bug: its traceback
goes to the rule's log file, and the console gets one line saying so and where the log is.
"""

import sys
import traceback
from pathlib import Path

try:  # the installed package (pip install . or -e .); else the one beside this workflow
    import flaqum  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from flaqum.config import load_study  # noqa: E402
from flaqum.errors import FlaqumError  # noqa: E402
from flaqum.utils import get_logger  # noqa: E402


def _excepthook(log_path):
    def hook(kind, exc, tb):
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        if issubclass(kind, FlaqumError):
            text = f"error: {exc}"
        else:
            text = (
                f"internal error (a bug, not your data): {kind.__name__}: {exc}; "
                f"the traceback is in {log_path or 'the job output'}"
            )
        if log_path:
            with open(log_path, "a") as fh:
                fh.write(text + "\n")
                if not issubclass(kind, FlaqumError):
                    fh.write("".join(traceback.format_exception(kind, exc, tb)))
        elif not issubclass(kind, FlaqumError):
            traceback.print_exception(kind, exc, tb)
        print(text, file=sys.stderr, flush=True)  # the interpreter then exits with status 1

    return hook


def setup(snakemake):
    log_path = snakemake.log[0] if snakemake.log else None
    log = get_logger(log_path)
    sys.excepthook = _excepthook(log_path)
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
