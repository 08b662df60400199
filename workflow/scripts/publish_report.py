"""Publish one hospital's report(s) out of its render batch, atomically (a .part file, then
os.replace). Python, no shell: the hospital id never reaches a command line. Kept free of
heavy imports: a wave has one such job per hospital."""

import os
import shutil
from pathlib import Path

sm = snakemake  # noqa: F821
mask = os.umask(0o022)
os.umask(mask)
for dest in map(Path, sm.output):
    part = dest.with_name(f".{dest.name}.part")
    shutil.copyfile(Path(sm.input.batch) / f"{sm.wildcards.hospital}{dest.suffix}", part)
    os.chmod(part, 0o666 & ~mask)
    os.replace(part, dest)
