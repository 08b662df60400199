"""What the Quarto template imports: display the precomputed sections of a report.

Deliberately light (json, IPython and the escaping helpers only) so that executing the
template costs little more than starting its kernel: the numbers, tables and figures were
computed by the package before the render (``content``), and the template decides only where
they go. A section that does not apply to the study has no blocks: ``heading`` then writes
no heading for it, and ``show`` nothing.

What each block holds, and so how it is written: a "markdown" block's text is Markdown whose
free text ``content`` has already escaped (``escape.md``/``escape.ident``); a table's "html"
was escaped cell by cell (``tables.html_table``) and a figure's "svg" by its writer
(``svg.Figure`` for the hospital report, matplotlib for the consortium report's) and
``figures.to_svg``; captions are plain text, escaped here.
"""

from __future__ import annotations

import json
from pathlib import Path

from flaqum.report.escape import md


class Report:
    def __init__(self, content: dict):
        self.content = content
        self.title = content.get("title", "")
        self.sections = content.get("sections", {})

    @classmethod
    def load(cls, path: str | Path) -> Report:
        return cls(json.loads(Path(path).read_text()))

    @classmethod
    def open(
        cls,
        bundle: str | None,
        root: str = ".",
        wave: str | None = None,
        hospital: str | None = None,
    ) -> Report:
        """The content from the bundle written before the render; without one (a hand-run
        ``quarto render``), built from the results under ``root``."""
        if bundle and Path(bundle).exists():
            return cls.load(bundle)
        from flaqum.report.render import build_content

        return cls(build_content(root, wave, hospital))

    def show(self, section: str) -> None:
        from IPython.display import HTML, Markdown, display

        for block in self.sections.get(section, []):
            kind = block["kind"]
            if kind == "markdown":
                display(Markdown(block["text"]))
            elif kind == "figure":
                display({"image/svg+xml": block["svg"], "text/plain": block["title"]}, raw=True)
                display(Markdown(f"*{md(block['caption'])}*"))
            elif kind == "table":
                display(HTML(block["html"]))
                if block.get("caption"):
                    display(Markdown(f"*{md(block['caption'])}*"))

    def has(self, section: str) -> bool:
        return bool(self.sections.get(section))

    def heading(self, section: str, title: str, level: int = 2) -> None:
        """The heading of a section that may not apply to the study (``shape``): written only
        when the content has the section, so that a section left out leaves no heading, and
        no entry in the table of contents. The template's cell runs with ``output: asis``:
        Quarto then writes the Markdown as part of the document (a real section, in its table
        of contents), and nbconvert renders it as a heading with an id (``render``)."""
        from IPython.display import Markdown, display

        if self.has(section):
            display(Markdown(f"\n{'#' * level} {md(title)}\n"))
