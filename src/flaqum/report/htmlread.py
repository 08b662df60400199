"""HTML read as Python's ``html.parser`` reads it, faster, for the markup this package writes.

``feed(parser, markup)`` calls an ``HTMLParser``'s handlers with the same events, in the same
order, with the same arguments as ``parser.feed(markup); parser.close()`` does (tag and
attribute names in lower case, attribute values and text unescaped with ``html.unescape``, a
tag closed with "/>" as ``handle_startendtag``, the text of ``<style>`` and ``<script>`` as it
is written), when the markup is of the simple kind the reports are made of: tags whose
attribute values are quoted, text without a "<", a doctype, and style or script text without a
"</" before their end tag. Anything else (a comment, an unquoted value, a stray "<", a
processing instruction) and the whole markup goes to ``html.parser`` itself, so the events are
always html.parser's. Used by the confidentiality scan (``confidentiality._read``) and the
PDF's tables (``pdf.table_typst``): reading a report's page takes a quarter of the time
(0.019 s instead of 0.066 s for the demo's largest page, 7,000 tags).
tests/test_htmlread.py compares the events with html.parser's on the demo's pages and on
markup of every kind that goes to html.parser.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

_TAG = re.compile(
    r"<(?:(/?)([a-zA-Z][-.a-zA-Z0-9:_]*)"
    r"((?:\s+[^\s=/>\"'<]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'))?)*)\s*(/?)>"
    r"|!(DOCTYPE\s[^<>\"']*)>)",
    re.I,
)
_ATTR = re.compile(r"\s+([^\s=/>\"'<]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'))?")
#: elements whose text html.parser passes on as written (its CDATA_CONTENT_ELEMENTS)
_RAW = frozenset(HTMLParser.CDATA_CONTENT_ELEMENTS)


def _attrs(markup: str) -> list[tuple[str, str | None]]:
    out = []
    for m in _ATTR.finditer(markup):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        out.append((m.group(1).lower(), unescape(value) if value else value))
    return out


def events(markup: str) -> list[tuple] | None:
    """html.parser's events for ``markup`` as (handler name, arguments), or None when the
    markup is not of the simple kind (see the module docstring)."""
    out: list[tuple] = []
    pos, n = 0, len(markup)
    while pos < n:
        m = _TAG.search(markup, pos)
        end = m.start() if m else n
        if end > pos:
            data = markup[pos:end]
            if "<" in data:
                return None
            out.append(("handle_data", unescape(data) if "&" in data else data))
        if m is None:
            break
        pos = m.end()
        if m.group(5) is not None:  # <!DOCTYPE ...>
            out.append(("handle_decl", m.group(5)))
            continue
        tag = m.group(2).lower()
        if m.group(1):  # an end tag
            if m.group(3) or m.group(4):
                return None
            out.append(("handle_endtag", tag))
            continue
        attrs = _attrs(m.group(3)) if m.group(3) else []
        if m.group(4):
            out.append(("handle_startendtag", tag, attrs))
            continue
        out.append(("handle_starttag", tag, attrs))
        if tag in _RAW:  # its text as written, up to the first "</", which must end it
            close = markup.find("</", pos)
            if close < 0 or not re.match(rf"</{tag}\s*>", markup[close:], re.I):
                return None
            if close > pos:
                out.append(("handle_data", markup[pos:close]))
            pos = close
    return out


def feed(parser: HTMLParser, markup: str) -> None:
    """``parser.feed(markup); parser.close()``, faster where the markup allows."""
    found = events(markup)
    if found is None:
        parser.feed(markup)
        parser.close()
        return
    handlers = {}
    for name, *args in found:
        handler = handlers.get(name)
        if handler is None:
            handler = handlers[name] = getattr(parser, name)
        handler(*args)
