"""Independent computations for the in-silico tests: truth sites, variant files, direct model calls."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyBigWig
import pyfaidx

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def held_out_sites(experiment: Path, chrom: str = "chr1", min_affinity: float = 0.3) -> list[dict]:
    """Bound planted sites of the held-out chromosome inside a called peak, each with the genomic position of
    its strongest base (largest probability in the motif matrix, on the site's strand) and the peak."""
    motifs = json.loads((experiment / "truth/motifs.json").read_text())
    peaks = {}
    for line in (experiment / "data/peaks.bed").read_text().splitlines():
        f = line.split("\t")
        peaks[f[3]] = (f[0], int(f[1]), int(f[2]))
    with open(experiment / "truth/sites.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    sites = []
    for r in rows:
        if (r["chrom"] != chrom or r["bound"] != "1" or float(r["affinity"]) < min_affinity
                or r["peak_name"] not in peaks):
            continue
        pwm = np.array(motifs[r["motif"]])
        if r["strand"] == "-":
            pwm = pwm[::-1, ::-1]
        column = int(pwm.max(axis=1).argmax())
        sites.append({**r, "start": int(r["start"]), "end": int(r["end"]), "strongest": int(r["start"]) + column,
                      "weakest_base": "ACGT"[int(pwm[column].argmin())], "peak": peaks[r["peak_name"]]})
    return sites


def site_and_random_variants(experiment: Path, path: Path, seed: int = 0, chrom: str = "chr1") -> Path:
    """A TSV: for each held-out site, the SNV of its strongest base to the motif's least likely base ('site…'),
    and an SNV at a random position of the same peak at least 10 bp from every planted site ('random…')."""
    sites = held_out_sites(experiment, chrom)
    with open(experiment / "truth/sites.tsv") as handle:
        every = [(r["chrom"], int(r["start"]), int(r["end"])) for r in csv.DictReader(handle, delimiter="\t")]
    fasta = pyfaidx.Fasta(str(experiment / "genome.fa"))
    rng = np.random.default_rng(seed)
    lines = ["id\tchrom\tpos\tref\talt"]
    for k, s in enumerate(sites):
        p = s["strongest"]
        lines.append(f"site{k}\t{s['chrom']}\t{p + 1}\t{str(fasta[s['chrom']][p:p + 1]).upper()}\t{s['weakest_base']}")
        chrom, lo, hi = s["peak"]
        while True:
            q = int(rng.integers(lo, hi))
            if not any(c == chrom and a - 10 <= q < b + 10 for c, a, b in every):
                break
        base = str(fasta[chrom][q:q + 1]).upper()
        lines.append(f"random{k}\t{chrom}\t{q + 1}\t{base}\t{rng.choice([b for b in 'ACGT' if b != base])}")
    path.write_text("\n".join(lines) + "\n")
    return path


def onehot_text(text: str) -> np.ndarray:
    return np.array([[float(c == b) for b in "ACGT"] for c in text.upper()], dtype=np.float32)


def direct_bias(experiment: Path, chrom: str, out_start: int, output_len: int) -> dict[str, np.ndarray]:
    """Bias inputs read straight from the simulation's control bigWigs (plus, minus: raw values, NaN as 0) over
    [out_start, out_start + output_len): profile_bias (1, L, 2) and counts_bias (1, 2)."""
    bias = []
    for name in ("control_plus", "control_minus"):
        with pyBigWig.open(str(experiment / f"data/{name}.bw")) as bw:
            bias.append(np.nan_to_num(np.array(bw.values(chrom, out_start, out_start + output_len))))
    profile = np.stack(bias, axis=1)[None].astype(np.float32)
    return {"profile_bias": profile, "counts_bias": np.log1p(profile.sum(axis=1))}


def direct_logcount(model, experiment: Path, sequences: list[str], chrom: str, out_start: int,
                    output_len: int, rc_average: bool = True) -> np.ndarray:
    """Task-0 log counts of sequences (reverse-complement averaged unless told not) with :func:`direct_bias`."""
    bias = direct_bias(experiment, chrom, out_start, output_len)
    profile, counts = bias["profile_bias"], bias["counts_bias"]
    rc_profile = profile[:, ::-1, ::-1]  # positions reversed, plus <-> minus
    forward = np.stack([onehot_text(s) for s in sequences])
    reverse = np.stack([onehot_text(s.translate(COMPLEMENT)[::-1]) for s in sequences])
    n = len(sequences)
    out_f = model.predict_on_batch({"sequence": forward, "profile_bias": np.repeat(profile, n, 0),
                                    "counts_bias": np.repeat(counts, n, 0)})
    if not rc_average:
        return np.asarray(out_f["logcounts"])[:, 0]
    out_r = model.predict_on_batch({"sequence": reverse, "profile_bias": np.repeat(rc_profile, n, 0),
                                    "counts_bias": np.repeat(counts[:, ::-1], n, 0)})
    return (np.asarray(out_f["logcounts"])[:, 0] + np.asarray(out_r["logcounts"])[:, 0]) / 2
