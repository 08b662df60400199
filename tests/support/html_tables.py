"""The tables of a report's HTML fragment as cell texts, for tests that compare the numbers a
report quotes with the tables it shows."""

from __future__ import annotations

from html.parser import HTMLParser

Table = tuple[list[str], list[list[str]]]


class _Tables(HTMLParser):
    """Header (``th`` cells) and rows (``td`` cells) of every table, whitespace collapsed."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(([], []))
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = " ".join("".join(self._cell).split())
            if tag == "th":
                self.tables[-1][0].append(text)
            else:
                self._row.append(text)
            self._cell = None
        elif tag == "tr" and self._row:
            self.tables[-1][1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def html_tables(html: str) -> list[Table]:
    """Every ``<table>`` of ``html`` as (header, rows)."""
    p = _Tables()
    p.feed(html)
    return p.tables
