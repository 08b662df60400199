"""Loading and checking the study config, the instrument codebooks and the hypotheses.

Every file is checked against its JSON schema (Draft 2020-12, in
``src/flaqum/schemas``, linked as ``workflow/schemas``) and then
against the rules a schema cannot express (an item used in a scale must be defined, a reverse
item must belong to its scale, scale ids are unique across instruments). Errors name the file,
the key and the rule broken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from flaqum.errors import ConfigError
from flaqum.ids import check_id

# The schemas ship inside the package (workflow/schemas links here), so that a non-editable
# install finds them wherever the study and the workflow are.
SCHEMA_DIR = resources.files("flaqum") / "schemas"
# Below this, a team's answers can be guessed from its mean: refused unless the config says
# ``allow_min_group_size_below_3: true`` (for tests on toy data, never for reports).
MIN_GROUP_SIZE_FLOOR = 3


@cache
def load_schema(name: str) -> dict:
    """The JSON schema ``<name>.schema.yaml`` of the package (``src/flaqum/schemas``)."""
    return yaml.safe_load((SCHEMA_DIR / f"{name}.schema.yaml").read_text())


def read_yaml(path: Path | str) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _coerce(value, schema: dict):
    """``value`` with strings turned into the numbers or booleans ``schema`` asks for.

    ``snakemake --config key='{a: 5}'`` reads nested values with YAML's BaseLoader, so every
    nested scalar arrives as a string ('5', 'true'); this gives them back their type where the
    schema is unambiguous, so that such an override works as the README shows.
    """
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: _coerce(v, props.get(k, extra if isinstance(extra, dict) else {}))
            for k, v in value.items()
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerce(v, schema["items"]) for v in value]
    if not isinstance(value, str):
        return value
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if "null" in types and value.lower() in ("null", "~"):
        return None
    if "string" in types or not types:
        return value
    if "boolean" in types and value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind, parse in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return parse(value)
            except ValueError:
                pass
    return value


def check_schema(data: dict, schema_name: str, path: Path | str) -> None:
    """Raise a ConfigError naming the file, the key path and the rule for the first problems."""
    validator = jsonschema.Draft202012Validator(load_schema(schema_name))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors[:5]:
            # for oneOf/anyOf, name the most specific failure inside the alternatives
            err = jsonschema.exceptions.best_match([err])
            key = "/".join(map(str, err.absolute_path)) or "(top level)"
            lines.append(f"  at {key}: {err.message} (schema rule: {err.validator})")
        more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise ConfigError(f"{path} breaks the {schema_name} schema:\n" + "\n".join(lines) + more)


@dataclass(frozen=True)
class Scale:
    id: str
    instrument: str
    label: str
    items: tuple[str, ...]
    reverse: tuple[str, ...]
    min_items: int
    level: str | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Instrument:
    id: str
    label: str
    source: str
    unit: str
    path: str
    raw: dict = field(repr=False, compare=False, hash=False)

    @property
    def response(self) -> dict:
        return self.raw.get("response", {})

    @property
    def rmin(self) -> int:
        return int(self.response["min"])

    @property
    def rmax(self) -> int:
        return int(self.response["max"])

    @property
    def missing_codes(self) -> list[int]:
        return list(self.response.get("missing_codes", []))

    @property
    def items(self) -> dict[str, str]:
        return dict(self.raw.get("items", {}))

    @property
    def scales(self) -> dict[str, Scale]:
        out = {}
        for sid, s in self.raw.get("scales", {}).items():
            out[sid] = Scale(
                id=sid,
                instrument=self.id,
                label=s["label"],
                items=tuple(s["items"]),
                reverse=tuple(s.get("reverse", [])),
                min_items=int(s["min_items"]),
                level=s.get("level"),
                parent=s.get("parent"),
            )
        return out

    @property
    def waves(self) -> str | list[str]:
        """``"all"`` or the waves that field this instrument (codebook key ``waves``)."""
        return self.raw.get("waves", "all")

    def fielded_in(self, wave: str | None) -> bool:
        return wave is None or self.waves == "all" or wave in self.waves

    @property
    def reverse_items(self) -> set[str]:
        return {i for s in self.scales.values() for i in s.reverse}


def load_instrument(path: Path | str) -> Instrument:
    path = Path(path)
    data = read_yaml(path)
    check_schema(data, "instrument", path)
    if data["id"] != path.stem:
        raise ConfigError(f"{path}: id {data['id']!r} must equal the file name {path.stem!r}")
    defined = set(data.get("items", {}))
    resp = data.get("response")
    if resp and resp["min"] >= resp["max"]:
        raise ConfigError(f"{path}: at response: min {resp['min']} must be below max {resp['max']}")
    if resp:
        clash = [c for c in resp.get("missing_codes", []) if resp["min"] <= c <= resp["max"]]
        if clash:
            raise ConfigError(
                f"{path}: at response/missing_codes: {clash} lie inside the response range "
                f"{resp['min']}-{resp['max']} (rule: a missing code must not be a valid answer)"
            )
    scales = data.get("scales", {})
    for sid, s in scales.items():
        undefined = [i for i in s["items"] if i not in defined]
        if undefined:
            raise ConfigError(
                f"{path}: at scales/{sid}/items: {undefined} listed in the scale but not "
                f"defined under items (rule: every scale item must be defined)"
            )
        stray = [i for i in s.get("reverse", []) if i not in s["items"]]
        if stray:
            raise ConfigError(
                f"{path}: at scales/{sid}/reverse: {stray} not among the scale's items "
                f"(rule: a reverse-keyed item must belong to its scale)"
            )
        if s["min_items"] > len(s["items"]):
            raise ConfigError(
                f"{path}: at scales/{sid}/min_items: {s['min_items']} exceeds the "
                f"{len(s['items'])} items of the scale"
            )
        if s.get("parent") and s["parent"] not in scales:
            raise ConfigError(f"{path}: at scales/{sid}/parent: unknown scale {s['parent']!r}")
    for key in ("factor_model",):
        unknown = [s for s in data.get(key, []) if s not in scales]
        if unknown:
            raise ConfigError(f"{path}: at {key}: unknown scales {unknown}")
    unknown_dims = [i for i in data.get("dimensions", {}) if i not in defined]
    if unknown_dims:
        raise ConfigError(f"{path}: at dimensions: items {unknown_dims} are not defined")
    # An item reversed in one scale must be reversed in every scale that uses it.
    rev = {i for s in scales.values() for i in s.get("reverse", [])}
    for sid, s in scales.items():
        bad = [i for i in s["items"] if i in rev and i not in s.get("reverse", [])]
        if bad:
            raise ConfigError(
                f"{path}: at scales/{sid}/reverse: {bad} reversed in another scale but not here "
                f"(rule: an item is keyed the same way in every scale)"
            )
    return Instrument(data["id"], data["label"], data["source"], data["unit"], str(path), data)


@dataclass
class Study:
    """The validated config and codebooks of one run."""

    config: dict
    instruments: dict[str, Instrument]
    root: Path

    @property
    def sources(self) -> dict[str, dict]:
        return self.config["sources"]

    @property
    def min_group_size(self) -> int:
        return int(self.config["min_group_size"])

    def canonical_ids(self, source: str) -> dict[str, str]:
        """The source's id columns and the names they get in processed data and results:
        its hospital column becomes ``hospital_id``, its team column ``team_id``, a survey's
        respondent id ``respondent_id`` (so that a study may call them ``org_id``,
        ``unit_id``, ...)."""
        spec = self.sources[source]
        out = {}
        if spec.get("hospital"):
            out[spec["hospital"]] = "hospital_id"
        if spec.get("team"):
            out[spec["team"]] = "team_id"
        if spec["id"] not in out:
            out[spec["id"]] = {
                "survey": "respondent_id",
                "hospital": "hospital_id",
                "team": "team_id",
            }.get(spec["kind"], spec["id"])
        return out

    def instruments_for(self, source: str, wave: str | None = None) -> list[Instrument]:
        """The source's instruments; with ``wave``, those that field it (``waves:``)."""
        return [i for i in self.instruments.values() if i.source == source and i.fielded_in(wave)]

    def scales_for(self, source: str, wave: str | None = None) -> dict[str, Scale]:
        return {sid: s for i in self.instruments_for(source, wave) for sid, s in i.scales.items()}

    def not_fielded(self, wave: str) -> dict[str, list[str]]:
        """Instruments that do not field ``wave``: id -> the waves they field."""
        return {i.id: list(i.waves) for i in self.instruments.values() if not i.fielded_in(wave)}

    def scale(self, sid: str) -> Scale:
        for inst in self.instruments.values():
            if sid in inst.scales:
                return inst.scales[sid]
        raise KeyError(sid)

    def instrument_of(self, sid: str) -> Instrument:
        return self.instruments[self.scale(sid).instrument]

    @property
    def raw_dir(self) -> Path:
        return self.root / self.config["raw_dir"]

    def waves(self) -> list[str]:
        """The waves to process: folders under raw_dir whose name is a valid id (sorted), or
        the configured list. Folders with other names are left out and listed by
        ``invalid_waves`` (one finding each, so that they never block the valid waves)."""
        listed = self.config.get("waves", "auto")
        if listed != "auto":
            return list(listed)
        return [name for name, why in self._wave_folders() if why is None]

    def invalid_waves(self) -> dict[str, str]:
        """Folder name -> why it is not a wave (see ``flaqum.ids``)."""
        if self.config.get("waves", "auto") != "auto":
            return {}
        return {name: why for name, why in self._wave_folders() if why is not None}

    def _wave_folders(self) -> list[tuple[str, str | None]]:
        if not self.raw_dir.is_dir():
            return []
        return [
            (p.name, check_id(p.name, "wave folder name"))
            for p in sorted(self.raw_dir.iterdir())
            if p.is_dir() and not p.name.startswith(".")
        ]


def _fill_defaults(value: dict, schema: dict) -> dict:
    """``value`` with every absent key that has a ``default`` in ``schema`` filled in, and
    absent sections whose keys have defaults created (recursively)."""
    import copy

    out = dict(value)
    for key, sub in schema.get("properties", {}).items():
        if key not in out:
            if "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            elif any("default" in p for p in sub.get("properties", {}).values()):
                out[key] = {}
        if isinstance(out.get(key), dict) and sub.get("properties"):
            out[key] = _fill_defaults(out[key], sub)
    return out


def schema_defaults(data: dict, schema_name: str) -> dict:
    """``data`` with the defaults of the package's schema ``<schema_name>.schema.yaml``
    filled in (a hypothesis file's, for instance): the schema is the one place they are held."""
    return _fill_defaults(data, load_schema(schema_name))


def with_defaults(config: dict) -> dict:
    """The config with the schema's defaults: the one place defaults are held
    (``src/flaqum/schemas/config.schema.yaml``); the code reads keys, never guesses them."""
    return _fill_defaults(config, load_schema("config"))


def load_study(
    config: dict | Path | str = "config/config.yaml",
    root: Path | str = ".",
    instruments_dir: Path | str | None = None,
) -> Study:
    """Validate the config and every codebook under ``config/instruments``."""
    root = Path(root)
    path = "config/config.yaml"
    if not isinstance(config, dict):
        path = str(config)
        config = read_yaml(root / config if not Path(config).is_absolute() else config)
    config = _coerce(config, load_schema("config"))
    check_schema(config, "config", path)
    config = with_defaults(config)
    if "organisations" not in config["sources"]:
        raise ConfigError(
            f"{path}: at sources: no 'organisations' source (rule: every study declares the "
            "organisations register: one row per hospital, the ids its reports are named by)"
        )
    k = config["min_group_size"]
    if k < MIN_GROUP_SIZE_FLOOR and not config.get("allow_min_group_size_below_3"):
        raise ConfigError(
            f"{path}: at min_group_size: {k} is below {MIN_GROUP_SIZE_FLOOR}; a group that "
            "small can be identified from its mean (rule: min_group_size >= 3; set "
            "allow_min_group_size_below_3: true only for tests on toy data)"
        )
    idir = Path(instruments_dir) if instruments_dir else root / "config" / "instruments"
    instruments: dict[str, Instrument] = {}
    seen_scales: dict[str, str] = {}
    for p in sorted(idir.glob("*.yaml")):
        inst = load_instrument(p)
        if inst.source not in config["sources"]:
            raise ConfigError(
                f"{p}: at source: {inst.source!r} is not a source declared in {path} "
                f"(declared: {sorted(config['sources'])})"
            )
        for sid in inst.scales:
            if sid in seen_scales:
                raise ConfigError(
                    f"{p}: at scales/{sid}: scale id also defined in {seen_scales[sid]} "
                    f"(rule: scale ids are unique across instruments)"
                )
            seen_scales[sid] = str(p)
        instruments[inst.id] = inst
    for src, scales in _items_by_source(instruments).items():
        for item, insts in scales.items():
            if len(insts) > 1:
                raise ConfigError(
                    f"item {item!r} of source {src!r} is defined by several instruments: {insts}"
                )
    return Study(config=config, instruments=instruments, root=root)


def _items_by_source(instruments: dict[str, Instrument]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for inst in instruments.values():
        for item in inst.items:
            out.setdefault(inst.source, {}).setdefault(item, []).append(inst.id)
    return out
