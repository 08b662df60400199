"""The SLURM and local profiles (workflow/profiles/), without a SLURM cluster.

The profiles are read the way Snakemake reads them (YAML through yte), and a dry run with the
SLURM profile on a small project plans every job with the profile's resources. The real
submission to a cluster is tested by tests/slurm/run_slurm_test.sh (root, Debian's slurm).
"""

from __future__ import annotations

import re
import shutil

import pytest
import yte
from conftest import ROOT, make_project, run_snakemake

PROFILES = ROOT / "workflow" / "profiles"


def measured_peaks_mb(rules) -> dict[str, float]:
    """Per rule, the largest peak memory (MB) of its jobs at 3,000 hospitals in the newest
    committed benchmark table (bench/results/<date>-all.md)."""
    table = sorted((ROOT / "bench" / "results").glob("*-all.md"))[-1]
    peaks: dict[str, float] = {}
    for line in table.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 4 or cells[0] != "3000" or "/" not in cells[1]:
            continue
        job = cells[1].split("/", 1)[1]
        rule = max((r for r in rules if job == r or job.startswith(r + "_")), key=len, default=None)
        if rule:
            peaks[rule] = max(peaks.get(rule, 0.0), float(cells[3]))
    return peaks


def load(name, monkeypatch=None, **env):
    """A profile as Snakemake sees it, with the given environment variables set."""
    if monkeypatch is not None:
        for var in ("SBATCH_ACCOUNT", "SBATCH_PARTITION"):
            monkeypatch.delenv(var, raising=False)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
    with open(PROFILES / name / "config.yaml") as f:
        return yte.process_yaml(f, require_use_yte=True)


def test_slurm_profile_names_the_executor_and_asks_for_enough(monkeypatch):
    p = load("slurm", monkeypatch)
    assert p["executor"] == "slurm"
    assert isinstance(p["jobs"], int) and p["jobs"] >= 1
    assert p["latency-wait"] >= 30
    assert set(p["default-resources"]) == {"mem_mb", "runtime"}
    peaks = measured_peaks_mb(p["set-resources"])
    measured = {"validate", "ingest", "score", "psychometrics", "multilevel", "hypothesis"}
    assert measured <= set(peaks)
    for rule, peak in peaks.items():
        assert p["set-resources"][rule]["mem_mb"] >= 1.5 * peak, (rule, peak)
        assert p["set-resources"][rule]["runtime"] >= 5, rule
    # cluster-specific values are not in the pipeline's profile
    flat = str(p)
    assert "slurm_account" not in flat and "slurm_partition" not in flat


def test_account_and_partition_come_from_sbatch_variables(monkeypatch):
    p = load("slurm", monkeypatch, SBATCH_ACCOUNT="0042", SBATCH_PARTITION="batch")
    assert p["default-resources"] == {
        "mem_mb": 2000,
        "runtime": 30,
        "slurm_account": "0042",  # a string: an account id like 0042 keeps its zeros
        "slurm_partition": "batch",
    }


def test_local_profile_forces_nothing_on_a_plain_run(monkeypatch):
    local, slurm = load("default", monkeypatch), load("slurm", monkeypatch)
    assert "executor" not in local
    forbidden = {"use-conda", "software-deployment-method", "sdm", "use-apptainer"}
    assert not forbidden & set(local)
    assert local["keep-going"] is False and local["rerun-incomplete"] is True
    # one set of numbers: the local profile carries the same resources as the SLURM one
    assert local["set-resources"] == slurm["set-resources"]
    assert local["default-resources"] == {
        k: v for k, v in slurm["default-resources"].items() if k in ("mem_mb", "runtime")
    }


def planned_jobs(out):
    """{rule: [resources line of each job]} from a dry run's output."""
    jobs = {}
    current = None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if m:
            current = m.group(1)
            jobs.setdefault(current, [])
        elif current and line.strip().startswith("resources:"):
            jobs[current].append(line.strip())
    return jobs


@pytest.fixture(scope="module")
def slurm_dry_run(tmp_path_factory, small_consortium):
    raw_src, _ = small_consortium
    proj = make_project(tmp_path_factory.mktemp("slurm"), raw_src, waves=["2024-1"])
    # validation is a checkpoint: a dry run plans it, and the wave's other jobs once it passed
    first = run_snakemake(proj, "-n", "--workflow-profile", "workflow/profiles/slurm")
    run_snakemake(proj, "results/2024-1/validation.json")
    rest = run_snakemake(proj, "-n", "--workflow-profile", "workflow/profiles/slurm")
    return proj, first.stdout + first.stderr + rest.stdout + rest.stderr


def test_dry_run_with_the_slurm_profile_plans_submissions(slurm_dry_run, monkeypatch):
    _, out = slurm_dry_run
    assert "workflow specific profile workflow/profiles/slurm" in out
    assert "This was a dry-run" in out
    jobs = planned_jobs(out)
    assert {"validate", "ingest", "score", "all"} <= set(jobs)
    profile = load("slurm", monkeypatch)
    for rule in ("validate", "ingest", "score"):
        want = profile["set-resources"][rule]
        for res in jobs[rule]:
            assert f"mem_mb={want['mem_mb']}," in res and f"runtime={want['runtime']}" in res
    # rules the profile does not name get its default resources
    for rule in set(jobs) - set(profile["set-resources"]) - {"all"}:
        for res in jobs[rule]:
            assert "mem_mb=2000," in res and "runtime=30" in res, (rule, res)


def test_unknown_rule_names_in_the_profile_do_not_break_a_run(tmp_path, slurm_dry_run):
    """The profile names rules the DAG may not have (yet): they must be ignored."""
    proj, _ = slurm_dry_run
    prof = tmp_path / "profile"
    shutil.copytree(PROFILES / "slurm", prof)
    text = (prof / "config.yaml").read_text()
    text = text.replace("set-resources:\n", "set-resources:\n  no_such_rule: {mem_mb: 1}\n")
    text = text.replace("set-threads:\n", "set-threads:\n  no_such_rule: 3\n")
    assert text.count("no_such_rule") == 2
    (prof / "config.yaml").write_text(text)
    res = run_snakemake(proj, "-n", "--workflow-profile", str(prof))
    assert "This was a dry-run" in res.stdout + res.stderr
    assert "no_such_rule" not in res.stdout + res.stderr


def test_snakemake_reads_the_slurm_executor_from_the_profile(slurm_dry_run, monkeypatch, tmp_path):
    """What Snakemake's own command line parser makes of the profile, and how a user's profile
    layers with it (the README relies on this order: command line > workflow profile >
    --profile, key by key)."""
    from snakemake.cli import parse_args

    proj, _ = slurm_dry_run
    monkeypatch.chdir(proj)
    monkeypatch.delenv("SBATCH_ACCOUNT", raising=False)
    monkeypatch.delenv("SBATCH_PARTITION", raising=False)
    _, args = parse_args(["-n", "--workflow-profile", "workflow/profiles/slurm"])
    assert args.executor == "slurm" and args.jobs == 100
    want = load("slurm", monkeypatch)["set-resources"]["validate"]["mem_mb"]
    assert str(args.set_resources["validate"]["mem_mb"]) == f'Resource("mem_mb", {want})'

    user = tmp_path / "mycluster"
    user.mkdir()
    (user / "config.yaml").write_text("slurm-qos: normal\njobs: 7\n")
    _, args = parse_args(
        ["-n", "--workflow-profile", "workflow/profiles/slurm", "--profile", str(user)]
    )
    assert args.slurm_qos == "normal"  # a key only the user's profile sets is used
    assert args.jobs == 100  # for a key set in both, the workflow profile wins
    _, args = parse_args(
        ["-n", "--workflow-profile", "workflow/profiles/slurm", "--profile", str(user), "-j", "5"]
    )
    assert args.jobs == 5  # and the command line wins over both
