"""Body pages of the hospitals' A4 PDFs: the pages before the first appendix (issue 10: "the
body, before 'Every question', fits in at most 10 pages").

    python bench/pdf_pages.py reports/2025-2 reports/2024-1 [--limit 10]

A page belongs to the body when it comes before the first page whose text starts with
"Appendix A:" (``flaqum.report.pdf.body_pages``: each appendix starts a new page).
Prints one line per PDF (wave, hospital, body pages, all pages), then per wave the
distribution of body pages, and exits with status 1 when a body is over ``--limit``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from flaqum.report.pdf import BODY_PAGES, body_pages


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="reports/<wave> folders")
    ap.add_argument("--limit", type=int, default=BODY_PAGES)
    args = ap.parse_args(argv)
    over = []
    for folder in args.folders:
        counts = Counter()
        for pdf in sorted(folder.glob("*.pdf")):
            body, total = body_pages(pdf)
            counts[body] += 1
            print(f"{folder.name}\t{pdf.stem}\t{body}\t{total}")
            if body > args.limit:
                over.append(f"{folder.name}/{pdf.stem}")
        dist = ", ".join(f"{n} pages: {c}" for n, c in sorted(counts.items()))
        print(f"# {folder.name}: {sum(counts.values())} PDFs; body {dist}")
    if over:
        print(f"# over {args.limit} pages: {' '.join(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
