"""Property-based tests (Hypothesis) of what a raw file can do with an id or a name (issue 8).

Ids and names are drawn from the whole of Unicode, with shell, path and HTML syntax mixed in.
For every one of them:

- validation's id rule either accepts the id, and then every path the pipeline builds from it
  stays inside the study folder and Snakemake's wildcard constraint matches it whole, or
  rejects it with a finding that names the file, the row, the column, the value and the rule;
- a name, written into a report's Markdown or HTML, shows as the same text and adds no
  element and no attribute.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import mistune
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flaqum.ids import ID_REGEX, check_id
from flaqum.report.escape import clean, html, md
from flaqum.validate import Validation, _check_ids

SYNTAX = [
    "$(touch PWNED)",
    "`id`",
    "; rm -rf /",
    "../",
    "..",
    "/",
    "\\",
    "~",
    "|",
    "&&",
    ">",
    "<",
    '<b onmouseover="alert(2)">',
    "</p>",
    "<script>",
    "{wave}",
    "{{",
    "%s",
    "\x00",
    "\n",
    "\r",
    "\t",
    "\u202e",
    "*",
    "_",
    "#",
    "[x](javascript:alert(1))",
    "&amp;",
    "'",
    '"',
    " ",
    "consortium",
    "research",
    ".",
    "-",
]
hostile = st.one_of(
    st.text(max_size=70),
    st.lists(st.one_of(st.sampled_from(SYNTAX), st.text(max_size=5)), max_size=8).map("".join),
)
SPEC = {"id": "hospital_id", "hospital": "hospital_id"}
FILE = Path("data/raw/2025-2/organisations.csv")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=hostile)
def test_an_id_is_accepted_safely_or_rejected_with_its_location(value):
    val = Validation("2025-2")
    df = pd.DataFrame({"hospital_id": ["H01", value], "hospital_name": ["a", "b"]})
    _check_ids(val, SPEC, df, FILE)
    read = df["hospital_id"].iloc[1]  # as validation read it (surrounding white space dropped)
    findings = [f for f in val.errors if f.row == 2]
    if pd.isna(read):
        assert [f.rule for f in findings] == ["id present"]
        return
    if check_id(read) is None:
        assert findings == []
        assert re.fullmatch(ID_REGEX, read)
        root = Path("/study").resolve()
        for pattern in (
            "reports/{w}/{h}.html",
            "results/{w}/reports/batch0/{h}.html",
            "logs/{w}/report_{h}.log",
            "benchmarks/{w}/report_{h}.tsv",
        ):
            path = (root / pattern.format(w="2025-2", h=read)).resolve()
            assert root in path.parents, path
            assert path.name.startswith(("report_", read))
    else:
        assert [f.rule for f in findings] == ["id alphabet"]
        f = findings[0]
        assert (f.file, f.row, f.column, f.value) == (str(FILE), 2, "hospital_id", read)
        assert str(FILE) in str(f) and "row 2" in str(f) and "[rule: id alphabet]" in str(f)
        assert re.fullmatch(ID_REGEX, read) is None or read.lower() in ("consortium", "research")


class Markup(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


_markdown = mistune.create_markdown(escape=False)  # nbconvert passes raw HTML through too


@settings(max_examples=400, deadline=None)
@given(name=hostile)
def test_a_name_shows_as_text_and_adds_no_markup(name):
    expected = clean(name)
    page = Markup()
    page.feed(_markdown(f"Your hospital: {md(name)}"))
    assert [t for t, _ in page.tags] in ([], ["p"])
    assert "".join(page.text).strip() == f"Your hospital: {expected}".strip()
    cell = Markup()
    cell.feed(f'<td title="{html(name)}">{html(name)}</td>')
    assert cell.tags == [("td", [("title", expected)])]
    assert "".join(cell.text) == expected
