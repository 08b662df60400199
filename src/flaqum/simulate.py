"""The synthetic consortium: a realistic Triangle Study drawn from stated true parameters.

``generate_consortium(out_dir, n_hospitals, waves, seed)`` writes one folder per wave in the
layout of docs/study-folder.md (SPSS ``.sav`` surveys with variable labels, value labels and
user-missing codes; CSV registers, maturity and outcomes) and ``ground_truth.json`` beside them.

The data-generating model, in the metric of the scale score (mean of the scale's items):

    T_i  = mu + B_h + V_hj + W_i                  respondent i in team j of hospital h
    B_h  = gamma * (M_h - mean(M)) + U_h          M_h: the hospital's observed mm_total
    x_ik = clip(round(T_i + lambda_k-weighted deviation + d_k + e_ik), min, max)

with U_h ~ N(0, var_hospital), V_hj ~ N(0, var_team), W_i ~ N(0, var_person),
e_ik ~ N(0, item_sd^2); reverse-keyed items are stored as (min + max - x). The stated
residual variance of the score adds the item noise and rounding averaged over the items:
var_residual = var_person + (item_sd^2 + 1/12) / k. Clipping at the scale ends is kept rare by
the choice of mu. Outcomes follow from the true (not observed) team and hospital means:

    incidents_tj ~ NegBin(mean = patient_days_tj / 1000 * exp(a + beta_ps * (T_hj - mu_ps)))
    deaths_h     ~ Poisson(expected_deaths_h * exp(beta_tc * (T_h - mu_tc)))
    qs_pat: B_h  = delta * (T_h(qs_prof) - mu_qs_prof) + U_h

Between waves, hospital effects persist with a stated change in some hospitals; team effects
persist with correlation ``team_persistence``; respondents are new (anonymous surveys).
Everything is vectorised: 3,000 hospitals (1.5 million respondents) take seconds.

``simulate_nested`` draws scores from the nested random-intercept model alone
(score = intercept + U_h + V_hj + e_i, the model of :mod:`flaqum.multilevel`), without items,
registers or files: for the multilevel tests, the lme4 fixtures
(tests/fixtures/r/make_lme4_datasets.py) and bench/multilevel_vs_lme4.py.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from flaqum.config import Study, load_study, with_defaults

TEAM_TYPES = {
    "ward": [
        "Cardiology",
        "Geriatrics",
        "Internal medicine",
        "Surgery",
        "Orthopaedics",
        "Neurology",
        "Pulmonology",
        "Gastroenterology",
        "Oncology",
        "Nephrology",
        "Maternity",
        "Paediatrics",
        "Psychiatry",
        "Rehabilitation",
        "Stroke unit",
        "Urology",
        "Palliative care",
        "Day hospital",
        "Cardiac surgery",
        "Vascular surgery",
        "Endocrinology",
        "Dermatology",
        "Haematology",
        "Infectious diseases",
        "Sleep lab",
        "Dialysis",
        "Burns unit",
        "Memory clinic",
    ],
    "critical": [
        "Intensive care",
        "Emergency department",
        "Operating theatre",
        "Recovery room",
        "Neonatal intensive care",
        "Coronary care",
    ],
    "support": [
        "Pharmacy",
        "Laboratory",
        "Radiology",
        "Sterilisation",
        "Quality office",
        "Patient transport",
    ],
}
PROFESSIONS = ["nurse", "physician", "allied health", "support staff"]
PROFESSION_P = [0.55, 0.17, 0.16, 0.12]
HOSPITAL_TYPES = ["general", "teaching", "university", "specialised"]
HOSPITAL_TYPE_P = [0.6, 0.25, 0.1, 0.05]
REGIONS = ["Antwerp", "Limburg", "East Flanders", "Flemish Brabant", "West Flanders", "Brussels"]
NAME_PARTS = (
    ["AZ", "ZNA", "GZA", "UZ", "Jan Yperman", "Regional Hospital", "Clinic"],
    [
        "Sint-Aurelia",
        "Sint-Brecht",
        "Heilig Kruis",
        "Maria Middelares",
        "Zeelinde",
        "Vesalius",
        "Delta Noord",
        "Klina",
        "Rivierenland",
        "Groeninge",
        "Voorkempen",
        "Damiaan",
        "Alma",
        "Monica",
        "Nikolaas",
        "Herentals",
        "Lier",
        "Jozef",
        "Elisabeth",
        "Lucas",
        "Vincentius",
        "Dijle",
        "Kempen",
        "Oudenaarde",
        "Maas",
        "Lommel",
        "Tienen",
        "Sint-Trudo",
        "Heide",
        "Bree",
    ],
)

# Stated true parameters (score metric). A block is a set of scales generated from one latent.
TRUTH = {
    "psych_safety": {
        "mu": 4.8,
        "var_hospital": 0.04,
        "var_team": 0.16,
        "var_person": 0.55,
        "item_sd": 0.9,
        "gamma_maturity": 0.35,
        "wave_sd_change": 0.0,
    },
    "team_collab": {
        "mu": 3.75,
        "var_hospital": 0.02,
        "var_team": 0.08,
        "var_person": 0.30,
        "item_sd": 0.6,
        "gamma_maturity": 0.20,
    },
    "qs_prof": {
        "mu": 3.6,
        "var_hospital": 0.05,
        "var_team": 0.05,
        "var_person": 0.30,
        "item_sd": 0.65,
        "gamma_maturity": 0.25,
        "factor_sd": 0.15,
    },
    "qs_prof_global": {
        "mu": 7.2,
        "var_hospital": 0.20,
        "var_team": 0.15,
        "var_person": 1.6,
        "item_sd": 0.9,
        "gamma_maturity": 0.6,
    },
    "qs_pat": {
        "mu": 3.95,
        "var_hospital": 0.03,
        "var_team": 0.02,
        "var_person": 0.28,
        "item_sd": 0.6,
        "delta_prof": 0.5,
        "factor_sd": 0.15,
    },
    "qs_pat_global": {
        "mu": 8.0,
        "var_hospital": 0.15,
        "var_team": 0.05,
        "var_person": 1.4,
        "item_sd": 0.8,
    },
    "maturity": {
        "mu": 2.7,
        "sd_hospital": 0.55,
        "sd_driver": 0.25,
        "sd_process": 0.45,
        "growth_mean": 0.25,
        "growth_sd": 0.15,
    },
    "outcomes": {
        "incident_rate_per_1000_days": 6.0,
        "beta_psych_safety_incidents": 0.40,
        "nb_alpha": 0.15,
        "beta_team_collab_mortality": -0.50,
        "readmission_p": 0.08,
    },
    "profession_effect": {"psych_safety": {"physician": 0.25, "support staff": -0.15}},
    "team_persistence": 0.8,
    "changed_hospitals": {"n_up": 3, "n_down": 2, "size": 0.45},
    "missingness": {"item_missing_p": 0.03, "not_applicable_p": 0.015, "straightliner_p": 0.01},
    "staff_per_hospital": 640,
    "patients_per_hospital": 330,
}


def _names(rng, n):
    out, seen = [], set()
    while len(out) < n:
        name = f"{rng.choice(NAME_PARTS[0])} {rng.choice(NAME_PARTS[1])}"
        if name in seen:
            name = f"{name} {len(out) + 1}"
        seen.add(name)
        out.append(name)
    return out


def make_registers(n_hospitals: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hospitals (type, beds, region) and their teams: 8-40 teams each, ids repeat across them."""
    width = max(2, len(str(n_hospitals)))
    hosp_ids = [f"H{i:0{width}d}" for i in range(1, n_hospitals + 1)]
    htype = rng.choice(HOSPITAL_TYPES, size=n_hospitals, p=HOSPITAL_TYPE_P)
    base_beds = {"general": 350, "teaching": 650, "university": 1100, "specialised": 180}
    beds = np.array([int(base_beds[t] * rng.lognormal(0, 0.3)) for t in htype])
    orgs = pd.DataFrame(
        {
            "hospital_id": hosp_ids,
            "hospital_name": _names(rng, n_hospitals),
            "hospital_type": htype,
            "beds": beds,
            "region": rng.choice(REGIONS, size=n_hospitals),
            "network": [f"Network {chr(65 + k)}" for k in rng.integers(0, 8, size=n_hospitals)],
        }
    )
    n_teams = np.clip(
        np.round(14 + 30 * (beds - 250) / 900 + rng.normal(0, 5, n_hospitals)), 8, 40
    ).astype(int)
    all_names = [(kind, name) for kind, names in TEAM_TYPES.items() for name in names]
    rows = []
    for h, k in zip(hosp_ids, n_teams, strict=True):
        pick = rng.permutation(len(all_names))[:k]
        for j, idx in enumerate(sorted(pick), start=1):
            kind, name = all_names[idx]
            rows.append((f"T{j:02d}", h, name, kind))
    teams = pd.DataFrame(rows, columns=["team_id", "hospital_id", "team_name", "team_type"])
    return orgs, teams


def _team_sizes(teams: pd.DataFrame, per_hospital: float, beds: pd.Series, rng, lo=2, hi=40):
    """Respondents per team: skewed sizes from lo to hi, scaled to the hospital's size."""
    raw = rng.lognormal(0, 0.9, size=len(teams))
    hosp_beds = teams["hospital_id"].map(beds).to_numpy(float)
    share = (
        raw / pd.Series(raw).groupby(teams["hospital_id"].to_numpy()).transform("sum").to_numpy()
    )
    target = per_hospital * (hosp_beds / np.median(beds.to_numpy())) ** 0.5
    return np.clip(np.round(share * target), lo, hi).astype(int)


def _items_for(study: Study, instrument: str) -> tuple[list[str], set[str], int, int, dict]:
    inst = study.instruments[instrument]
    return list(inst.items), inst.reverse_items, inst.rmin, inst.rmax, inst.raw


def item_parameters(instrument: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """An instrument's item loadings (mean 1) and offsets (mean 0).

    A property of the instrument, not of a wave or a seed: drawn from a generator keyed by the
    instrument id, so every wave (and every consortium) measures with the same items and the
    instrument is invariant across waves by construction.
    """
    irng = np.random.default_rng(zlib.crc32(instrument.encode()))
    loadings = irng.uniform(0.75, 1.25, size=k)
    loadings /= loadings.mean()
    offsets = irng.normal(0, 0.2, size=k)
    offsets -= offsets.mean()
    return loadings, offsets


def _draw_items(
    T,
    items,
    reverse,
    rmin,
    rmax,
    item_sd,
    rng,
    factor_of=None,
    factor_dev=None,
    mu=None,
    instrument="",
):
    """Item answers around each respondent's true score T (score metric): item i is
    mu + loading_i (T - mu) + offset_i + e, with mu the scale's stated grand mean."""
    n, k = len(T), len(items)
    loadings, offsets = item_parameters(instrument, k)
    mu = T.mean() if mu is None else mu
    lat = mu + np.outer(T - mu, loadings) + offsets
    if factor_of is not None:
        lat = lat + factor_dev[:, factor_of]
    lat = lat + rng.normal(0, item_sd, size=(n, k))
    x = np.clip(np.rint(lat), rmin, rmax)
    for c, item in enumerate(items):
        if item in reverse:
            x[:, c] = rmin + rmax - x[:, c]
    return pd.DataFrame(x, columns=items), loadings


def _apply_missingness(df: pd.DataFrame, items, codes, miss, rng, straight: np.ndarray, rmin, rmax):
    x = df[items].to_numpy(float, copy=True)
    n, k = x.shape
    # straight-liners tick one answer for every item, reverse-keyed or not
    if straight.any():
        x[straight, :] = rng.integers(rmin, rmax + 1, size=straight.sum())[:, None]
    u = rng.random((n, k))
    na_code, no_answer = (codes + [None, None])[:2]
    if na_code is not None:
        x[u < miss["not_applicable_p"]] = na_code
    drop = (u >= miss["not_applicable_p"]) & (u < miss["not_applicable_p"] + miss["item_missing_p"])
    if no_answer is not None:
        # half of the skipped answers are coded "no answer", half left system-missing
        coded = drop & (rng.random((n, k)) < 0.5)
        x[coded] = no_answer
        drop &= ~coded
    x[drop] = np.nan
    df[items] = x
    return df


def _maturity(study: Study, hospitals: pd.DataFrame, state: dict, wave_index: int, rng):
    items, _, rmin, rmax, raw = _items_for(study, "maturity_matrix")
    t = TRUTH["maturity"]
    n = len(hospitals)
    if wave_index == 0 or "mm_latent" not in state:
        state["mm_latent"] = rng.normal(0, t["sd_hospital"], n)
        state["mm_driver"] = rng.normal(0, t["sd_driver"], (n, 6))
        state["mm_process"] = rng.normal(0, t["sd_process"], (n, len(items)))
    else:
        state["mm_latent"] = state["mm_latent"] + rng.normal(t["growth_mean"], t["growth_sd"], n)
    scales = study.instruments["maturity_matrix"].scales
    drivers = [s for s in scales.values() if s.level == "driver"]
    driver_of = np.zeros(len(items), dtype=int)
    for d, s in enumerate(drivers):
        for it in s.items:
            driver_of[items.index(it)] = d
    lat = (
        t["mu"]
        + state["mm_latent"][:, None]
        + state["mm_driver"][:, driver_of]
        + state["mm_process"]
        + rng.normal(0, 0.3, (n, len(items)))
    )
    x = np.clip(np.rint(lat), rmin, rmax)
    df = pd.DataFrame(x.astype(int), columns=items)
    df.insert(0, "hospital_id", hospitals["hospital_id"].to_numpy())
    mm_total = x.mean(axis=1)
    return df, mm_total


def _block(
    study, instrument_ids, n_resp, hosp_idx, team_idx, B_h, V_t, pars, rng, frames, shift=None
):
    """Generate one latent block of items for all respondents; returns the true scores."""
    W = rng.normal(0, np.sqrt(pars["var_person"]), n_resp)
    T = pars["mu"] + B_h[hosp_idx] + V_t[team_idx] + W
    if shift is not None:
        T = T + shift
    for inst_id in instrument_ids:
        items, reverse, rmin, rmax, raw = _items_for(study, inst_id)
        factor_of = factor_dev = None
        if raw.get("factor_model"):
            fscales = raw["factor_model"]
            factor_of = np.zeros(len(items), dtype=int)
            for f, sid in enumerate(fscales):
                for it in raw["scales"][sid]["items"]:
                    factor_of[items.index(it)] = f
            factor_dev = rng.normal(0, pars.get("factor_sd", 0.0), (n_resp, len(fscales)))
        df, _ = _draw_items(
            T,
            items,
            reverse,
            rmin,
            rmax,
            pars["item_sd"],
            rng,
            factor_of,
            factor_dev,
            mu=pars["mu"],
            instrument=inst_id,
        )
        frames.append((inst_id, df))
    return T


def _truth_row(pars, k_items):
    return {
        "mu": pars["mu"],
        "var_hospital_given_predictors": pars["var_hospital"],
        "var_team": pars["var_team"],
        "var_person": pars["var_person"],
        "var_residual_approx": pars["var_person"] + (pars["item_sd"] ** 2 + 1 / 12) / k_items,
        "n_items": k_items,
    }


def generate_wave(study: Study, orgs, teams, state, wave_index, rng, scale=1.0):
    """All sources of one wave as DataFrames, plus the wave's ground truth."""
    n_h = len(orgs)
    hosp_pos = {h: i for i, h in enumerate(orgs["hospital_id"])}
    beds = orgs.set_index("hospital_id")["beds"]
    truth: dict = {"scales": {}, "hospitals": {}, "teams": {}}

    mat, mm_total = _maturity(study, orgs, state, wave_index, rng)
    mm_c = mm_total - mm_total.mean()
    truth["maturity_mean"] = float(mm_total.mean())

    # persistent random effects
    if "U" not in state:
        state["U"] = {
            b: rng.standard_normal(n_h)
            for b in TRUTH
            if isinstance(TRUTH[b], dict) and "var_hospital" in TRUTH[b]
        }
        state["V"] = {b: rng.standard_normal(len(teams)) for b in state["U"]}
        ch = TRUTH["changed_hospitals"]
        order = rng.permutation(n_h)
        change = np.zeros(n_h)
        change[order[: ch["n_up"]]] = ch["size"]
        change[order[ch["n_up"] : ch["n_up"] + ch["n_down"]]] = -ch["size"]
        state["change"] = change
    else:
        rho = TRUTH["team_persistence"]
        for b in state["V"]:
            state["V"][b] = rho * state["V"][b] + np.sqrt(1 - rho**2) * rng.standard_normal(
                len(teams)
            )
    change = state["change"] * (wave_index > 0)
    truth["changed_hospitals"] = {
        h: float(c) for h, c in zip(orgs["hospital_id"], change, strict=True) if c != 0
    }

    team_h = teams["hospital_id"].map(hosp_pos).to_numpy()
    frames_staff: list = []
    frames_pat: list = []

    # --- professionals
    n_staff_team = _team_sizes(teams, TRUTH["staff_per_hospital"] * scale, beds, rng)
    s_team = np.repeat(np.arange(len(teams)), n_staff_team)
    s_hosp = team_h[s_team]
    n_s = len(s_team)
    profession = rng.choice(PROFESSIONS, size=n_s, p=PROFESSION_P)
    true_team_means: dict = {}
    true_hosp_means: dict = {}
    for block, insts in [
        ("psych_safety", ["psychological_safety"]),
        ("team_collab", ["team_collaboration"]),
        ("qs_prof", ["quickscan_professionals"]),
        ("qs_prof_global", ["quickscan_professionals_global"]),
    ]:
        p = TRUTH[block]
        B = (
            p.get("gamma_maturity", 0) * mm_c
            + np.sqrt(p["var_hospital"]) * state["U"][block]
            + change
        )
        V = np.sqrt(p["var_team"]) * state["V"][block]
        prof_eff = np.zeros(n_s)
        for prof, eff in TRUTH["profession_effect"].get(block, {}).items():
            prof_eff[profession == prof] = eff
        # the profession effect (case mix) shifts the person part, centred on the consortium
        shift = prof_eff - prof_eff.mean() if prof_eff.any() else None
        _block(study, insts, n_s, s_hosp, s_team, B, V, p, rng, frames_staff, shift)
        true_team_means[block] = p["mu"] + B[team_h] + V
        true_hosp_means[block] = p["mu"] + B
        k = len(study.instruments[insts[0]].items)
        truth["scales"][block] = {
            **_truth_row(p, k),
            "gamma_maturity": p.get("gamma_maturity", 0.0),
            "var_hospital_marginal": float(
                p["var_hospital"] + p.get("gamma_maturity", 0) ** 2 * mm_c.var()
            ),
        }

    # --- patients and kin (clinical teams only)
    clinical = (teams["team_type"] != "support").to_numpy()
    n_pat_team = _team_sizes(teams, TRUTH["patients_per_hospital"] * scale, beds, rng, lo=0, hi=40)
    n_pat_team[~clinical] = 0
    p_team = np.repeat(np.arange(len(teams)), n_pat_team)
    p_hosp = team_h[p_team]
    n_p = len(p_team)
    for block, insts in [
        ("qs_pat", ["quickscan_patients"]),
        ("qs_pat_global", ["quickscan_patients_global"]),
    ]:
        p = TRUTH[block]
        link = 0.0
        if "delta_prof" in p:
            link = p["delta_prof"] * (true_hosp_means["qs_prof"] - TRUTH["qs_prof"]["mu"])
        B = link + np.sqrt(p["var_hospital"]) * state["U"][block] + change
        V = np.sqrt(p["var_team"]) * state["V"][block]
        _block(study, insts, n_p, p_hosp, p_team, B, V, p, rng, frames_pat)
        true_team_means[block] = p["mu"] + B[team_h] + V
        true_hosp_means[block] = p["mu"] + B
        k = len(study.instruments[insts[0]].items)
        truth["scales"][block] = {**_truth_row(p, k), "delta_prof": p.get("delta_prof", 0.0)}

    miss = TRUTH["missingness"]

    def assemble(frames, n, prefix, team_idx, hosp_idx, extra):
        straight = rng.random(n) < miss["straightliner_p"]
        out = pd.DataFrame(
            {
                "respondent_id": [f"{prefix}{wave_index + 1}{i:07d}" for i in range(1, n + 1)],
                "hospital_id": orgs["hospital_id"].to_numpy()[hosp_idx],
                "team_id": teams["team_id"].to_numpy()[team_idx],
            }
        )
        for col, val in extra.items():
            out[col] = val
        for inst_id, df in frames:
            inst = study.instruments[inst_id]
            df = _apply_missingness(
                df.copy(),
                list(df.columns),
                inst.missing_codes,
                miss,
                rng,
                straight,
                inst.rmin,
                inst.rmax,
            )
            out = pd.concat([out, df], axis=1)
        return out, straight

    staff, s_straight = assemble(
        frames_staff,
        n_s,
        "S",
        s_team,
        s_hosp,
        {
            "profession": profession,
            "tenure_years": np.round(rng.gamma(2.0, 5.0, n_s), 1),
        },
    )
    patients, p_straight = assemble(
        frames_pat,
        n_p,
        "P",
        p_team,
        p_hosp,
        {
            "respondent_type": rng.choice(["patient", "kin"], size=n_p, p=[0.75, 0.25]),
            "age_group": rng.choice(
                ["18-39", "40-64", "65-79", "80+"], size=n_p, p=[0.2, 0.35, 0.3, 0.15]
            ),
        },
    )

    # --- outcomes
    o = TRUTH["outcomes"]
    tdays = np.round(rng.uniform(2000, 12000, len(teams)) * clinical).astype(int)
    lam = (
        tdays
        / 1000
        * o["incident_rate_per_1000_days"]
        * np.exp(
            o["beta_psych_safety_incidents"]
            * (true_team_means["psych_safety"] - TRUTH["psych_safety"]["mu"])
        )
    )
    r = 1 / o["nb_alpha"]
    incidents = rng.negative_binomial(r, r / (r + lam))
    incidents[~clinical] = 0
    team_outcomes = pd.DataFrame(
        {
            "team_id": teams["team_id"],
            "hospital_id": teams["hospital_id"],
            "patient_days": tdays,
            "incidents_reported": incidents,
        }
    )
    team_outcomes = team_outcomes[clinical].reset_index(drop=True)
    admissions = np.round(orgs["beds"].to_numpy() * rng.uniform(35, 50, n_h)).astype(int)
    expected = np.round(admissions * rng.uniform(0.015, 0.03, n_h), 1)
    deaths = rng.poisson(
        expected
        * np.exp(
            o["beta_team_collab_mortality"]
            * (true_hosp_means["team_collab"] - TRUTH["team_collab"]["mu"])
        )
    )
    pdays = (
        team_outcomes.groupby("hospital_id")["patient_days"]
        .sum()
        .reindex(orgs["hospital_id"])
        .fillna(0)
    )
    hinc = (
        team_outcomes.groupby("hospital_id")["incidents_reported"]
        .sum()
        .reindex(orgs["hospital_id"])
        .fillna(0)
    )
    outcomes = pd.DataFrame(
        {
            "hospital_id": orgs["hospital_id"],
            "admissions": admissions,
            "deaths": deaths,
            "expected_deaths": expected,
            "readmissions": rng.binomial(admissions, o["readmission_p"]),
            "incidents_reported": hinc.to_numpy().astype(int),
            "patient_days": pdays.to_numpy().astype(int),
            "bed_occupancy_pct": np.round(rng.normal(82, 6, n_h), 1),
            "operating_margin_pct": np.round(rng.normal(1.0, 2.0, n_h), 2),
        }
    )
    truth["outcomes"] = dict(o)
    truth["straightliners"] = {"staff": int(s_straight.sum()), "patients": int(p_straight.sum())}
    truth["hospitals"] = {
        b: dict(zip(orgs["hospital_id"], np.round(v, 6).tolist(), strict=True))
        for b, v in true_hosp_means.items()
    }
    truth["mm_total"] = dict(zip(orgs["hospital_id"], np.round(mm_total, 6).tolist(), strict=True))
    team_keys = (teams["hospital_id"].astype(str) + ":" + teams["team_id"].astype(str)).tolist()
    truth["teams"] = {  # true team means (latent metric), keyed "hospital_id:team_id"
        b: dict(zip(team_keys, np.round(v, 6).tolist(), strict=True))
        for b, v in true_team_means.items()
    }
    return (
        {
            "staff": staff,
            "patients": patients,
            "maturity": mat,
            "outcomes": outcomes,
            "team_outcomes": team_outcomes,
        },
        truth,
        true_team_means,
    )


# --------------------------------------------------------------------------------------------
# The nested random-intercept model alone (tests, benchmark, fixtures)
# --------------------------------------------------------------------------------------------


def simulate_nested(
    n_hospitals: int = 40,
    teams_per_hospital: tuple[int, int] = (3, 25),
    team_size: tuple[int, int] = (2, 40),
    var_hospital: float = 0.05,
    var_team: float = 0.15,
    var_residual: float = 0.8,
    intercept: float = 5.0,
    seed: int = 1,
) -> pd.DataFrame:
    """Scores of respondents in teams in hospitals from the nested random-intercept model.

    Team counts and sizes are uniform on the inclusive ranges; team ids are "T01", "T02", ...
    in every hospital (so they repeat across hospitals), hospital ids "H001", ... (strings).
    """
    rng = np.random.default_rng(seed)
    k = rng.integers(teams_per_hospital[0], teams_per_hospital[1] + 1, n_hospitals)
    h_of_t = np.repeat(np.arange(n_hospitals), k)
    t_in_h = np.concatenate([np.arange(1, m + 1) for m in k])
    sizes = rng.integers(team_size[0], team_size[1] + 1, len(h_of_t))
    b = rng.normal(0.0, np.sqrt(var_hospital), n_hospitals)
    u = rng.normal(0.0, np.sqrt(var_team), len(h_of_t))
    t_row = np.repeat(np.arange(len(h_of_t)), sizes)
    h_row = h_of_t[t_row]
    yv = intercept + b[h_row] + u[t_row] + rng.normal(0.0, np.sqrt(var_residual), len(t_row))
    width = max(2, len(str(int(k.max()))))
    return pd.DataFrame(
        {
            "hospital_id": np.char.add("H", np.char.zfill((h_row + 1).astype(str), 3)),
            "team_id": np.char.add("T", np.char.zfill(t_in_h[t_row].astype(str), width)),
            "score": yv,
        }
    )


def _spss_meta(study: Study, source: str, df: pd.DataFrame):
    labels = {
        "respondent_id": "Respondent id",
        "hospital_id": "Hospital id",
        "team_id": "Team id",
        "profession": "Profession",
        "tenure_years": "Years in this hospital",
        "respondent_type": "Patient or kin",
        "age_group": "Age group",
    }
    value_labels, missing = {}, {}
    for inst in study.instruments_for(source):
        resp = inst.response
        vl = {float(k): v for k, v in (resp.get("labels") or {}).items()}
        codes = inst.missing_codes
        names = ["not applicable", "no answer"] if len(codes) >= 2 else ["no answer"]
        for c, name in zip(codes, names, strict=False):
            vl[float(c)] = name.capitalize()
        for item, text in inst.items.items():
            if item in df.columns:
                labels[item] = text[:250]
                value_labels[item] = vl
                if codes:
                    missing[item] = [float(c) for c in codes[:3]]
    return labels, value_labels, missing


#: Where an SPSS system file's header keeps its creation date ("dd Mmm yy") and time
#: ("hh:mm:ss"): after the record type, product name, layout code, case size, compression,
#: weight index, case count and bias (4 + 60 + 4 * 5 + 8 bytes).
SAV_DATE_OFFSET = 92
SAV_STAMP = b"01 Jan 2600:00:00"


def _fix_sav_timestamp(path: Path) -> None:
    """Overwrite the writer's wall-clock stamp so that a seed gives byte-identical files."""
    with open(path, "r+b") as f:
        if f.read(4) != b"$FL2":
            return
        f.seek(SAV_DATE_OFFSET)
        f.write(SAV_STAMP)


def write_wave(study: Study, wave_dir: Path, sources: dict, orgs, teams, fmt="sav"):
    import pyreadstat

    wave_dir.mkdir(parents=True, exist_ok=True)
    for source in ("staff", "patients"):
        df = sources[source]
        if fmt == "sav":
            labels, vlabels, missing = _spss_meta(study, source, df)
            pyreadstat.write_sav(
                df,
                str(wave_dir / f"{source}.sav"),
                column_labels=[labels.get(c, c) for c in df.columns],
                variable_value_labels=vlabels,
                missing_ranges=missing,
                variable_measure={c: "ordinal" for c in vlabels},
            )
            _fix_sav_timestamp(wave_dir / f"{source}.sav")
        else:
            df.to_csv(wave_dir / f"{source}.csv", index=False)
    sources["maturity"].to_csv(wave_dir / "maturity.csv", index=False)
    orgs.to_csv(wave_dir / "organisations.csv", index=False)
    teams.to_csv(wave_dir / "teams.csv", index=False)
    sources["outcomes"].to_csv(wave_dir / "outcomes.csv", index=False)
    sources["team_outcomes"].to_csv(wave_dir / "team_outcomes.csv", index=False)


def _with_invited(orgs: pd.DataFrame, sources: dict, seed: int) -> pd.DataFrame:
    """The register with ``staff_invited`` and ``patients_invited``: each hospital's respondents
    divided by a response rate drawn per hospital (professionals 35-70%, patients 20-50%), from
    a generator of its own so that the answers do not change. The last hospital's patients'
    invitations are left blank, as a register that does not record them."""
    rng = np.random.default_rng(seed)
    orgs = orgs.copy()
    for source, (lo, hi) in (("staff", (0.35, 0.70)), ("patients", (0.20, 0.50))):
        n = sources[source].groupby("hospital_id").size()
        n = n.reindex(orgs["hospital_id"]).fillna(0).to_numpy()
        rate = rng.uniform(lo, hi, size=len(orgs))
        orgs[f"{source}_invited"] = pd.array(np.ceil(n / rate).astype(int), dtype="Int64")
    if len(orgs) > 1:
        orgs.loc[orgs.index[-1], "patients_invited"] = pd.NA
    return orgs


#: The demo consortium of ``flaqum demo``: ``seed``, ``hospitals`` and ``waves``, the defaults
#: of the config schema's ``demo`` section (the one place they are written).
DEMO = with_defaults({})["demo"]


def generate_consortium(
    out_dir: Path | str,
    study: Study | None = None,
    n_hospitals: int = DEMO["hospitals"],
    waves=tuple(DEMO["waves"]),
    seed: int = DEMO["seed"],
    fmt: str = "sav",
    join_late: int | None = None,
    scale: float = 1.0,
) -> dict:
    """Write a synthetic consortium, one folder per wave, and ``ground_truth.json``.

    ``join_late`` hospitals (default: 1 when there are at least 10) take part only from the
    second wave, so that trends are shown only where a hospital took part twice.
    """
    study = study or load_study()
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    orgs, teams = make_registers(n_hospitals, rng)
    if join_late is None:
        join_late = 1 if n_hospitals >= 10 and len(waves) > 1 else 0
    state: dict = {}
    truth = {
        "seed": seed,
        "n_hospitals": n_hospitals,
        "parameters": TRUTH,
        "model": __doc__.split("\n\n")[1],
        "waves": {},
    }
    for w, wave in enumerate(waves):
        sources, wtruth, _ = generate_wave(study, orgs, teams, state, w, rng, scale)
        keep_h = orgs["hospital_id"]
        if w == 0 and join_late:
            keep_h = orgs["hospital_id"].iloc[: n_hospitals - join_late]
        keep = set(keep_h)
        for k, df in sources.items():
            sources[k] = df[df["hospital_id"].isin(keep)].reset_index(drop=True)
        write_wave(
            study,
            out_dir / wave,
            sources,
            _with_invited(orgs[orgs["hospital_id"].isin(keep)], sources, seed + w),
            teams[teams["hospital_id"].isin(keep)],
            fmt=fmt,
        )
        wtruth["hospitals_in_wave"] = sorted(keep)
        wtruth["n_staff"] = len(sources["staff"])
        wtruth["n_patients"] = len(sources["patients"])
        truth["waves"][wave] = wtruth
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=1, default=float))
    return truth
