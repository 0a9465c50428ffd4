"""The batch manifest: one experiment per row (TSV) or list entry (YAML), and the stages wanted.

Fields of an experiment (relative paths are relative to the manifest's folder):

- ``name`` (required): letters, digits, ``.``, ``_``, ``-``; unique. Its outputs go to ``<output-dir>/<name>/``.
- inputs: ``input_data`` (an input_data.json; its own paths are relative to its folder, as in the reference), or
  ``signal`` (bigWigs, comma-separated in TSV) + ``peaks`` (narrowPeak files) with optional ``bias`` (control
  bigWigs) and ``background`` (BED) — the batch then writes ``<name>/input_data.json`` for them.
- ``genome``, ``chrom_sizes``, ``params`` (bpnet_params.json), ``splits`` (splits.json): required.
- ``input_len`` / ``output_len`` (default: the params' ``input_len`` / ``output_profile_len``), ``max_jitter``
  (default 128), ``seed`` (training seed, default 1234).
- ``stages``: a subset of :data:`STAGES` (default: all; ``hits`` only when FiNeMo is installed); the stages they
  need are added (``modisco`` brings ``shap``, ``train`` and ``build``).
- ``<stage>_args``: extra flags of that stage's command, one string (shell-quoted) or a YAML list, e.g.
  ``train_args: --epochs 20 --batch-size 32``.

A YAML manifest may give a ``defaults`` mapping merged under every experiment (the per-experiment overrides).

The manifest itself and the params and splits files it names are checked before anything runs (an error there
stops the command with exit status 2); an experiment's data (FASTA, bigWigs, peaks) is read by its stages, so
bad data fails that experiment alone.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bpnetz.errors import InputError

#: every stage in pipeline order, with the stage each one needs.
STAGES = ("build", "train", "predict", "shap", "modisco", "hits")
UPSTREAM = {"build": None, "train": "build", "predict": "train", "shap": "train", "modisco": "shap",
            "hits": "modisco"}
GPU_STAGES = frozenset({"train", "predict", "shap"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PATH_FIELDS = ("input_data", "genome", "chrom_sizes", "params", "splits")
_LIST_FIELDS = ("signal", "peaks", "bias", "background")
_INT_FIELDS = ("input_len", "output_len", "max_jitter", "seed")
KNOWN_FIELDS = {"name", "stages", *_PATH_FIELDS, *_LIST_FIELDS, *_INT_FIELDS, *(f"{s}_args" for s in STAGES)}


@dataclass(frozen=True)
class Experiment:
    """One manifest entry with its paths resolved (absolute) and its stages closed under their needs."""

    name: str
    genome: Path
    chrom_sizes: Path
    params: Path
    splits: Path
    input_len: int
    output_len: int
    max_jitter: int = 128
    seed: int = 1234
    input_data: Path | None = None
    tracks: dict[str, list[Path]] = field(default_factory=dict)
    stages: tuple[str, ...] = STAGES
    args: dict[str, list[str]] = field(default_factory=dict)


def default_stages() -> tuple[str, ...]:
    """Every stage; ``hits`` only when FiNeMo is installed (the optional 'hits' extra)."""
    return STAGES if importlib.util.find_spec("finemo") else STAGES[:-1]


def close_stages(wanted: list[str], where: str) -> tuple[str, ...]:
    """``wanted`` plus every stage they need, in pipeline order."""
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise InputError(f"unknown stage(s) {', '.join(unknown)} in {where}.",
                         fix=f"Use stages among {', '.join(STAGES)}.")
    closed = set(wanted)
    for stage in wanted:
        while UPSTREAM[stage] is not None:
            stage = UPSTREAM[stage]
            closed.add(stage)
    return tuple(s for s in STAGES if s in closed)


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _as_args(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else shlex.split(str(value))


def _lengths_from_params(params: Path, where: str) -> tuple[int | None, int | None]:
    try:
        raw = json.loads(params.read_text())
        return raw.get("input_len"), raw.get("output_profile_len")
    except (OSError, ValueError, AttributeError):
        raise InputError("cannot be read as bpnet_params.json.", path=params,
                         fix=f"Fix the 'params' path of {where}.") from None


def _int(entry: dict[str, Any], key: str, default: int | None, where: str) -> int:
    value = entry.get(key)
    if value is None or value == "":
        if default is None:
            raise InputError(f"{where} has no {key} and its params do not give one.", fix=f"Add a {key} field.")
        return int(default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {key} must be an integer, got {value!r}.", fix="Fix the value.") from None


def _experiment(entry: dict[str, Any], base: Path, where: str, stages: tuple[str, ...]) -> Experiment:
    """Validate one entry (a dict of field -> value) into an :class:`Experiment`."""
    unknown = sorted(set(entry) - KNOWN_FIELDS)
    if unknown:
        raise InputError(f"{where} has unknown field(s) {', '.join(unknown)}.",
                         fix=f"Use fields among {', '.join(sorted(KNOWN_FIELDS))}.")
    name = str(entry.get("name") or "")
    if not _NAME.match(name):
        raise InputError(f"{where} needs a name of letters, digits, '.', '_' or '-', got {name!r}.",
                         fix="Give every experiment a name usable as a directory name.")
    paths = {k: (base / str(entry[k])).absolute() if entry.get(k) else None for k in _PATH_FIELDS}
    missing = [k for k in ("genome", "chrom_sizes", "params", "splits") if paths[k] is None]
    tracks = {k: [(base / v).absolute() for v in _as_list(entry.get(k))] for k in _LIST_FIELDS}
    if paths["input_data"] is None and not (tracks["signal"] and tracks["peaks"]):
        missing.append("input_data (or signal and peaks)")
    if missing:
        raise InputError(f"experiment {name!r} ({where}) lacks {', '.join(missing)}.", fix="Add the field(s).")
    in_len, out_len = _lengths_from_params(paths["params"], f"experiment {name!r}")
    wanted = _as_list(entry.get("stages"))
    return Experiment(
        name=name, genome=paths["genome"], chrom_sizes=paths["chrom_sizes"], params=paths["params"],
        splits=paths["splits"], input_len=_int(entry, "input_len", in_len, where),
        output_len=_int(entry, "output_len", out_len, where), max_jitter=_int(entry, "max_jitter", 128, where),
        seed=_int(entry, "seed", 1234, where), input_data=paths["input_data"],
        tracks={k: v for k, v in tracks.items() if v} if paths["input_data"] is None else {},
        stages=close_stages(wanted, f"experiment {name!r}") if wanted else stages,
        args={s: _as_args(entry.get(f"{s}_args")) for s in STAGES if entry.get(f"{s}_args")})


def _read_tsv(path: Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    with open(path, newline="") as handle:
        lines = [line for line in handle if line.strip() and not line.lstrip().startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    return {}, [(f"{path} row {i + 2}", {k: v for k, v in row.items() if k is not None}) for i, row in
                enumerate(rows)]


def _read_yaml(path: Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputError(f"is not valid YAML ({err}).", path=path, fix="Fix the manifest's syntax.") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("experiments"), list):
        raise InputError("needs a top-level 'experiments' list (and optionally 'defaults').", path=path,
                         fix="See docs/atlas.md for an example manifest.")
    defaults = raw.get("defaults") or {}
    entries = []
    for i, entry in enumerate(raw["experiments"]):
        if not isinstance(entry, dict):
            raise InputError(f"experiment {i + 1} is not a mapping.", path=path, fix="Write each as 'name: …' keys.")
        entries.append((f"{path} experiment {i + 1}", entry))
    return defaults, entries


def load_manifest(path: str | Path, *, stages: list[str] | None = None) -> list[Experiment]:
    """Read a ``.tsv`` or ``.yaml``/``.yml`` manifest; ``stages`` (when given) is the default stage list."""
    path = Path(path)
    if not path.is_file():
        raise InputError("does not exist.", path=path, fix="Pass the manifest (TSV or YAML) of the batch.")
    reader = _read_yaml if path.suffix.lower() in (".yaml", ".yml") else _read_tsv
    defaults, entries = reader(path)
    default = close_stages(stages, "--stages") if stages else default_stages()
    if defaults.get("stages"):
        default = close_stages(_as_list(defaults["stages"]), f"{path} defaults")
    base = path.parent.absolute()
    experiments = [_experiment({**defaults, **entry, "stages": entry.get("stages")}, base, where, default)
                   for where, entry in entries]
    if not experiments:
        raise InputError("lists no experiments.", path=path, fix="Add at least one experiment.")
    seen: set[str] = set()
    for exp in experiments:
        if exp.name in seen:
            raise InputError(f"the name {exp.name!r} is used twice.", path=path, fix="Give every experiment its "
                             "own name.")
        seen.add(exp.name)
    return experiments
