"""Free text into a report: cleaned once, then escaped for the place where it is written.

Hospital, team, scale and item names come from raw files and codebooks and may contain
anything (``<b onmouseover=...>``, ``$(...)``, Markdown syntax, newlines, Unicode). Ids are a
validated type (``flaqum.ids``), but they go through the same functions, so that nothing
written into a report depends on a check made elsewhere.

- ``clean``: the text as a reader should see it, on one line: control characters (newlines,
  tabs, NUL, ...) become spaces, the bidirectional override and isolate marks that can make
  text read in another order than it is stored are removed, runs of white space become one
  space. Everything else (letters of any script, punctuation, emoji) is kept.
- ``md``: text for a Markdown block. The Markdown renderers of both engines (nbconvert's
  mistune, Quarto's pandoc) pass raw HTML through, and Markdown syntax in a name could start
  a heading, a list, a link, emphasis or a formula. So ``& < > " '`` are written as HTML
  character references and every other ASCII punctuation character is backslash-escaped
  (CommonMark and pandoc both read ``\\X`` as a literal X for any ASCII punctuation X): the
  name becomes plain text that shows literally and cannot change the structure around it.
- ``ident``: the same, marked as the place where a name is written (``<span class="ident">``),
  which the confidentiality scan reads (``confidentiality.scan_report``).
- ``html``: text for an HTML element or attribute value (tables, SVG attributes).
"""

from __future__ import annotations

import html as html_lib
import re

IDENT_CLASS = "ident"

# Bidirectional embedding, override and isolate controls (Unicode "Trojan Source" marks).
_BIDI = dict.fromkeys(map(ord, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
_MD_PUNCT = frozenset("!#$%()*+,-./:;=?@[\\]^_`{|}~")


def _missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN
    except (TypeError, ValueError):  # pandas.NA has no truth value
        return True


#: ``clean`` and ``html`` of the texts seen (a report cleans the same labels thousands of
#: times, and a batch's reports share most of them); emptied when it grows large
_CLEANED: dict[str, str] = {}
_HTML: dict[str, str] = {}
_KEEP = 50_000


def clean(value) -> str:
    """The value as one line of plain text (see the module docstring); '' for a missing value
    (None, NaN, pandas.NA)."""
    if isinstance(value, str):
        done = _CLEANED.get(value)
        if done is not None:
            return done
        text = value
    elif _missing(value):
        return ""
    else:
        text = str(value)
    # control characters (Unicode category Cc: exactly U+0000-001F and U+007F-009F) as spaces
    out = " ".join(_CONTROL.sub(" ", text.translate(_BIDI)).split())
    if isinstance(value, str):
        if len(_CLEANED) > _KEEP:
            _CLEANED.clear()
        _CLEANED[value] = out
    return out


def md(value) -> str:
    """``value`` as literal text inside Markdown (and so inside the HTML made from it)."""
    return "".join(_MD_ENTITIES.get(c) or ("\\" + c if c in _MD_PUNCT else c) for c in clean(value))


def ident(value) -> str:
    """A name (hospital, team) as literal Markdown text, marked as a name for the scan."""
    return f'<span class="{IDENT_CLASS}">{md(value)}</span>'


def html(value) -> str:
    """``value`` as literal text in HTML or XML, inside an element or a quoted attribute."""
    if isinstance(value, str):
        done = _HTML.get(value)
        if done is None:
            done = html_lib.escape(clean(value), quote=True)
            if len(_HTML) > _KEEP:
                _HTML.clear()
            _HTML[value] = done
        return done
    return html_lib.escape(clean(value), quote=True)
