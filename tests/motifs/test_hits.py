"""FiNeMo bridge: hits of known motifs on synthetic score files with planted sites (no model, no modisco run).

The motifs are written by hand in tfmodisco-lite's results layout from the known PWMs (CWM = expected
contribution of the planted sites, PWM x log-odds), so the truth is independent of the code under test.
"""

from __future__ import annotations

import csv
import json
import sys

import h5py
import numpy as np
import pytest

from bpnetz.cli import main as cli_main
from bpnetz.errors import InputError
from bpnetz.motifs.hits import call_hits
from tests.shap.synthetic_motifs import KNOWN_MOTIFS, make_scores

N_LOCI, LENGTH, SPACING, CHROM = 200, 200, 1000, "chrSynthetic_long_name"
PATTERN_OF = {"motifA": "pos_patterns.pattern_0", "motifB": "pos_patterns.pattern_1"}
FLANK = 5


def write_known_modisco_h5(path) -> None:
    """A tfmodisco-lite results file whose patterns are the known motifs, padded with empty flanks."""
    with h5py.File(path, "w") as f:
        f.attrs["window_size"] = LENGTH
        group = f.create_group("pos_patterns")
        for name, pattern in PATTERN_OF.items():
            pwm = KNOWN_MOTIFS[name]
            pad = np.zeros((FLANK, 4))
            log_odds = np.log2(pwm / 0.25)
            g = group.create_group(pattern.split(".")[1])
            g["sequence"] = np.vstack([pad + 0.25, pwm, pad + 0.25])
            g["contrib_scores"] = np.vstack([pad, pwm * log_odds, pad])
            g["hypothetical_contribs"] = np.vstack([pad, log_odds, pad])
            s = g.create_group("seqlets")
            s["n_seqlets"] = np.array([100])
            for key in ("start", "end", "example_idx"):
                s[key] = np.zeros(0, dtype=int)
            s["is_revcomp"] = np.zeros(0, dtype=bool)


def read_tsv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def hits_run(tmp_path_factory):
    pytest.importorskip("finemo", reason="FiNeMo is the optional extra bpnetz[hits]; not installed here")
    root = tmp_path_factory.mktemp("hits")
    sites = make_scores(root / "counts_scores.h5", n_loci=N_LOCI, length=LENGTH, locus_spacing=SPACING,
                        chrom=CHROM, seed=3)
    write_known_modisco_h5(root / "modisco_results.h5")
    rc = cli_main(["hits", "--modisco", str(root / "modisco_results.h5"), "--scores", str(root / "counts_scores.h5"),
                   "--output-dir", str(root / "out"), "--alpha", "0.7"])
    assert rc == 0
    return root, sites


def test_hits_are_called_at_the_planted_sites(hits_run):
    root, sites = hits_run
    hits = read_tsv(root / "out" / "hits.tsv")
    truth = {(CHROM, s.locus * SPACING + s.start, PATTERN_OF[s.motif], s.strand) for s in sites}
    called = {(h["chr"], int(h["start"]), h["motif_name"], h["strand"]) for h in hits}
    recovered = truth & called
    assert len(recovered) >= 0.6 * len(truth), (len(recovered), len(truth))
    # a hit away from every planted site (any motif, any strand, within 2 bp) is a false positive
    planted = [(s.locus * SPACING + s.start) for s in sites]
    false = [h for h in hits if min(abs(int(h["start"]) - x) for x in planted) > 2]
    assert len(false) <= 0.05 * len(hits), false[:5]
    assert all(int(h["end"]) - int(h["start"]) == 10 for h in hits)  # the trimmed motif width


def test_summary_counts_agree_with_the_hits_table(hits_run, capsys):
    root, _ = hits_run
    hits = read_tsv(root / "out" / "hits.tsv")
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["n_hits"] == len(hits)
    assert summary["loci_with_hit"] == len({h["peak_id"] for h in hits})
    assert summary["hits_per_motif"] == {p: sum(h["motif_name"] == p for h in hits) for p in PATTERN_OF.values()}
    for name in ("hits_unique.tsv", "hits.bed", "peaks_qc.tsv", "motif_data.tsv"):
        assert (root / "out" / name).stat().st_size > 0


def test_peaks_file_places_and_names_the_regions(hits_run, tmp_path):
    root, _ = hits_run
    # narrowPeak rows whose summit is the centre of each scored locus: same coordinates, names from column 4
    with open(tmp_path / "peaks.narrowPeak", "w") as f:
        for i in range(N_LOCI):
            start = i * SPACING - 150
            f.write(f"{CHROM}\t{start}\t{start + 400}\tpeak{i}\t0\t.\t1\t1\t1\t{150 + LENGTH // 2}\n")
    call_hits(root / "modisco_results.h5", root / "counts_scores.h5", tmp_path / "out",
              peaks=tmp_path / "peaks.narrowPeak")
    ours = read_tsv(tmp_path / "out" / "hits.tsv")
    default = read_tsv(root / "out" / "hits.tsv")
    assert [(h["start"], h["motif_name"]) for h in ours] == [(h["start"], h["motif_name"]) for h in default]
    assert all(h["peak_name"] == f"peak{h['peak_id']}" for h in ours)

    with open(tmp_path / "short.bed", "w") as f:
        f.write(f"{CHROM}\t0\t200\n")
    with pytest.raises(InputError, match="1 peaks for 200 scored loci"):
        call_hits(root / "modisco_results.h5", root / "counts_scores.h5", tmp_path / "o2",
                  peaks=tmp_path / "short.bed")


def test_missing_finemo_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "finemo", None)  # makes `import finemo` raise ImportError
    with pytest.raises(InputError, match=r"pip install 'bpnetz\[hits\]'"):
        call_hits(tmp_path / "m.h5", tmp_path / "s.h5", tmp_path / "out")
