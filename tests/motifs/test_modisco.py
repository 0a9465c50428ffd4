"""tfmodisco-lite bridge and motif similarity, on synthetic score files with planted motifs (no model)."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from bpnetz.cli import main as cli_main
from bpnetz.errors import InputError
from bpnetz.genome.motif import read_meme_motifs
from bpnetz.motifs.compare import align_motifs, match_motifs
from bpnetz.motifs.modisco import load_patterns, load_score_window, run_modisco
from tests.shap.synthetic_motifs import KNOWN_MOTIFS, make_scores, reverse_complement

os.environ.setdefault("NUMBA_NUM_THREADS", "2")

N_LOCI, LENGTH, SPACING = 400, 200, 1000
UNIFORM = np.full((1, 4), 0.25)


def _padded(pfm: np.ndarray, left: int, right: int) -> np.ndarray:
    return np.vstack([np.repeat(UNIFORM, left, 0), pfm, np.repeat(UNIFORM, right, 0)])


# ------------------------------------------------------------------------------------------ motif similarity

def test_alignment_finds_reverse_complement_and_offset():
    a = KNOWN_MOTIFS["motifA"]
    query = _padded(reverse_complement(a), 7, 13)  # reversed, motifA starts at column 13 of the flipped query
    found = align_motifs(a, query)
    assert found.similarity == pytest.approx(1.0, abs=1e-9)
    assert (found.strand, found.offset, found.overlap) == ("-", -13, 10)


def test_partial_overlap_scores_the_information_it_shares():
    # Known: 10 one-hot columns; query: only its first 5 columns (uniform flanks carry no information). All
    # columns have equal weight, so the cosine is 5 / sqrt(10 * 5) = 1 / sqrt(2).
    known = np.eye(4)[[0, 1, 2, 3, 0, 2, 1, 3, 3, 0]]
    query = _padded(known[:5], 6, 6)
    assert align_motifs(known, query).similarity == pytest.approx(1 / np.sqrt(2), abs=1e-9)


def test_unrelated_motifs_score_low():
    assert align_motifs(KNOWN_MOTIFS["motifA"], KNOWN_MOTIFS["motifB"]).similarity < 0.4


# --------------------------------------------------------------------------------------- score-file reading

def test_score_window_is_central_and_placed_on_the_genome(tmp_path):
    make_scores(tmp_path / "s.h5", n_loci=5, length=LENGTH)
    with h5py.File(tmp_path / "s.h5") as f:
        hyp, starts = f["hyp_scores"][:], f["coords_start"][:]
    w = load_score_window(tmp_path / "s.h5", window=50)
    assert w.width == 50 and w.offset == 75
    np.testing.assert_array_equal(w.hypothetical, hyp[:, 75:125])
    np.testing.assert_array_equal(w.starts, starts + 75)
    assert load_score_window(tmp_path / "s.h5", window=10_000).width == LENGTH


def test_score_window_reads_what_bpnetz_shap_writes(tmp_path):
    from bpnetz.shap.scores import write_score_h5

    rng = np.random.default_rng(1)
    seqs = np.eye(4, dtype=np.int8)[rng.integers(0, 4, size=(3, 30))]
    seqs[0, 4] = 0  # an N base
    hyp = rng.normal(size=(3, 30, 4)).astype(np.float32)
    chroms = ["chr1", "chrUn_KI270742v1", "chrX"]
    write_score_h5(tmp_path / "c.h5", chroms, np.array([100, 5000, 7]), np.array([130, 5030, 37]), hyp, seqs)
    w = load_score_window(tmp_path / "c.h5", window=20)
    assert w.chroms == chroms
    np.testing.assert_array_equal(w.starts, [105, 5005, 12])
    np.testing.assert_array_equal(w.one_hot, seqs[:, 5:25])
    np.testing.assert_array_equal(w.hypothetical, hyp[:, 5:25])


@pytest.mark.parametrize("problem", ["missing", "no_key", "not_one_hot", "nan"])
def test_bad_score_files_raise_input_errors(tmp_path, problem):
    path = tmp_path / "s.h5"
    if problem != "missing":
        make_scores(path, n_loci=5, length=60)
        with h5py.File(path, "a") as f:
            if problem == "no_key":
                del f["hyp_scores"]
            elif problem == "not_one_hot":
                f["input_seqs"][0, 3, :] = 1.0
            else:
                f["hyp_scores"][1, 2, 0] = np.nan
    with pytest.raises(InputError) as err:
        load_score_window(path)
    assert str(path) in str(err.value)


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    rc = cli_main(["modisco", "--scores", str(tmp_path / "absent.h5"), "--output-dir", str(tmp_path / "o")])
    assert rc == 2
    assert "score file not found" in capsys.readouterr().err


def test_unparseable_motif_database_is_an_input_error(tmp_path):
    (tmp_path / "db.meme").write_text("MEME version 4\n\nMOTIF x\nletter-probability matrix: alength= 4 w= 2\n"
                                      "0.1 0.2 oops 0.4\n")
    with pytest.raises(InputError):
        read_meme_motifs(tmp_path / "db.meme")


# ---------------------------------------------------------------------------------- one tfmodisco-lite run

@pytest.fixture(scope="module")
def modisco_run(tmp_path_factory):
    """Planted-motif scores, a MEME database of the known motifs (memelite's writer), one `bpnetz modisco`."""
    from memelite.io import write_meme

    root = tmp_path_factory.mktemp("modisco")
    sites = make_scores(root / "counts_scores.h5", n_loci=N_LOCI, length=LENGTH, locus_spacing=SPACING)
    write_meme(str(root / "known.meme"), {name: pwm.T for name, pwm in KNOWN_MOTIFS.items()})
    rc = cli_main(["modisco", "--scores", str(root / "counts_scores.h5"), "--output-dir", str(root / "out"),
                   "--motif-db", str(root / "known.meme"), "--max-seqlets", "1000"])
    assert rc == 0
    return root, sites


def test_discovered_patterns_match_the_planted_motifs(modisco_run):
    root, sites = modisco_run
    patterns = load_patterns(root / "out" / "modisco_results.h5")
    table = {m.known: m for m in match_motifs(patterns, KNOWN_MOTIFS)}
    planted = {name: sum(s.motif == name for s in sites) for name in KNOWN_MOTIFS}
    for name, match in table.items():
        assert match.similarity > 0.9, (name, match)
        assert match.n_seqlets >= 0.3 * planted[name], (name, match, planted)
    assert table["motifA"].pattern != table["motifB"].pattern


def test_pattern_pfms_and_seqlet_coordinates_agree_with_the_input(modisco_run):
    root, sites = modisco_run
    with h5py.File(root / "counts_scores.h5") as f:
        one_hot = f["input_seqs"][:]
    for p in load_patterns(root / "out" / "modisco_results.h5"):
        s = p.seqlets
        assert len(s.start) == p.n_seqlets and np.all(s.end - s.start == len(p.pfm))
        stacked = [one_hot[i, a:b][::-1, ::-1] if rc else one_hot[i, a:b]
                   for i, a, b, rc in zip(s.example_idx, s.start, s.end, s.is_revcomp)]
        np.testing.assert_allclose(p.pfm, np.mean(stacked, axis=0), atol=1e-6)

    # seqlets.bed in genome coordinates: nearly every seqlet of the best motifA pattern covers a planted motifA
    best_a = match_motifs(load_patterns(root / "out" / "modisco_results.h5"), KNOWN_MOTIFS)[0].pattern
    planted_a = [(s.locus * SPACING + s.start) for s in sites if s.motif == "motifA"]
    rows = [line.split("\t") for line in (root / "out" / "seqlets.bed").read_text().splitlines()]
    a_rows = [(int(r[1]), int(r[2])) for r in rows if r[3] == best_a]
    covered = sum(any(a <= x and x + 10 <= b for x in planted_a) for a, b in a_rows)
    assert a_rows and covered >= 0.9 * len(a_rows)


def test_report_logos_meme_and_summary(modisco_run):
    from matplotlib.image import imread
    from memelite.io import read_meme

    root, _ = modisco_run
    out = root / "out"
    patterns = load_patterns(out / "modisco_results.h5")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_loci"] == N_LOCI and summary["window"] == LENGTH
    assert [p["name"] for p in summary["patterns"]] == [p.name for p in patterns]

    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 * len(patterns)
    for p in summary["patterns"]:
        assert p["name"] in page
        for rel in p["logos"].values():
            image = imread(out / rel)
            assert image.ndim == 3 and image.shape[0] > 50

    meme = read_meme(str(out / "patterns.meme"))
    assert list(meme) == [p.name for p in patterns]
    for p in patterns:
        start, end = p.core()
        np.testing.assert_allclose(meme[p.name].T, p.pfm[start:end], atol=1e-5)

    # TOMTOM (memelite) puts the right known motif first for the patterns that match the planted motifs
    table = match_motifs(patterns, KNOWN_MOTIFS)
    best = {p["name"]: p["tomtom"][0] for p in summary["patterns"]}
    for m in table:
        assert best[m.pattern]["target"] == m.known and best[m.pattern]["q_value"] < 0.05
        assert best[m.pattern]["target"] in page


def test_results_are_readable_by_tfmodisco_lite_itself(modisco_run, tmp_path):
    from modiscolite.io import write_meme_from_h5
    from modiscolite.util import MemeDataType

    root, _ = modisco_run
    write_meme_from_h5(str(root / "out" / "modisco_results.h5"), MemeDataType.CWM, str(tmp_path / "c.meme"), True)
    assert (tmp_path / "c.meme").read_text().count("MOTIF") == len(load_patterns(root / "out" / "modisco_results.h5"))


def test_too_short_window_is_an_input_error(tmp_path):
    make_scores(tmp_path / "s.h5", n_loci=5, length=LENGTH)
    with pytest.raises(InputError, match="shorter than one seqlet"):
        run_modisco(tmp_path / "s.h5", tmp_path / "o", window=20)


def test_a_rerun_leaves_no_stale_logo_and_a_users_directory_is_refused(modisco_run, tmp_path, capsys):
    root, _ = modisco_run
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)  # the previous run's output, marker included
    assert list((out / "logos").glob("*.png"))
    make_scores(tmp_path / "few.h5", n_loci=8, length=LENGTH, locus_spacing=SPACING)
    assert cli_main(["modisco", "--scores", str(tmp_path / "few.h5"), "--output-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    listed = {rel for p in summary["patterns"] for rel in p["logos"].values()}
    assert {f"logos/{p.name}" for p in (out / "logos").iterdir()} == listed
    assert summary["n_loci"] == 8 and sorted(p.name for p in tmp_path.iterdir()) == ["few.h5", "out"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert cli_main(["modisco", "--scores", str(tmp_path / "few.h5"), "--output-dir", str(mine)]) == 2
    assert "bpnetz did not write" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep"
