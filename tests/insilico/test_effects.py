"""Variant effect arithmetic and ISM mutants against hand computations (no model)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon

from bpnetz.insilico.ism import mutants
from bpnetz.insilico.variants import allele_effects
from bpnetz.store.schema import StoreLayout, Track

LAYOUT = StoreLayout(input_len=20, output_len=6, max_jitter=0, tasks=["a", "b"],
                     tracks=[Track("a/+", 0, "+", "x"), Track("a/-", 0, "-", "y"), Track("b", 1, ".", "z")])


def test_allele_effects_by_hand():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.5, 2, (3, 6, 3))
    alt = ref.copy()
    alt[0, 4, 1] += 10.0  # variant 0: the − strand of task a gains 10 reads at position 4
    alt[1] *= 0.5  # variant 1: everything halves (same shape)
    out = allele_effects(ref, alt, LAYOUT)
    a_ref, a_alt = ref[0, :, :2].sum(), alt[0, :, :2].sum()
    assert np.isclose(out["logfc"][0, 0], np.log(a_alt / a_ref))
    assert np.isclose(out["logfc"][0, 1], 0.0) and out["max_change"][0, 0] == 4
    assert np.isclose(out["track_logfc"][0, 1], np.log(alt[0, :, 1].sum() / ref[0, :, 1].sum()))
    assert np.isclose(out["track_logfc"][0, 0], 0.0)
    joint = jensenshannon(ref[0, :, :2].ravel() / a_ref, alt[0, :, :2].ravel() / a_alt)
    assert np.isclose(out["jsd"][0, 0], joint)
    assert np.isclose(out["track_jsd"][0, 1], jensenshannon(ref[0, :, 1] / ref[0, :, 1].sum(),
                                                            alt[0, :, 1] / alt[0, :, 1].sum()))
    assert np.allclose(out["logfc"][1], np.log(0.5)) and np.allclose(out["jsd"][1], 0.0, atol=1e-6)
    assert np.allclose(out["logfc"][2], 0.0)


def test_mutants_cover_every_substitution_once():
    codes = np.array([0, 1, 2, 3, 0, 1], dtype=np.uint8)
    seqs, pos, bases = mutants(codes, 1, 4)
    assert seqs.shape == (9, 6)
    changed = seqs != codes
    assert (changed.sum(axis=1) == 1).all()
    assert np.array_equal(np.flatnonzero(changed.any(axis=0)), [1, 2, 3])
    assert sorted(zip(pos.tolist(), bases.tolist())) == sorted(
        (p - 1, b) for p in (1, 2, 3) for b in range(4) if b != codes[p])


def test_no_scored_variant_gives_empty_effects():
    empty = np.zeros((0, 6, 3))
    out = allele_effects(empty, empty, LAYOUT)
    assert out["logfc"].shape == (0, 2) and out["track_jsd"].shape == (0, 3) and out["max_change"].shape == (0, 2)
