"""Variants (VCF or TSV) and the reference / alternative input windows centred on them.

Input: a VCF (plain or gzipped; CHROM POS ID REF ALT, 1-based POS) or a TSV with a header naming the columns
``chrom pos ref alt`` (``id`` optional; POS 1-based as in VCF). A multi-allelic site (ALT ``A,T``) is split into
one variant per alternative allele (``allele`` = 1, 2, …, the VCF's allele index). A malformed line (too few
fields, a POS that is not a positive integer) is an InputError naming the line; every well-formed line gives one
row per allele in the output, scored or with the reason it was not (never dropped):

- ``unsupported_allele``: symbolic (``<DEL>``), breakend, ``*`` or missing (``.``) ALT;
- ``non_acgt_allele``: REF or ALT holds a letter other than A, C, G, T (IUPAC codes, N);
- ``indel_too_long``: REF or ALT longer than a quarter of the input window;
- ``unknown_chrom``: the chromosome is not in the FASTA (or not in ``--chrom-sizes`` when given);
- ``ref_mismatch``: REF differs from the FASTA at POS (the message gives the FASTA's bases);
- ``near_chrom_end``: the input window (plus the bases a deletion pulls in) crosses a chromosome end;
- ``n_in_window``: the reference or alternative window holds N bases (the model never saw them in training).

Windows: the input window starts at ``pos0 − input_len // 2`` (pos0 = POS − 1), so the variant's first base sits
at the window centre. The alternative window is the reference sequence with REF replaced by ALT, cut or extended
on the right to input_len: bases left of the variant keep their positions in both alleles (so profiles compare
position by position on the left; an indel shifts the right flank by len(ALT) − len(REF)). A deletion reads that
many extra bases from the FASTA. Comparison of REF with the FASTA is case-insensitive (soft-masking).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpnetz.errors import InputError
from bpnetz.genome.intervals import data_lines, open_text
from bpnetz.genome.sequence import N_CODE, decode, encode

OK = "ok"
TSV_COLUMNS = ("chrom", "pos", "ref", "alt")


@dataclass
class Variant:
    """One alternative allele of one input line."""

    id: str
    chrom: str
    pos: int  # 1-based, as in VCF
    ref: str
    alt: str
    allele: int  # 1-based index among the line's ALT alleles
    line: int
    status: str = OK
    reason: str = ""

    def reject(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason


@dataclass
class AlleleWindows:
    """Base codes of the scored variants' windows: ``ref``/``alt`` (n, input_len), rows of ``index``."""

    index: np.ndarray  # positions in the variant list
    ref: np.ndarray
    alt: np.ndarray
    chrom: np.ndarray
    in_start: np.ndarray  # genomic start of the input windows
    extra: dict = field(default_factory=dict)


def _is_vcf(path: Path) -> bool:
    if path.name.endswith((".vcf", ".vcf.gz", ".vcf.bgz")):
        return True
    with open_text(path, "variant file") as handle:
        return handle.readline().startswith("##fileformat=VCF")


def read_variants(path: str | Path) -> list[Variant]:
    """Every allele of every variant line of a VCF or TSV (see the module docstring)."""
    path = Path(path)
    vcf = _is_vcf(path)
    columns = None if not vcf else {"chrom": 0, "pos": 1, "id": 2, "ref": 3, "alt": 4}
    if not vcf:
        columns = _tsv_columns(path)
    variants: list[Variant] = []
    header_seen = vcf
    for number, fields in data_lines(path, "variant file"):
        if not header_seen:  # the TSV header line
            header_seen = True
            continue
        if len(fields) <= max(columns.values()):
            raise InputError(f"line {number}: {len(fields)} fields, expected at least {max(columns.values()) + 1}.",
                             path=path, fix="Each line needs CHROM, POS, ID, REF and ALT (VCF) or the TSV's "
                                            "header columns chrom, pos, ref, alt, tab-separated.")
        pos_text = fields[columns["pos"]]
        if not pos_text.isdigit() or int(pos_text) < 1:
            raise InputError(f"line {number}: POS {pos_text!r} is not a positive integer.", path=path,
                             fix="POS is the 1-based position of the first REF base.")
        chrom, ref = fields[columns["chrom"]], fields[columns["ref"]].upper()
        name = fields[columns["id"]] if "id" in columns else "."
        alts = fields[columns["alt"]].split(",")
        for k, alt in enumerate(alts, start=1):
            variant = Variant(name if name != "." else f"{chrom}:{pos_text}:{ref}>{alt}", chrom, int(pos_text),
                              ref, alt.upper(), k, number)
            _check_alleles(variant)
            variants.append(variant)
    if not variants:
        raise InputError("holds no variants.", path=path, fix="Pass a VCF or a TSV with chrom, pos, ref, alt.")
    return variants


def _tsv_columns(path: Path) -> dict[str, int]:
    for number, fields in data_lines(path, "variant file"):
        names = [f.strip().lower() for f in fields]
        missing = [c for c in TSV_COLUMNS if c not in names]
        if missing:
            raise InputError(f"line {number}: the TSV header lacks the column(s) {', '.join(missing)} "
                             f"(found {', '.join(names)}).", path=path,
                             fix="Start a TSV with the header 'chrom pos ref alt' (id optional), or pass a VCF.")
        return {c: names.index(c) for c in (*TSV_COLUMNS, "id") if c in names}
    raise InputError("is empty.", path=path, fix="Pass a VCF or a TSV with chrom, pos, ref, alt.")


def _check_alleles(variant: Variant) -> None:
    alt = variant.alt
    if alt in ("*", ".", "") or alt.startswith("<") or "[" in alt or "]" in alt:
        variant.reject("unsupported_allele", f"ALT {alt!r} is not a sequence (symbolic, breakend, * or missing)")
    elif any(b not in "ACGT" for b in variant.ref + alt):
        variant.reject("non_acgt_allele", f"REF {variant.ref!r} / ALT {alt!r} holds letters other than A, C, G, T")


def allele_windows(variants: list[Variant], fasta_path: str | Path, input_len: int,
                   listed: dict[str, int] | None = None) -> AlleleWindows:
    """Check every still-scorable variant against the FASTA (rejecting with a reason) and build the windows;
    with ``listed`` (chrom.sizes), chromosomes not listed there are unknown too."""
    from bpnetz.genome.fasta import fasta_lengths, open_fasta

    half, max_allele = input_len // 2, max(1, input_len // 4)
    rows = []
    with open_fasta(fasta_path) as fasta:
        lengths = fasta_lengths(fasta)
        for i, v in enumerate(variants):
            if v.status != OK:
                continue
            if max(len(v.ref), len(v.alt)) > max_allele:
                v.reject("indel_too_long", f"REF/ALT longer than {max_allele} bp (a quarter of the input window)")
                continue
            if v.chrom not in lengths or (listed is not None and v.chrom not in listed):
                where = "the FASTA" if v.chrom not in lengths else "the chromosome sizes"
                v.reject("unknown_chrom", f"chromosome {v.chrom!r} is not in {where}")
                continue
            pos0 = v.pos - 1
            start, end = pos0 - half, pos0 - half + input_len + max(0, len(v.ref) - len(v.alt))
            if start < 0 or end > lengths[v.chrom]:
                v.reject("near_chrom_end", f"the input window {v.chrom}:{start}-{end} crosses a chromosome end "
                                           f"(length {lengths[v.chrom]})")
                continue
            codes = encode(str(fasta[v.chrom][start:end]))
            found = codes[half:half + len(v.ref)]
            if not np.array_equal(found, encode(v.ref)):
                v.reject("ref_mismatch", f"REF {v.ref} differs from the FASTA's {decode(found)} at "
                                         f"{v.chrom}:{v.pos}")
                continue
            alt = np.concatenate([codes[:half], encode(v.alt), codes[half + len(v.ref):]])[:input_len]
            ref = codes[:input_len]
            n_bases = int(max((ref == N_CODE).sum(), (alt == N_CODE).sum()))
            if n_bases:
                v.reject("n_in_window", f"the input window holds {n_bases} N bases")
                continue
            rows.append((i, ref, alt, v.chrom, start))
    if not rows:
        return AlleleWindows(np.zeros(0, dtype=np.int64), np.zeros((0, input_len), np.uint8),
                             np.zeros((0, input_len), np.uint8), np.zeros(0, dtype=object), np.zeros(0, np.int64))
    index, ref, alt, chrom, start = zip(*rows, strict=True)
    return AlleleWindows(np.array(index), np.stack(ref), np.stack(alt), np.array(chrom, dtype=object),
                         np.array(start, dtype=np.int64))

