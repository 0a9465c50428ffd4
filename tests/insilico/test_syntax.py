"""``bpnetz syntax`` on the trained tiny model: an inserted planted motif raises the predicted counts (its
shuffled letters do not, as much); the backgrounds are seeded dinucleotide shuffles of the regions (recorded);
the cooperativity curve of two planted motifs is largest within the simulator's cooperative range
(bpnetz/simulate/loci.py: PAIR_CLOSE, a boost falling linearly to zero at 50 bp) and zero beyond the model's reach;
with a planted --cooperative-spacing the curve computed with the simulation's own expected reads peaks exactly there
(the tiny model learns no such interaction in its budget: scripts/bench_insilico.py --spacings checks trained
models at demo size)."""

from __future__ import annotations

from itertools import pairwise

import h5py
import numpy as np
import pandas as pd
import pyfaidx

from bpnetz.cli import run_guarded
from bpnetz.cli.syntax import main as syntax_main
from bpnetz.genome.sequence import decode
from bpnetz.simulate.loci import PAIR_CLOSE
from tests.insilico.trained import INPUT_LEN


def run_syntax_cli(trained, out, motifs, *extra):
    argv = ["--model", str(trained.model_dir), "--regions", str(trained.experiment / "data/peaks.bed"),
            "--reference-genome", str(trained.experiment / "genome.fa"), "--output-dir", str(out), *extra]
    for motif in motifs:
        argv += ["--motif", motif]
    return run_guarded(syntax_main, argv)


def dinucleotides(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for a, b in pairwise(text):
        counts[a + b] = counts.get(a + b, 0) + 1
    return counts


def test_single_motif_effect_and_recorded_backgrounds(trained, tmp_path):
    meme = trained.experiment / "truth/motifs.meme"
    scrambled = "".join(np.random.default_rng(0).permutation(list("GATGACTCATC")))
    args = ("--n-backgrounds", "8", "--seed", "11")
    assert run_syntax_cli(trained, tmp_path / "a", [f"{meme}:ap1"], *args) == 0
    assert run_syntax_cli(trained, tmp_path / "b", [scrambled], *args) == 0
    effect = pd.read_csv(tmp_path / "a/syntax.tsv", sep="\t").loc[0]
    control = pd.read_csv(tmp_path / "b/syntax.tsv", sep="\t").loc[0]
    assert effect.motif == "ap1" and effect.n_backgrounds == 8
    assert effect.mean_logfc > 0.3 and effect.mean_logfc > 3 * abs(control.mean_logfc)
    with h5py.File(tmp_path / "a/syntax.h5") as fa, h5py.File(tmp_path / "b/syntax.h5") as fb:
        assert fa.attrs["seed"] == 11 and np.array_equal(fa["backgrounds/sequence"][:], fb["backgrounds/sequence"][:])
        sequence, chrom = fa["backgrounds/sequence"][0], fa["backgrounds/source_chrom"][0].decode()
        start = int(fa["backgrounds/source_start"][0])
        assert fa["motifs/ap1/sequence"][()].decode() == "GATGACTCATC"
    source = str(pyfaidx.Fasta(str(trained.experiment / "genome.fa"))[chrom][start:start + INPUT_LEN]).upper()
    shuffled = decode(sequence)
    assert shuffled != source and dinucleotides(shuffled) == dinucleotides(source)


def test_spacing_curve_lies_in_the_cooperative_range(trained, tmp_path, capsys):
    meme = trained.experiment / "truth/motifs.meme"
    assert run_syntax_cli(trained, tmp_path / "s", [f"{meme}:gata", f"{meme}:ap1"], "--n-backgrounds", "8",
                          "--max-spacing", "90") == 0
    assert "largest cooperativity excess" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "s/spacing.tsv", sep="\t")
    spacings = sorted(set(table.spacing))
    assert spacings[0] == 11 - 11 // 2 + 11 // 2 and spacings[-1] == 90  # closest without overlap: 11 bp motifs
    assert len(table) == len(spacings) * 2
    for _, curve in table.groupby("orientation"):
        peak = curve.spacing[curve.excess_mean.idxmax()]
        far = curve[curve.spacing > 70].excess_mean
        print(f"peak excess {curve.excess_mean.max():+.3f} at {peak} bp; beyond 70 bp |excess| <= {far.abs().max():.4f}")
        assert peak < PAIR_CLOSE
        assert curve.excess_mean.max() > 5 * far.abs().max()
    assert (tmp_path / "s/spacing.png").stat().st_size > 10_000


def test_oracle_spacing_curve_peaks_at_the_planted_cooperative_spacing(make_experiment):
    """The syntax experiment's spacing (centre to centre) is the simulator's: with the simulation's own expected
    reads (tests/insilico/oracle.py) as the model, the cooperativity excess of GATA and AP-1 peaks exactly at the
    planted --cooperative-spacing in both orientations, standing out of a flat curve away from it (negative: two
    sites' reads add, so their log counts add less than the sites' own)."""
    from bpnetz.insilico.syntax import log_totals, make_backgrounds, motif_codes, spacing_curve, spacing_range
    from bpnetz.simulate.variation import Variation
    from tests.insilico.oracle import Oracle

    for planted in (17, 30):
        exp = make_experiment(variation=Variation(cooperative_spacing=planted, cooperative_width=2.0))
        oracle = Oracle.of(exp, INPUT_LEN)
        bg = make_backgrounds(exp / "data/peaks.bed", exp / "genome.fa", INPUT_LEN, 3, seed=5)
        base = log_totals(oracle, bg.codes, {})[0]
        gata, ap1 = (motif_codes(f"{exp / 'truth/motifs.meme'}:{name}")[1] for name in ("gata", "ap1"))
        spacings = spacing_range(gata, ap1, 60, INPUT_LEN)
        for orientation, parts in spacing_curve(oracle, bg, {}, base, gata, ap1, spacings).items():
            excess = parts["excess"][:, 0].mean(axis=1)
            assert spacings[excess.argmax()] == planted, orientation
            far = excess[np.abs(spacings - planted) > 10]
            assert excess.max() - far.max() > 1.0 and far.max() - far.min() < 0.01


def test_bad_motifs_are_refused_with_the_fix(trained, tmp_path, capsys):
    meme = trained.experiment / "truth/motifs.meme"
    for motif, message in (("GATAXG", "neither A/C/G/T text nor an existing file"),
                           (f"{meme}:nope", "no motif 'nope' (it holds gata, ap1, ctcf)"),
                           ("A" * 150, "more than a quarter of the model's input")):
        assert run_syntax_cli(trained, tmp_path / "x", [motif]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_motif_sources_text_meme_and_modisco_pattern(tmp_path):
    from bpnetz.genome.motif import format_meme
    from bpnetz.insilico.syntax import motif_codes

    pfm = np.eye(4)[[2, 0, 3, 0, 0, 2]] * 0.9 + 0.025  # GATAAG
    meme = tmp_path / "m.meme"
    meme.write_text(format_meme({"first": pfm[::-1, ::-1], "gata": pfm}))
    assert decode(motif_codes(f"{meme}:gata")[1]) == "GATAAG"
    assert motif_codes(str(meme))[0] == "first" and decode(motif_codes(str(meme))[1]) == "CTTATC"
    assert decode(motif_codes("gataag")[1]) == "GATAAG"
    h5 = tmp_path / "modisco_results.h5"
    flank = np.full((3, 4), 0.25)
    sequence = np.vstack([flank, pfm, flank])  # a tfmodisco-lite pattern: uninformative flanks around the core
    contrib = (sequence - 0.25) * np.r_[np.zeros(3), np.ones(6), np.zeros(3)][:, None]
    with h5py.File(h5, "w") as f:
        for name, scale in (("pattern_0", 1.0), ("pattern_1", 0.5)):
            g = f.create_group(f"pos_patterns/{name}")
            g["sequence"], g["contrib_scores"], g["hypothetical_contribs"] = sequence, contrib * scale, contrib
            g["seqlets/n_seqlets"] = np.array([30])
    assert motif_codes(str(h5))[0] == "pos_patterns.pattern_0"
    name, codes = motif_codes(f"{h5}:pos_patterns.pattern_1")
    assert name == "pos_patterns.pattern_1" and decode(codes) == "GATAAG"
