"""Command line: ``flaqum demo``, ``flaqum simulate``, ``flaqum validate``.

The pipeline itself runs through Snakemake (see README.md); these commands are the data
manager's tools around it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flaqum.errors import FlaqumError


def _demo(args) -> int:
    from flaqum.config import load_study
    from flaqum.simulate import generate_consortium

    study = load_study(args.config)
    out = Path(args.out or study.config["raw_dir"])
    demo = study.config["demo"]  # defaults: the config schema
    waves = demo["waves"]
    existing = [w for w in waves if (out / w).exists()]
    if existing and not args.force:
        print(
            f"{out}: demo waves {existing} already there; nothing written "
            "(use --force to write them again)."
        )
        return 0
    truth = generate_consortium(out, study, demo["hospitals"], waves, demo["seed"])
    return _written(out, truth)


def _simulate(args) -> int:
    from flaqum.config import load_study
    from flaqum.simulate import generate_consortium

    study = load_study(args.config)
    truth = generate_consortium(args.out, study, args.hospitals, args.waves, args.seed, args.format)
    return _written(Path(args.out), truth)


def _written(out: Path, truth: dict) -> int:
    """Say what a synthetic consortium holds and where its true parameters are."""
    for wave, wt in truth["waves"].items():
        print(
            f"{out / wave}: {len(wt['hospitals_in_wave'])} hospitals, {wt['n_staff']} "
            f"professionals, {wt['n_patients']} patients and kin"
        )
    print(f"true parameters: {out / 'ground_truth.json'}")
    return 0


def _validate(args) -> int:
    from flaqum.config import load_study
    from flaqum.validate import validate_wave

    config = Path(args.config).resolve()
    # a study folder holds config/config.yaml and config/instruments/: read the codebooks
    # beside the config, wherever the command is run from
    root = config.parents[1] if config.parent.name == "config" else Path(".")
    study = load_study(config, root=root)
    result = validate_wave(study, args.wave_dir)
    if args.json:
        result.write(args.json)
    print(result.text(limit=args.limit, json_path=args.json))
    return 0 if result.status == "pass" else 1


def main(argv=None) -> int:
    from flaqum.simulate import DEMO

    ap = argparse.ArgumentParser(prog="flaqum", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--config", default="config/config.yaml", help="study config (default: %(default)s)"
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="write the bundled synthetic consortium into the raw folder")
    d.add_argument("--out", help="folder for the wave folders (default: raw_dir of the config)")
    d.add_argument("--force", action="store_true", help="write the demo waves again")
    d.set_defaults(func=_demo)
    s = sub.add_parser(
        "simulate",
        help="write a synthetic consortium of any size (deterministic per seed)",
        description="Write <out>/<wave>/ folders and <out>/ground_truth.json; defaults: the "
        "demo's (the config schema's demo section).",
    )
    s.add_argument("out", help="folder to write <wave>/ folders and ground_truth.json into")
    s.add_argument("--hospitals", type=int, default=DEMO["hospitals"])
    s.add_argument("--waves", nargs="+", default=DEMO["waves"])
    s.add_argument("--seed", type=int, default=DEMO["seed"])
    s.add_argument("--format", choices=["sav", "csv"], default="sav")
    s.set_defaults(func=_simulate)
    v = sub.add_parser("validate", help="check one wave folder and print the findings")
    v.add_argument("wave_dir")
    v.add_argument("--json", help="also write the findings as JSON here")
    v.add_argument(
        "--limit", type=int, default=5, help="findings to print per rule (default: %(default)s)"
    )
    v.set_defaults(func=_validate)
    args = ap.parse_args(argv)
    try:
        return args.func(args)
    except FlaqumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
