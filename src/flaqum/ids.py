"""Identifiers: the one validated type for hospital, team, respondent and wave ids.

An id from a raw file ends up in file paths (``reports/<wave>/<hospital_id>.html``), in
Snakemake wildcards and in report text, so it is restricted to a small, safe alphabet:

- letters A-Z and a-z, digits 0-9, and ``_``, ``.``, ``-`` (no spaces, no slashes, nothing a
  shell, a path or HTML would read as syntax);
- it starts with a letter or a digit (so never ``.``, ``..``, ``-x`` or a hidden file);
- at most ``MAX_ID_LENGTH`` (64) characters;
- not a name the DAG itself uses for a file or folder beside the hospitals' reports
  (``RESERVED``, compared without regard to case).

Names and labels (hospital names, team names, scale labels, item wording) are free text: they
are never used as paths and are escaped wherever they are written (see ``flaqum.report``).

``ID_REGEX`` is the same rule as a regular expression without anchors, for Snakemake's
``wildcard_constraints``; ``check_id`` says why a value is not an id.
"""

from __future__ import annotations

import re

MAX_ID_LENGTH = 64
ID_REGEX = rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_ID_LENGTH - 1}}}"
ID_PATTERN = re.compile(rf"\A{ID_REGEX}\Z")
# Names of files and folders the pipeline writes beside or instead of a hospital's files.
RESERVED = frozenset({"consortium", "research"})
ID_RULE = (
    "an id is 1-64 characters of letters, digits, '_', '.' or '-', starting with a letter or "
    "a digit"
)


def check_id(value: object, kind: str = "id") -> str | None:
    """``None`` when ``value`` is a valid id, else the reason in words (for a ``Finding``)."""
    if value is None:
        return f"{kind} is empty"
    text = str(value)
    if text == "":
        return f"{kind} is empty"
    if len(text) > MAX_ID_LENGTH:
        return f"{kind} is {len(text)} characters long; at most {MAX_ID_LENGTH} are allowed"
    if not ID_PATTERN.match(text):
        bad = sorted({c for c in text if not re.match(r"[A-Za-z0-9_.-]", c)})
        if bad:
            shown = ", ".join(repr(c) for c in bad[:5])
            return f"{kind} contains characters not allowed in an id ({shown}); {ID_RULE}"
        return f"{kind} must start with a letter or a digit; {ID_RULE}"
    if text.lower() in RESERVED:
        return (
            f"{kind} {text!r} is a name the pipeline uses for its own files "
            f"({', '.join(sorted(RESERVED))}); choose another id"
        )
    return None


def is_id(value: object) -> bool:
    return check_id(value) is None
