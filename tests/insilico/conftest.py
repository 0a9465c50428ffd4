"""The trained tiny model of the in-silico tests (tests/insilico/trained.py), trained once per session."""

from __future__ import annotations

import pytest

from tests.insilico.trained import SIMULATION, TrainedExperiment, train_tiny


@pytest.fixture(scope="session")
def trained(make_experiment, tmp_path_factory) -> TrainedExperiment:
    return train_tiny(make_experiment(**SIMULATION), tmp_path_factory.mktemp("insilico"))
