"""Screenshots of rendered reports with headless Chromium, to look at them as a reader would.

    python bench/screenshots.py reports/2025-2/H01.html [more.html ...] --out bench/out/shots

Writes <name>.png (the first 3000 px, or --height) for each report. Needs chromium on PATH
(Debian: apt install chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def screenshot(html: Path, png: Path, width: int = 1200, height: int = 3000) -> Path:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("chrome")
    if exe is None:
        raise SystemExit("chromium not found on PATH")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--screenshot={png.resolve()}",
                f"--window-size={width},{height}",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return png


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench/out/shots"))
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args(argv)
    for h in args.html:
        png = screenshot(h, args.out / f"{h.parent.name}_{h.stem}.png", args.width, args.height)
        print(png)


if __name__ == "__main__":
    main()
