"""Parsed flags → an option object (:class:`~bpnetz.model.options.TrainOptions`,
:class:`~bpnetz.build.options.BuildOptions`, :class:`~bpnetz.predict.options.PredictOptions`,
:class:`~bpnetz.shap.options.ShapOptions`).

A flag's ``dest`` is its option's field name and its default is read from the option object, so an option is
spelled out twice: its field (with the default) and its flag. :func:`from_args` copies every field that the
parsed namespace holds; a command passes the few values that are not one flag each (``--quiet`` → ``verbose`` or
``progress``, a path, a check) as overrides.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

Options = TypeVar("Options")


def from_args(cls: type[Options], args: argparse.Namespace, **overrides: Any) -> Options:
    """``cls`` with the fields the namespace holds, then ``overrides``."""
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return cls(**{**values, **overrides})
