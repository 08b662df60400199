"""Rendering a report: the one template, executed by Quarto or by the Jupyter toolchain.

Both engines start from the same ``.qmd``. Each render works in its own folder (a copy of the
template, its stylesheet and the precomputed content), because parallel renders of one ``.qmd``
collide on their intermediate files (quarto-cli #5861, #6116). The finished HTML is scanned
for other hospitals' identifiers and only then moved into place; a failed render leaves
nothing at the output path.

Engine choice (``report.engine`` in config/config.yaml): ``quarto`` needs ``quarto`` on PATH,
``jupyter`` always works (``read_qmd`` reads the .qmd's chunks, nbclient executes it, nbconvert
writes the HTML without code), ``auto`` takes Quarto where it is installed.

The same input gives the same bytes: the notebook's cells get fixed ids (nbformat draws random
ones, which nbconvert writes into the page), the figures fix their SVG ids and write no date
(``figures.to_svg``), and nothing of the render folder's temporary path reaches the page.

With the Jupyter engine the template's code cells run in one execute request
(``one_cell``), each preceded by a marker, and each cell gets its own outputs back
(``split_outputs``): the notebook is the one a cell-by-cell run gives, at less than half the
kernel's CPU (a cell costs the kernel and nbclient about 10 ms by itself). The template's
displays and the markers travel collected in the kernel, one message between two other outputs
instead of one each (``layout.Collector``: a third less of the HTML's CPU). A kernel shared by
a batch's renders has its namespace cleared before each (``_RESET``).

The Jupyter kernel talks to this process over local (IPC) sockets in a private temporary
folder, not over TCP on the loopback interface: nothing listens on a port, and the kernel has
no reason to warn that its traffic is unencrypted.
"""

from __future__ import annotations

import functools
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from flaqum.report.escape import html as esc

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "workflow" / "report"
ENGINES = ("auto", "quarto", "jupyter")


class ReportError(RuntimeError):
    pass


def choose_engine(setting: str = "auto") -> str:
    """'quarto' or 'jupyter' for the configured ``report.engine``."""
    setting = (setting or "auto").lower()
    if setting not in ENGINES:
        raise ReportError(f"report.engine must be one of {ENGINES}, not {setting!r}")
    has_quarto = shutil.which("quarto") is not None
    if setting == "quarto" and not has_quarto:
        raise ReportError(
            "report.engine is 'quarto' but quarto is not on PATH; install it (the conda "
            "environment.yml has it) or set report.engine: auto"
        )
    if setting == "auto":
        return "quarto" if has_quarto else "jupyter"
    return setting


# --- the .qmd as a notebook -------------------------------------------------------------------

_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
_OPT = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*)$")


def split_front_matter(text: str) -> tuple[dict, str]:
    import yaml

    m = _FRONT.match(text)
    if not m:
        return {}, text
    return yaml.safe_load(m.group(1)) or {}, text[m.end() :]


def chunk_options(source: str) -> dict:
    """Quarto's ``#| key: value`` options at the top of a code cell, parsed as YAML."""
    import yaml

    opts = {}
    for line in source.splitlines():
        m = _OPT.match(line.strip())
        if not m:
            if line.strip():
                break
            continue
        opts[m.group(1)] = yaml.safe_load(m.group(2)) if m.group(2) else None
    return opts


_FENCE = re.compile(r"^```\{(\w+)[^}]*\}\s*$")


def read_qmd(path: Path | str):
    """The template as a notebook: markdown between chunks as markdown cells, each
    ```` ```{python} ```` chunk as a code cell with its ``#| tags`` as cell tags, and the front
    matter in the notebook's metadata. (jupytext's .qmd reader calls Quarto itself, and its
    R Markdown reader costs a second per render in imports; the chunk syntax is this simple.)
    A batch reads the same template for every report (a copy in each render's folder): it is
    parsed once per text, and each call gets its own copy."""
    import copy

    try:
        return copy.deepcopy(_parse_qmd(Path(path).read_text()))
    except _QmdError as e:
        raise ReportError(f"{path}: {e}") from None


class _QmdError(ValueError):
    """A template that cannot be read (``read_qmd`` names its file)."""


@functools.lru_cache(maxsize=8)
def _parse_qmd(source: str):
    import nbformat

    front, body = split_front_matter(source)
    cells, buf, lang = [], [], None

    def flush_markdown():
        text = "\n".join(buf).strip("\n")
        if text.strip():
            cells.append(nbformat.v4.new_markdown_cell(text))

    for line in body.splitlines():
        m = _FENCE.match(line)
        if lang is None and m:
            flush_markdown()
            buf, lang = [], m.group(1)
        elif lang is not None and line.strip() == "```":
            src = "\n".join(buf)
            if lang != "python":
                raise _QmdError(f"only python chunks are supported, found {lang!r}")
            cell = nbformat.v4.new_code_cell(src)
            tags = chunk_options(src).get("tags") or []
            if tags:
                cell.metadata["tags"] = list(tags)
            cells.append(cell)
            buf, lang = [], None
        else:
            buf.append(line)
    if lang is not None:
        raise _QmdError(f"a ```{{{lang}}} chunk is not closed")
    flush_markdown()
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"  # nbformat's ids are random: fixed ones keep the HTML the same
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["quarto"] = front
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def inject_parameters(nb, params: dict):
    """Insert a cell setting ``params`` after the cell tagged ``parameters`` (as papermill)."""
    import nbformat

    idx = next(
        (i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None
    )
    if idx is None:
        raise ReportError("the template has no cell tagged 'parameters' (#| tags: [parameters])")
    src = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    cell.id = "injected-parameters"
    nb.cells.insert(idx + 1, cell)
    return nb


_SOCKETS = "flaqum-kernel-"  # prefix of the kernels' socket folders


def start_kernel(workdir: Path):
    """Start a kernel running this interpreter and this process's flaqum (a source folder is
    put first on the kernel's ``PYTHONPATH``), whatever kernelspecs the machine has; it boots
    while the caller computes the report's content.

    Its sockets are Unix domain sockets (``transport="ipc"``) in a private folder under the
    system's temporary directory (short, as socket paths must be); ``stop_kernel`` removes
    them. Windows has no IPC transport: there the kernel uses TCP on the loopback interface."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    import flaqum

    kdir = workdir / "kernels" / "flaqum-report"
    kdir.mkdir(parents=True, exist_ok=True)
    # the folder this process imported flaqum from comes first on the kernel's path, so that
    # the template runs the same package (not another checkout installed in the environment,
    # as an editable install of a second working tree); an installed package is found anyway
    env = {"MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    package_root = Path(flaqum.__file__).resolve().parents[1]
    if package_root.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(package_root), os.environ.get("PYTHONPATH")) if p
        )
    (kdir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "flaqum report",
                "language": "python",
                "env": env,
            }
        )
    )
    ksm = KernelSpecManager(kernel_dirs=[str(kdir.parent)], ensure_native_kernel=False)
    transport = {}
    if os.name == "posix":
        # a Unix socket path has at most 107 bytes: keep clear of a long TMPDIR
        base = tempfile.gettempdir()
        if len(base) > 60 and os.path.isdir("/tmp"):
            base = "/tmp"
        sockets = tempfile.mkdtemp(prefix=_SOCKETS, dir=base)
        transport = {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}
    km = KernelManager(kernel_name="flaqum-report", kernel_spec_manager=ksm, **transport)
    try:
        km.start_kernel(cwd=str(workdir), extra_arguments=["--HistoryManager.enabled=False"])
    except BaseException:
        stop_kernel(km)
        raise
    return km


def stop_kernel(km) -> None:
    """Shut a kernel from ``start_kernel`` down and remove its socket folder."""
    try:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    finally:
        if km.transport == "ipc":
            folder = Path(km.ip).parent
            if folder.name.startswith(_SOCKETS):
                shutil.rmtree(folder, ignore_errors=True)


#: the display that marks where a template cell's outputs begin in the one executed cell
_MARK = "application/x-flaqum-cell"
#: what the kernel runs first: the names the previous render left are deleted (the template's
#: variables, its imports), as ``%reset -f`` would, without the garbage collection and the
#: clearing of histories that make ``%reset`` cost 0.13 s of the kernel's CPU per render
_RESET = (
    "def __flaqum_reset(ns=get_ipython().user_ns, hidden=get_ipython().user_ns_hidden):\n"
    "    for name in [k for k in ns if not k.startswith('_') and k not in hidden]:\n"
    "        del ns[name]\n"
    "__flaqum_reset()\n"
)
_SHOW = (
    "def __flaqum_result(value):\n"
    "    if value is not None:\n"
    "        get_ipython().displayhook(value)\n"
)
#: how the markers are displayed: each by itself, or (``batch``) collected in the kernel with
#: the template's blocks (``layout.Report``) and sent as one display each time something else
#: is output (``layout.Collector``); one line either way, so that a traceback's line numbers
#: are the same
_DISPLAY = "from IPython.display import display as __flaqum_display\n"
_COLLECT = (
    "from flaqum.report.layout import Collector as __flaqum_collector; "
    "__flaqum_display = __flaqum_collector(get_ipython()).install().add\n"
)


def _cell_code(source: str) -> str:
    """A template cell's code as a part of the one executed cell: IPython's syntax (magics)
    turned into Python, and the value of a last bare expression shown, as Jupyter shows it
    for a cell of its own (a trailing ``;`` hides it, as there)."""
    import ast

    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(source)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code  # the kernel reports it, with its line
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr) or code.rstrip().endswith(";"):
        return code
    lines = code.splitlines(keepends=True)
    start = sum(len(x) for x in lines[: last.lineno - 1]) + last.col_offset
    end = sum(len(x) for x in lines[: last.end_lineno - 1]) + last.end_col_offset
    return f"{code[:start]}__flaqum_result(({code[start:end]}\n)){code[end:]}"


def one_cell(nb, reset: bool = False, batch: bool = True):
    """The notebook's code cells as one cell, each cell's code preceded by a marker display.

    The Jupyter engine executes the template this way: one execute request instead of one
    per cell (a cell costs the kernel and nbclient about 10 ms of CPU by itself, a fifth of
    a report's HTML), and ``split_outputs`` gives each template cell its own outputs back,
    so that the notebook, its HTML and its PDF are as if every cell had run on its own.
    ``reset``: the kernel's namespace is cleared first (a kernel shared by several renders).
    ``batch``: the markers and the template's blocks travel as one display between two other
    outputs (``layout.Collector``; about 90 messages fewer per hospital report, 0.1 s of CPU
    less across the kernel and this process); without it, each is a display of its own, as
    under Quarto."""
    import nbformat

    parts = [_RESET] if reset else []
    parts += [_COLLECT if batch else _DISPLAY, _SHOW]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            parts.append(f"__flaqum_display({{{_MARK!r}: {str(i)!r}}}, raw=True)\n")
            parts.append(_cell_code(cell.source) + "\n")
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("".join(parts))])


def split_outputs(nb, executed) -> None:
    """Give each code cell of ``nb`` the outputs that followed its marker in ``executed``
    (the one cell of ``one_cell``). A display of collected bundles (``layout.OUTPUTS``)
    stands for one ``display_data`` per bundle, as each would have been without
    collecting (its metadata empty), markers included."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    current = None
    for out in _each_output(executed.cells[0].get("outputs", [])):
        mark = out.get("data", {}).get(_MARK)
        if mark is not None:
            current = nb.cells[int(mark)]
        elif current is not None:
            current.outputs.append(out)


def _each_output(outputs):
    """The executed cell's outputs, a display of collected bundles given back as the displays
    it stands for, in order (built as nbformat's ``output_from_msg`` builds a display, without
    its check of each output: ``execute_notebook`` checks them all at once)."""
    from nbformat import NotebookNode

    from flaqum.report.layout import OUTPUTS

    for out in outputs:
        kind = out.get("output_type")
        bundles = out.get("data", {}).get(OUTPUTS) if kind == "display_data" else None
        if bundles is None:
            yield out
            continue
        for data in bundles:
            yield NotebookNode(output_type="display_data", metadata=NotebookNode(), data=data)


def execute_notebook(
    nb, workdir: Path, km=None, timeout: int = 600, reset: bool = False, batch: bool = True
):
    """Execute with nbclient in ``workdir``; on a kernel from ``start_kernel`` if given (then
    the kernel keeps running for the next render). The code cells run as one (``one_cell``);
    each gets its own outputs back. ``reset``: clear the kernel's namespace first.
    ``batch``: the template's displays travel collected (``one_cell``)."""
    import nbformat
    import nbformat.v4.nbbase as nbbase
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    own = km is None
    km = km or start_kernel(workdir)
    merged = one_cell(nb, reset=reset, batch=batch)
    client = NotebookClient(
        merged, km=km, timeout=timeout, resources={"metadata": {"path": str(workdir)}}
    )
    # nbformat checks every output against its JSON schema as nbclient records it, with
    # jsonschema (fastjsonschema cannot check a part of the schema): about 1 ms an output, a
    # fifth of a report's HTML. The outputs are checked once instead, with the whole
    # notebook and fastjsonschema, after the run (``nbformat.validate`` below).
    check_each = nbbase.validate
    nbbase.validate = _checked_later
    try:
        client.execute()
    except CellExecutionError as e:
        split_outputs(nb, merged)
        for cell in nb.cells:
            err = next((o for o in cell.get("outputs", []) if o.output_type == "error"), None)
            if err is not None:
                code = [x.strip() for x in cell.source.splitlines() if not x.startswith("#|")]
                first = next((x for x in code if x), "")
                raise ReportError(
                    f"the template's cell {cell.get('id', '?')} ({first[:60]}) raised "
                    f"{err.ename}: {err.evalue}"
                ) from e
        raise
    finally:
        nbbase.validate = check_each
        # nbclient leaves the channels of a kernel it does not own open (and warns "Could not
        # destroy zmq context" when they are collected): close them after each render
        if client.kc is not None:
            client.kc.stop_channels()
        if own:
            stop_kernel(km)
    split_outputs(nb, merged)
    # checked as the template's cells have them: a display of collected bundles as the
    # displays it stands for (its data is any JSON to nbformat's schema)
    merged.cells[0].outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    nbformat.validate(merged)
    return nb


def _checked_later(node, ref=None):
    """nbformat's check of one output while nbclient runs: done for all of them at the end."""


@functools.cache
def _markdown_parser():
    """nbconvert's Markdown parser and renderer, made once: both keep no state between
    documents, and making them costs more than rendering a report's paragraphs."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    return MarkdownWithMath(renderer=IPythonRenderer(escape=False, anchor_link_text=""))


@functools.lru_cache(maxsize=4096)
def _markdown_html(source: str) -> str:
    """Markdown as nbconvert writes it (its mistune renderer: headings get an id and an empty
    anchor link), without the rest of nbconvert's exporter. Kept per text for the batch: most
    of a report's text (headings, how to read, notes) is the same in every report of a render
    batch (137 different texts in 567 over 11 reports)."""
    html = _markdown_parser().render(source)
    # a heading's empty anchor comes out of ElementTree as <a ... />, which HTML reads as an
    # opening tag (the rest of the page would be a link): close it as nbconvert's export does
    return _EMPTY_A.sub(r"<a\1></a>", html)


_EMPTY_A = re.compile(r"<a\b([^>]*?)\s*/>")


def _output_html(out) -> str:
    """One output of a template cell as HTML: the template's outputs are Markdown, HTML (the
    tables) and SVG (the figures, inline with their <title> and aria-label, so their text is
    readable, searchable and scanned)."""
    kind = out.get("output_type")
    if kind == "stream":
        return (
            f'<div class="output_subarea output_stream output_{out.get("name", "stdout")} '
            f'output_text">\n<pre>{html_lib.escape(out.get("text", ""), quote=False)}</pre>\n'
            "</div>"
        )
    if kind == "error":
        raise ReportError(f"the template raised {out.get('ename')}: {out.get('evalue')}")
    data = out.get("data", {})
    if "text/html" in data:
        return f'<div class="output_html rendered_html output_subarea">{data["text/html"]}</div>'
    if "image/svg+xml" in data:
        return f'<div class="output_svg output_subarea">\n{data["image/svg+xml"]}\n</div>'
    if "text/markdown" in data:
        return (
            '<div class="output_markdown rendered_html output_subarea">\n'
            f"{_markdown_html(data['text/markdown'])}\n</div>"
        )
    if "text/plain" in data:
        return (
            '<div class="output_text output_subarea">\n'
            f"<pre>{html_lib.escape(data['text/plain'], quote=False)}</pre>\n</div>"
        )
    return ""


def notebook_body(nb) -> str:
    """The executed notebook as HTML without code: the markup of nbconvert's ``basic``
    template (the same classes and heading ids), written directly from the outputs, which
    costs a twentieth of nbconvert's exporter (bench/results/2026-12-01-reports.md)."""
    parts = []
    for cell in nb.cells:
        cid = html_lib.escape(f"cell-id={cell.get('id', '')}")
        tags = "".join(f" celltag_{html_lib.escape(t)}" for t in cell.metadata.get("tags", []))
        if cell.cell_type == "markdown":
            parts.append(
                f'<div class="cell border-box-sizing text_cell rendered{tags}" id="{cid}">'
                '<div class="inner_cell">\n<div class="text_cell_render border-box-sizing '
                f'rendered_html">\n{_markdown_html(cell.source)}\n</div>\n</div>\n</div>'
            )
        elif cell.cell_type == "code":
            outs = [x for x in map(_output_html, cell.get("outputs", [])) if x]
            if not outs:
                continue
            areas = "\n".join(f'<div class="output_area">\n{x}\n</div>' for x in outs)
            parts.append(
                f'<div class="cell border-box-sizing code_cell rendered{tags}" id="{cid}">\n'
                f'<div class="output_wrapper">\n<div class="output">\n{areas}\n</div>\n'
                "</div>\n</div>"
            )
    return "\n".join(parts)


def notebook_to_html(nb, title: str, css: str) -> str:
    """Self-contained HTML: no code, no scripts, figures inline, a table of contents."""
    body = notebook_body(nb)
    heads = re.findall(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', body, flags=re.S)
    toc = "".join(
        f'<li><a href="#{hid}">{re.sub(r"<[^>]+>", "", text).strip()}</a></li>'
        for hid, text in heads
    )
    t = esc(title)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{t}</title><style>{css}</style></head><body>"
        f'<header class="report-header"><h1 class="title">{t}</h1>'
        '<p class="subtitle">FlaQuM Triangle Study</p></header>'
        f'<nav id="TOC"><h2 class="toc-title">Contents</h2><ul>{toc}</ul></nav>'
        f'<main class="content">{body}</main></body></html>\n'
    )


# --- one render ---------------------------------------------------------------------------------


def _quarto(workdir: Path, qmd: str, params: dict, to: str) -> Path:
    args = ["quarto", "render", qmd, "--to", to]
    for k, v in params.items():
        args += ["-P", f"{k}:{v}"]
    res = subprocess.run(args, cwd=workdir, capture_output=True, text=True)
    if res.returncode != 0:
        raise ReportError(f"quarto render failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    ext = {"html": ".html", "typst": ".pdf"}[to]
    return workdir / (Path(qmd).stem + ext)


def _kernel_cpu(km) -> float:
    """CPU seconds the kernel process has used so far (0 where it cannot be read)."""
    try:
        import psutil

        t = psutil.Process(km.provisioner.process.pid).cpu_times()
        return t.user + t.system
    except Exception:
        return 0.0


def render_report(
    template: str | Path,
    content,
    out_html: str | Path,
    params: dict,
    engine: str = "auto",
    forbidden: dict | None = None,
    out_pdf: str | Path | None = None,
    keep: bool = False,
    km=None,
    cost: dict | None = None,
) -> Path:
    """Render ``template`` with ``content`` into ``out_html`` (and the A4 ``out_pdf``).

    ``content`` is the dict from ``content.py`` or a function returning it (called once the
    kernel is booting, so that both run at once). ``km``: a running kernel shared by several
    renders (``render_batch``); its namespace is reset before the template runs.

    The PDF: Quarto's Typst PDF with the Quarto engine; otherwise written by ``pdf`` from the
    same executed notebook as the HTML (so its text is the text the scan read).

    ``forbidden`` are identifiers (see ``confidentiality.forbidden_identifiers``) that must not
    appear anywhere in the output: a hit is an error and nothing is written. Both files are
    written as ``.part`` files first and moved into place together once both are complete.

    ``cost``, if given, receives the CPU seconds of the render's parts: ``content`` (the
    package's tables and figures), ``html`` (the template executed, the HTML written and
    scanned; the kernel's CPU included) and ``pdf``.
    """
    import time

    from flaqum.report.confidentiality import scan_report

    template = Path(template)
    out_html = Path(out_html)
    out_pdf = Path(out_pdf) if out_pdf is not None else None
    engine = choose_engine(engine)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{out_html.stem}.render.", dir=out_html.parent))
    shared = km is not None
    parts = [p.with_name(f".{p.name}.part") for p in (out_html, out_pdf) if p is not None]
    cost = cost if cost is not None else {}
    try:
        shutil.copy2(template, workdir / template.name)
        css_path = template.parent / "report.css"
        if css_path.exists():
            shutil.copy2(css_path, workdir / "report.css")
        css = css_path.read_text() if css_path.exists() else ""
        if engine == "jupyter" and callable(content) and not shared:
            km = start_kernel(workdir)
        t = time.process_time()
        if callable(content):
            content = content()
        (workdir / "content.json").write_text(json.dumps(content))
        cost["content"] = time.process_time() - t
        t, k = time.process_time(), _kernel_cpu(km) if km is not None else 0.0
        params = {**params, "bundle": str((workdir / "content.json").resolve())}
        if engine == "quarto":
            html_file = _quarto(workdir, template.name, params, "html")
            html = html_file.read_text()
        else:
            nb = inject_parameters(read_qmd(workdir / template.name), params)
            execute_notebook(nb, workdir, km=km, reset=shared)
            html = notebook_to_html(nb, content.get("title", ""), css)
        if forbidden:
            hits = scan_report(html, forbidden)
            if hits:
                raise ReportError(f"{out_html}: the report names another hospital: {hits[:5]}")
        parts[0].write_text(html)
        kernel = (_kernel_cpu(km) - k) if km is not None else 0.0
        cost["html"] = time.process_time() - t + kernel
        if out_pdf is not None:
            t = time.process_time()
            if engine == "quarto":
                shutil.move(_quarto(workdir, template.name, params, "typst"), parts[1])
            else:
                from flaqum.report.pdf import notebook_to_pdf

                parts[1].write_bytes(notebook_to_pdf(nb, content.get("title", ""), css, workdir))
            cost["pdf"] = time.process_time() - t
            os.replace(parts[1], out_pdf)
        os.replace(parts[0], out_html)
        return out_html
    finally:
        if km is not None and not shared:
            stop_kernel(km)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        for part in parts:
            if part.exists():
                part.unlink()


def build_content(root: str | Path, wave: str, hospital: str | None = None) -> dict:
    """Content straight from the results under ``root`` (for a hand-run ``quarto render``)."""
    from flaqum.config import load_study
    from flaqum.report.content import build_hospital, consortium_content
    from flaqum.report.data import load_wave, wave_paths

    study = load_study(Path(root) / "config" / "config.yaml", root=root)
    surveys = [s for s, spec in study.sources.items() if spec["kind"] == "survey"]
    res = load_wave(wave, wave_paths(root, wave, surveys))
    return build_hospital(res, study, hospital) if hospital else consortium_content(res, study)


# --- what the rules call --------------------------------------------------------------------


def render_hospital(
    study,
    wave: str,
    hospital: str,
    paths: dict,
    out_html,
    template,
    engine: str = "auto",
    out_pdf=None,
    results=None,
    km=None,
    cost: dict | None = None,
    tables=None,
) -> Path:
    """Load the wave (unless ``results`` is given), build the hospital's content from its
    confidential view, render it and scan it for other hospitals' identifiers. ``tables``:
    the wave's ``confidentiality.wave_tables`` of ``results`` (``render_batch``)."""
    from flaqum.report.confidentiality import forbidden_identifiers
    from flaqum.report.content import build_hospital
    from flaqum.report.data import load_wave

    res = results if results is not None else load_wave(wave, paths)

    def content():
        return build_hospital(res, study, hospital, tables)

    return render_report(
        template,
        content,
        out_html,
        {"hospital": hospital, "wave": wave},
        engine=engine,
        forbidden=forbidden_identifiers(res, hospital, study),
        out_pdf=out_pdf,
        km=km,
        cost=cost,
    )


def render_consortium(
    study,
    wave: str,
    paths: dict,
    out_html,
    template,
    engine: str = "auto",
    out_pdf=None,
    results=None,
) -> Path:
    from flaqum.report.content import consortium_content
    from flaqum.report.data import load_wave

    res = results if results is not None else load_wave(wave, paths)
    return render_report(
        template,
        lambda: consortium_content(res, study),
        out_html,
        {"wave": wave},
        engine=engine,
        out_pdf=out_pdf,
    )


def render_batch(
    study,
    wave: str,
    paths: dict,
    hospitals,
    out_dir,
    template,
    engine: str = "auto",
    pdf: bool = False,
    log=None,
    results=None,
    progress=None,
) -> list[Path]:
    """Render several hospitals' reports of one wave in one process: the wave is read once
    and, with the Jupyter engine, one kernel executes every render (its namespace reset in
    between). Each render still has its own folder and copy of the template, and each report
    is scanned before it is written. Writes ``<out_dir>/<hospital>.html`` (and ``.pdf``).
    The wave-level tables of the hospitals' views (``confidentiality.wave_tables``) are
    computed once for the batch.

    ``log`` gets one line per report with its wall time and CPU seconds (content, HTML, PDF);
    ``progress(i, n, hospital, seconds)`` is called after each report (the console line)."""
    import time

    from flaqum.report.confidentiality import wave_tables
    from flaqum.report.data import load_wave

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = choose_engine(engine)
    res = results if results is not None else load_wave(wave, paths)
    t = time.process_time()
    tables = wave_tables(res, study) if hospitals else None
    if log and tables is not None:
        log.info(f"{wave}: wave tables of the views: cpu {time.process_time() - t:.3f} s")
    km = (
        start_kernel(Path(tempfile.mkdtemp(prefix=".kernel.", dir=out_dir)))
        if engine == "jupyter" and hospitals
        else None
    )
    done = []
    try:
        for i, h in enumerate(hospitals, 1):
            t = time.perf_counter()
            cost = {}
            out = render_hospital(
                study,
                wave,
                h,
                paths,
                out_dir / f"{h}.html",
                template,
                engine=engine,
                results=res,
                km=km,
                out_pdf=out_dir / f"{h}.pdf" if pdf else None,
                cost=cost,
                tables=tables,
            )
            done.append(out)
            seconds = time.perf_counter() - t
            if log:
                parts = ", ".join(f"{k} {v:.3f}" for k, v in cost.items())
                log.info(
                    f"{wave}/{h}: {seconds:.2f} s -> {out}; cpu {sum(cost.values()):.3f} s "
                    f"({parts})"
                )
            if progress:
                progress(i, len(hospitals), h, seconds)
    finally:
        if km is not None:
            stop_kernel(km)
        for p in out_dir.glob(".kernel.*"):
            shutil.rmtree(p, ignore_errors=True)
    return done
