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
        """Display a section's blocks. Each output is the bundle IPython's ``Markdown`` and
        ``HTML`` objects give (the same data, the same plain-text stand-in), written as a raw
        bundle: IPython's formatters then have nothing to work out, a third of the kernel's
        cost of a display."""
        from IPython.display import display

        for block in self.sections.get(section, []):
            kind = block["kind"]
            if kind == "markdown":
                display(_markdown(block["text"]), raw=True)
            elif kind == "figure":
                display({"image/svg+xml": block["svg"], "text/plain": block["title"]}, raw=True)
                display(_markdown(f"*{md(block['caption'])}*"), raw=True)
            elif kind == "table":
                display({"text/html": block["html"], "text/plain": _HTML}, raw=True)
                if block.get("caption"):
                    display(_markdown(f"*{md(block['caption'])}*"), raw=True)

    def has(self, section: str) -> bool:
        return bool(self.sections.get(section))

    def heading(self, section: str, title: str, level: int = 2) -> None:
        """The heading of a section that may not apply to the study (``shape``): written only
        when the content has the section, so that a section left out leaves no heading, and
        no entry in the table of contents. The template's cell runs with ``output: asis``:
        Quarto then writes the Markdown as part of the document (a real section, in its table
        of contents), and nbconvert renders it as a heading with an id (``render``)."""
        from IPython.display import display

        if self.has(section):
            display(_markdown(f"\n{'#' * level} {md(title)}\n"), raw=True)


#: the plain-text stand-ins IPython writes for its ``Markdown`` and ``HTML`` objects
_MARKDOWN = "<IPython.core.display.Markdown object>"
_HTML = "<IPython.core.display.HTML object>"


def _markdown(text: str) -> dict:
    return {"text/markdown": text, "text/plain": _MARKDOWN}
