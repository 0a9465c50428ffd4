"""bpnetz: base-resolution BPNet models trained from precompiled Zarr stores.

The public Python API (the README's "Python API" section shows it end to end)::

    import bpnetz
    bpnetz.simulate(...)                                   # a synthetic experiment
    bpnetz.build_store(input_data, genome, chrom_sizes, output, bpnetz.BuildOptions(...))
    bpnetz.open_dataset(store)                             # the store as an xarray.Dataset
    bpnetz.verify_store(store)
    bpnetz.train(store, params, splits, output_dir, bpnetz.TrainOptions(...))
    bpnetz.predict(model_dir, output_dir, bpnetz.PredictOptions(...))
    bpnetz.contribution_scores(model_dir, output_dir, bpnetz.ShapOptions(...))
    bpnetz.run_modisco(scores_h5, output_dir) ; bpnetz.call_hits(modisco_h5, scores_h5, output_dir)
    bpnetz.average_predictions(paths, output)

Every name is imported on first use (module ``__getattr__``, PEP 562), so ``import bpnetz`` stays cheap
(measured: no TensorFlow, zarr or xarray import) and a command-line tool pays only for what it calls.
Bad input raises :class:`InputError` (message, path, fix).

``predict`` and ``simulate`` are also the names of subpackages (``bpnetz/predict/``, ``bpnetz/simulate/``).
Importing a submodule normally sets the parent's attribute to the subpackage, which would shadow the function
once anything imported, say, ``bpnetz.predict.metrics``. So the package's module class keeps those two
attributes for a :class:`_FunctionAndPackage`: calling it calls the function (its name, docstring and signature
are the function's), and its other attributes are the subpackage's, so ``import bpnetz.predict.metrics as M``
and dotted monkeypatch targets keep working.
"""

from __future__ import annotations

import functools
import importlib
import sys
import types
from typing import Any

from bpnetz import memory as _memory

__version__ = "0.1.0"

_memory.pool_tensor_memory()  # before TensorFlow allocates its first tensor (see its docstring)

#: public name -> module that defines it
_API = {
    "InputError": "bpnetz.errors",
    "BpnetParams": "bpnetz.config",
    "Split": "bpnetz.config",
    "Splits": "bpnetz.config",
    "open_dataset": "bpnetz.store.dataset",
    "verify_store": "bpnetz.store.inspect",
    "build_store": "bpnetz.build.builder",
    "BuildOptions": "bpnetz.build.options",
    "simulate": "bpnetz.simulate.experiment",
    "train": "bpnetz.model.train",
    "TrainOptions": "bpnetz.model.options",
    "predict": "bpnetz.predict.predict",
    "PredictOptions": "bpnetz.predict.options",
    "contribution_scores": "bpnetz.shap.contributions",
    "ShapOptions": "bpnetz.shap.options",
    "run_modisco": "bpnetz.motifs.modisco",
    "call_hits": "bpnetz.motifs.hits",
    "average_predictions": "bpnetz.ensemble.average",
}

__all__ = ["__version__", *_API]  # noqa: PLE0604 (the keys of _API are strings)
#: API names that are also subpackages
_SUBPACKAGE_NAMES = frozenset({"predict", "simulate"})


class _FunctionAndPackage:
    """An API function that shares its name with a subpackage: called, the function; otherwise the subpackage."""

    def __init__(self, function: Any, package: str):
        functools.update_wrapper(self, function)
        self._package = package

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module(self._package), name)

    def __repr__(self) -> str:
        return f"<function {self.__module__}.{self.__qualname__}, and package {self._package}>"


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SUBPACKAGE_NAMES and isinstance(value, types.ModuleType):
            return  # the import system's attribute for the subpackage: bpnetz.<name> stays the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'bpnetz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    if name in _SUBPACKAGE_NAMES:
        value = _FunctionAndPackage(value, f"{__name__}.{name}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
