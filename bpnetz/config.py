"""Typed, validated models of the reference tool's three JSON files.

``input_data.json`` (tasks "0", "1", … with signal, loci, optional background_loci and bias),
``bpnet_params.json`` (the architecture) and ``splits.json`` (one fold per key) are accepted exactly as the
reference accepts them. Every error names the file, the key and what was expected; relative paths are resolved
against the current directory, as the reference does.

Beyond the reference, values are range-checked (it let Keras fail on a zero kernel, or trained silently with a
negative counts-loss weight): sizes, filters, kernel sizes, units and lengths are positive, layer counts,
dropouts, loss and attribution-prior weights non-negative. :func:`check_split_chroms` (called by train and
predict) checks a fold's chromosomes against the store's loci: a set partly absent is a warning naming the
absent chromosomes, a required set (train, val; predict's subset) with no locus at all an InputError.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from bpnetz.errors import InputError

# --------------------------------------------------------------------------------------------------- helpers


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, naming the file, line and column of a syntax error."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file does not exist.", path=path, fix="Check the path (relative paths are taken "
                         "from the current directory).")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}.", path=path,
                         fix="Fix the syntax (a trailing comma or a missing quote is the usual cause).") from None


def _validation_message(err: ValidationError) -> str:
    """One line per problem: the key path (as in the JSON) and what was expected."""
    lines = []
    for problem in err.errors():
        key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"])
        key = key.lstrip(".") or "(top level)"
        given = problem.get("input")
        shown = f" (got {given!r})" if isinstance(given, (int, float, str)) and problem["type"] != "missing" else ""
        lines.append(f"key '{key}': {problem['msg']}{shown}")
    return "; ".join(lines)


def _parse(model: type[BaseModel], data: Any, path: str | Path, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InputError(f"not a valid {what}: {_validation_message(err)}.", path=path,
                         fix=f"Correct the named key(s); the {what} format is described in the README.") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(value: Any) -> Any:
    """The reference accepts a bare string where it means a one-element list."""
    return [value] if isinstance(value, (str, int, float)) else value


# ------------------------------------------------------------------------------------------- input_data.json


class SignalSpec(_Strict):
    """One task's signal bigWigs: [plus, minus] for stranded data or [track] for unstranded data."""

    source: list[str] = Field(min_length=1, max_length=2)
    _coerce = field_validator("source", mode="before")(_as_list)


class LociSpec(_Strict):
    """narrowPeak / BED files whose summits (column 10 offset) centre the training loci."""

    source: list[str] = Field(min_length=1)
    _coerce = field_validator("source", mode="before")(_as_list)


class BackgroundSpec(_Strict):
    """Background (e.g. GC-matched) loci; each epoch draws int(n_peaks × ratio) of them afresh."""

    source: list[str] = Field(min_length=1)
    ratio: float = Field(ge=0)
    _coerce = field_validator("source", mode="before")(_as_list)

    @field_validator("ratio", mode="before")
    @classmethod
    def _single_ratio(cls, value: Any) -> Any:
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError(f"expected one ratio (e.g. [0.25]), got {len(value)} values")
            return value[0]
        return value


class BiasSpec(_Strict):
    """Control bigWigs; a non-null smoothing entry [sigma, window] adds a Gaussian-smoothed copy of its track."""

    source: list[str] = Field(default_factory=list)
    smoothing: list[tuple[float, int] | None] | None = None
    _coerce = field_validator("source", mode="before")(_as_list)

    @model_validator(mode="after")
    def _one_smoothing_per_source(self) -> BiasSpec:
        if self.smoothing is not None and len(self.smoothing) != len(self.source):
            raise ValueError(f"'smoothing' needs one entry per bias source ({len(self.source)}), "
                             f"got {len(self.smoothing)}; use null for no smoothing")
        return self

    @property
    def smoothings(self) -> list[tuple[float, int] | None]:
        """One entry per source (null when absent)."""
        return list(self.smoothing) if self.smoothing is not None else [None] * len(self.source)


class TaskSpec(_Strict):
    """One task of input_data.json."""

    signal: SignalSpec
    loci: LociSpec
    background_loci: BackgroundSpec | None = None
    bias: BiasSpec | None = None

    @field_validator("bias", mode="after")
    @classmethod
    def _empty_bias_is_none(cls, bias: BiasSpec | None) -> BiasSpec | None:
        """Reference-era files write ``"bias": {"source": [], "smoothing": []}`` for "no controls"."""
        return bias if bias is not None and bias.source else None

    @property
    def stranded(self) -> bool:
        return len(self.signal.source) == 2


class InputData(BaseModel):
    """The whole input_data.json: tasks in order "0", "1", …"""

    model_config = ConfigDict(frozen=True)
    tasks: dict[str, TaskSpec]
    path: str = "input_data.json"

    @classmethod
    def load(cls, path: str | Path, *, check_files: bool = True) -> InputData:
        """Read and validate input_data.json; with ``check_files``, every referenced file must exist."""
        raw = read_json(path)
        if not isinstance(raw, dict) or not raw:
            raise InputError("expected an object of tasks keyed \"0\", \"1\", …", path=path)
        keys = list(raw)
        expected = [str(i) for i in range(len(keys))]
        if sorted(keys, key=lambda k: (len(k), k)) != expected:
            raise InputError(f"task keys must be \"0\", \"1\", … in sequence; found {keys}.", path=path,
                             fix="Rename the task keys.")
        tasks = {key: _parse(TaskSpec, raw[key], path, f"task \"{key}\" of input_data.json") for key in expected}
        data = cls(tasks=tasks, path=str(path))
        if check_files:
            data.check_files()
        return data

    def files(self) -> Iterable[tuple[str, str]]:
        """Every referenced file as (json key, path)."""
        for key, task in self.tasks.items():
            for i, src in enumerate(task.signal.source):
                yield f'"{key}".signal.source[{i}]', src
            for i, src in enumerate(task.loci.source):
                yield f'"{key}".loci.source[{i}]', src
            if task.background_loci:
                for i, src in enumerate(task.background_loci.source):
                    yield f'"{key}".background_loci.source[{i}]', src
            if task.bias:
                for i, src in enumerate(task.bias.source):
                    yield f'"{key}".bias.source[{i}]', src

    def check_files(self) -> None:
        """Raise naming the first missing file and the key that refers to it."""
        for key, src in self.files():
            if not Path(src).is_file():
                raise InputError(f"key {key} names '{src}', which does not exist (relative paths are taken "
                                 f"from the current directory, {Path.cwd()}).", path=self.path,
                                 fix="Fix the path or run from the directory the paths are relative to.")

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)


# ------------------------------------------------------------------------------------------ bpnet_params.json


class MotifModuleParams(_Strict):
    filters: list[PositiveInt] = Field([64], min_length=1)
    kernel_sizes: list[PositiveInt] = Field([21], min_length=1)
    padding: Literal["valid", "same"] = "valid"

    @model_validator(mode="after")
    def _one_kernel_size_per_layer(self) -> MotifModuleParams:
        if len(self.filters) != len(self.kernel_sizes):
            raise ValueError(f"'filters' ({len(self.filters)} entries) and 'kernel_sizes' "
                             f"({len(self.kernel_sizes)}) need one entry per convolution layer each")
        return self


class SyntaxModuleParams(_Strict):
    num_dilation_layers: NonNegativeInt = 8
    filters: PositiveInt = 64
    kernel_size: PositiveInt = 3
    padding: Literal["valid", "same"] = "valid"
    pre_activation_residual_unit: bool = True


class ProfileHeadParams(_Strict):
    filters: PositiveInt = 1  # replaced by the number of tracks, as in the reference
    kernel_size: PositiveInt = 75
    padding: Literal["valid", "same"] = "valid"


def _unit_count(units: int) -> int:
    """A Dense layer's units: positive, or -1 for one unit per task (see :mod:`bpnetz.model.bpnet`)."""
    if units < 1 and units != -1:
        raise ValueError("Input should be greater than 0, or -1 for one unit per task")
    return units


class CountsHeadParams(_Strict):
    units: list[Annotated[int, AfterValidator(_unit_count)]] = Field([1], min_length=1)
    dropouts: list[Annotated[float, Field(ge=0, lt=1)]] = [0.0]
    activations: list[str] = ["linear"]

    @model_validator(mode="after")
    def _same_lengths(self) -> CountsHeadParams:
        if not len(self.units) == len(self.dropouts) == len(self.activations):
            raise ValueError("'units', 'dropouts' and 'activations' need one entry per dense layer each")
        return self


class ProfileBiasModuleParams(_Strict):
    kernel_sizes: list[PositiveInt] = Field([1], min_length=1)


class CountsBiasModuleParams(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class AttributionPriorParams(_Strict):
    frequency_limit: PositiveInt = 150
    limit_softness: NonNegativeFloat = 0.2
    grad_smooth_sigma: NonNegativeFloat = 3
    profile_grad_loss_weight: NonNegativeFloat = 200
    counts_grad_loss_weight: NonNegativeFloat = 100


class BpnetParams(BaseModel):
    """The architecture JSON; defaults are the seed README's values."""

    model_config = ConfigDict(extra="allow", frozen=True)
    input_len: PositiveInt = 2114
    output_profile_len: PositiveInt = 1000
    motif_module_params: MotifModuleParams = MotifModuleParams()
    syntax_module_params: SyntaxModuleParams = SyntaxModuleParams()
    profile_head_params: ProfileHeadParams = ProfileHeadParams()
    counts_head_params: CountsHeadParams = CountsHeadParams()
    profile_bias_module_params: ProfileBiasModuleParams = ProfileBiasModuleParams()
    counts_bias_module_params: CountsBiasModuleParams = CountsBiasModuleParams()
    use_attribution_prior: bool = False
    attribution_prior_params: AttributionPriorParams = AttributionPriorParams()
    loss_weights: tuple[NonNegativeFloat, NonNegativeFloat] = (1.0, 42.0)
    counts_loss: Literal["MSE", "POISSON"] = "MSE"

    @classmethod
    def load(cls, path: str | Path) -> BpnetParams:
        """Read and validate bpnet_params.json; unknown top-level keys are reported, not fatal."""
        raw = read_json(path)
        if not isinstance(raw, dict):
            raise InputError("expected a JSON object of architecture parameters.", path=path)
        params = _parse(cls, raw, path, "bpnet_params.json")
        unknown = sorted(set(raw) - set(cls.model_fields))
        if unknown:
            warnings.warn(f"{path}: ignoring unknown keys {unknown}", stacklevel=2)
        return params

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


# ------------------------------------------------------------------------------------------------ splits.json


class Split(_Strict):
    """One fold: validation chromosomes, and optionally test and train chromosomes."""

    val: list[str]
    test: list[str] = []
    train: list[str] | None = None

    def train_chroms(self, all_chroms: Iterable[str] | None) -> list[str]:
        """Explicit train chromosomes, or ``all_chroms`` minus val and test (the reference's rule)."""
        if self.train is not None:
            return list(self.train)
        if all_chroms is None:
            raise InputError("this split has no 'train' list, so training chromosomes are --chroms minus val "
                             "and test; pass --chroms.")
        held_out = set(self.val) | set(self.test)
        return [c for c in all_chroms if c not in held_out]

    def chroms(self, subset: str, all_chroms: Iterable[str] | None = None) -> list[str]:
        """Chromosomes of 'train', 'val' or 'test'."""
        if subset == "train":
            return self.train_chroms(all_chroms)
        if subset in ("val", "test"):
            return list(getattr(self, subset))
        raise ValueError(f"unknown subset {subset!r}")

    def overlaps(self) -> dict[str, list[str]]:
        """Chromosomes listed in more than one of train/val/test, keyed by the pair of sets."""
        sets = {"train": set(self.train or []), "val": set(self.val), "test": set(self.test)}
        found = {}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = sorted(sets[a] & sets[b])
            if common:
                found[f"{a}/{b}"] = common
        return found


class Splits(BaseModel):
    """splits.json: one fold per key "0", "1", …"""

    model_config = ConfigDict(frozen=True)
    folds: dict[str, Split]
    path: str = "splits.json"

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        """Read and validate; chromosomes shared between sets of a fold produce a warning naming them."""
        raw = read_json(path)
        if not isinstance(raw, dict) or not raw:
            raise InputError("expected an object of folds keyed \"0\", \"1\", …", path=path)
        folds = {str(k): _parse(Split, v, path, f"fold \"{k}\" of splits.json") for k, v in raw.items()}
        for key, fold in folds.items():
            for pair, chroms in fold.overlaps().items():
                warnings.warn(f"{path}: fold \"{key}\" lists {', '.join(chroms)} in both {pair.replace('/', ' and ')}"
                              f"; those loci are used in both sets.", stacklevel=2)
        return cls(folds=folds, path=str(path))


def check_split_chroms(folds: dict[str, Split | None], store_chroms: Sequence[str], *, path: str | Path,
                       required: Sequence[str] = ("train", "val"), optional: Sequence[str] = ("test",),
                       all_chroms: Sequence[str] | None = None) -> None:
    """Check the folds' chromosomes against those holding loci of the store (train and predict call this).

    A ``required`` set (e.g. train, val) none of whose chromosomes holds a locus is an InputError naming the fold
    key and the chromosomes; chromosomes of a required or ``optional`` set that the store lacks, when others of
    the set are present, are a warning naming them. Set names other than train/val/test (predict's "all") and
    folds given as None are skipped. ``all_chroms`` (--chroms) stands for the store's in an implicit train set.
    """
    present = set(store_chroms)
    universe = list(all_chroms) if all_chroms is not None else list(store_chroms)
    for key, fold in folds.items():
        for subset in [s for s in (*required, *optional) if s in ("train", "val", "test") and fold is not None]:
            chroms = fold.chroms(subset, universe)
            absent = [c for c in chroms if c not in present]
            if subset in required and len(absent) == len(chroms):
                listed = ", ".join(chroms) if chroms else "no chromosome"
                raise InputError(f"fold \"{key}\": the {subset} set ({listed}) has no locus in the store, whose "
                                 f"loci are on {', '.join(list(store_chroms)[:12]) or 'nothing'}.", path=path,
                                 fix="Use the store's chromosome names in splits.json (e.g. 'chr1' vs '1'), or "
                                     "build the store with these chromosomes.")
            if absent:
                warnings.warn(f"{path}: fold \"{key}\": {subset} chromosomes {', '.join(absent)} hold no locus "
                              "of the store; they are left out.", stacklevel=2)
