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

import functools
import re
from html import unescape
from html.parser import HTMLParser

_TAG = re.compile(
    r"<(?:(/?)([a-zA-Z][-.a-zA-Z0-9:_]*)"
    r"((?:\s+[^\s=/>\"'<]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'))?)*)\s*(/?)>"
    r"|!(DOCTYPE\s[^<>\"']*)>)",
    re.I,
)
_ATTR = re.compile(r"\s+([^\s=/>\"'<]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'))?")
#: elements whose text html.parser passes on as written (its CDATA_CONTENT_ELEMENTS)
_RAW = frozenset(HTMLParser.CDATA_CONTENT_ELEMENTS)


@functools.lru_cache(maxsize=8192)
def _attrs(markup: str) -> tuple[tuple[str, str | None], ...]:
    """A start tag's attributes (name, value without its quotes, unescaped; None if it has
    none), as html.parser gives them; kept per markup (a table's cells repeat theirs)."""
    return tuple(
        (name.lower(), (unescape(v[1:-1]) if "&" in v else v[1:-1]) if v else None)
        for name, v in _ATTR.findall(markup)
    )


def events(markup: str) -> list[tuple] | None:
    """html.parser's events for ``markup`` as (handler name, arguments), or None when the
    markup is not of the simple kind (see the module docstring)."""
    out: list[tuple] = []
    append, search = out.append, _TAG.search
    pos, n = 0, len(markup)
    while pos < n:
        m = search(markup, pos)
        end = m.start() if m else n
        if end > pos:
            data = markup[pos:end]
            if "<" in data:
                return None
            append(("handle_data", unescape(data) if "&" in data else data))
        if m is None:
            break
        pos = m.end()
        close, tag, attrs, slash, decl = m.groups()
        if decl is not None:  # <!DOCTYPE ...>
            append(("handle_decl", decl))
            continue
        tag = tag.lower()
        if close:  # an end tag
            if attrs or slash:
                return None
            append(("handle_endtag", tag))
            continue
        attrs = list(_attrs(attrs)) if attrs else []
        if slash:
            append(("handle_startendtag", tag, attrs))
            continue
        append(("handle_starttag", tag, attrs))
        if tag in _RAW:  # its text as written, up to the first "</", which must end it
            close = markup.find("</", pos)
            if close < 0 or not re.match(rf"</{tag}\s*>", markup[close:], re.I):
                return None
            if close > pos:
                append(("handle_data", markup[pos:close]))
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
