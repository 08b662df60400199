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

How the blocks travel (``Collector``): under Quarto, and wherever no collector is installed,
each block is its own ``display(..., raw=True)``, one message of the kernel's. The Jupyter
engine installs a ``Collector`` first (``render.one_cell``): the blocks are then kept in the
kernel and sent as one display whose data is their list (``OUTPUTS``), just before anything
else the kernel writes, and ``render.split_outputs`` gives them back one by one.
"""

from __future__ import annotations

import json
import sys
import threading
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
        cost of a display. (Or collected, while a ``Collector`` is installed.)"""
        display = _display()
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
        if self.has(section):
            _display()(_markdown(f"\n{'#' * level} {md(title)}\n"), raw=True)


#: the plain-text stand-ins IPython writes for its ``Markdown`` and ``HTML`` objects
_MARKDOWN = "<IPython.core.display.Markdown object>"
_HTML = "<IPython.core.display.HTML object>"


def _markdown(text: str) -> dict:
    return {"text/markdown": text, "text/plain": _MARKDOWN}


# --- the outputs of one execution as one message ------------------------------------------------

#: the mimetype of the display that carries a list of collected output bundles: a ``+json``
#: type, whose data nbformat's schema lets be any JSON value
OUTPUTS = "application/x-flaqum-outputs+json"

#: the collector installed in this kernel, if any (``Collector``)
_collector: Collector | None = None


def _display():
    """Where ``Report`` sends a bundle: the installed collector, else IPython's ``display``."""
    if _collector is not None:
        return _collector.add
    from IPython.display import display

    return display


_UNSET = object()


class Collector:
    """Displays collected in the kernel during one execution and sent as one message.

    Each display is one IOPub message, and each message costs about 2 ms of CPU across the
    kernel and the client: 70 raw displays of 2 KB cost 0.06 s of nbclient's process and
    0.095 s of the kernel; one display whose data is the list of the same 70 bundles, 0.02 s
    and 0.03 s. While a collector is installed, ``Report.show`` and ``Report.heading`` (and
    ``add``, the markers) append their bundle to a list, and the list goes out as one
    ``display_data`` whose data is ``{OUTPUTS: [bundle, ...]}``. A hospital report of the
    demo's wave 2025-2 is then one message instead of 90 (72 blocks, 18 cell markers of
    ``render.one_cell``), and its HTML costs 0.25 s of CPU instead of 0.36 s (median of 15
    reports of a render batch: ``render.execute_notebook`` 0.028 s instead of 0.060 s of the
    rendering process, 0.04 s instead of 0.115 s of the kernel).

    The order of the outputs is kept: the list is sent (``flush``) before anything else the
    kernel writes goes out: a write to ``sys.stdout`` or ``sys.stderr`` (made on this
    thread; ipykernel buffers the text, and sends it before the next display), another
    display or a ``clear_output`` (the shell's ``display_pub``), a value shown by the
    displayhook (a cell's last expression), a traceback (``showtraceback``: every exception
    of a cell, ``SystemExit`` too, where ``set_custom_exc`` would not see that one) and, at
    the end of the execution, whatever is left (IPython's ``post_execute`` event, which
    also runs when a cell raised). These methods are wrapped on their objects (instance
    attributes, as IPython itself wraps ``sys.stdout.write`` to keep output history) and
    restored at the end of the execution with the collector removed, so that the next
    execution on a shared kernel (``render.render_batch``) starts without one unless it
    installs its own. Where something cannot be wrapped, no collector is installed and each
    display goes out by itself, as under Quarto."""

    def __init__(self, shell):
        self.shell = shell
        self.bundles: list[dict] = []
        self._thread = threading.get_ident()
        self._publish = shell.display_pub.publish  # the display that sends the list
        self._saved: list[tuple[object, str, object]] = []
        self.installed = False

    def install(self) -> Collector:
        """Wrap what flushes the list, and collect until the execution ends."""
        global _collector
        if _collector is not None:  # one left by an execution that did not end (none so far)
            _collector.close()
        targets = [
            (sys.stdout, "write"),
            (sys.stderr, "write"),
            (self.shell.display_pub, "publish"),
            (self.shell.display_pub, "clear_output"),
            (self.shell.displayhook, "start_displayhook"),
            (self.shell, "showtraceback"),
        ]
        try:
            for obj, name in targets:
                self._wrap(obj, name)
        except (AttributeError, TypeError):  # a stream or shell that cannot be wrapped
            self._restore()
            return self
        self.shell.events.register("post_execute", self.close)
        _collector, self.installed = self, True
        return self

    def add(self, bundle: dict, raw: bool = True) -> None:
        """Keep a raw bundle (``display(bundle, raw=True)``'s arguments) to send later; sent at
        once where the collector is not installed."""
        if self.installed:
            self.bundles.append(bundle)
        else:
            self._publish(data=bundle, metadata={})

    def flush(self) -> None:
        """Send the bundles kept so far as one display."""
        if self.bundles:
            bundles, self.bundles = self.bundles, []
            self._publish(data={OUTPUTS: bundles}, metadata={})

    def close(self, *args) -> None:
        """Send what is left and restore what was wrapped (the ``post_execute`` event)."""
        global _collector
        if not self.installed:
            return
        try:
            self.flush()
        finally:
            self.installed = False
            self._restore()
            self.shell.events.unregister("post_execute", self.close)
            if _collector is self:
                _collector = None

    def _wrap(self, obj, name: str) -> None:
        original = getattr(obj, name)
        before = vars(obj).get(name, _UNSET)

        def flushed(*args, **kwargs):
            if self.bundles and threading.get_ident() == self._thread:
                self.flush()
            return original(*args, **kwargs)

        setattr(obj, name, flushed)
        self._saved.append((obj, name, before))

    def _restore(self) -> None:
        while self._saved:
            obj, name, before = self._saved.pop()
            if before is _UNSET:
                delattr(obj, name)
            else:
                setattr(obj, name, before)
