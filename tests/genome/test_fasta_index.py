"""The FASTA index is checked for what it indexes: a stale or mismatching ``.fai`` never shifts a base (a fresh
index is used, the user's file is left as it is), and compressed FASTA is refused with the fix."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import zarr

from bpnetz.errors import InputError
from bpnetz.genome.fasta import index_problem, open_fasta
from bpnetz.genome.sequence import encode
from bpnetz.store import schema
from tests.build.tiny_inputs import write_fasta, write_tiny_experiment


def parse_fasta(path: Path) -> dict[str, str]:
    """Sequences of a FASTA read line by line, without any index."""
    genome: dict[str, list[str]] = {}
    name = None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            genome[name] = []
        elif name is not None:
            genome[name].append(line.strip())
    return {n: "".join(parts) for n, parts in genome.items()}


def lengthen_headers(experiment, extra: str = "xx") -> bytes:
    """Index the FASTA, then rewrite it with every header ``extra`` longer and make the index look newer."""
    open_fasta(experiment.fasta).close()
    fai = Path(f"{experiment.fasta}.fai")
    text = experiment.fasta.read_text().replace(" tiny test chromosome", f" tiny test chromosome{extra}")
    experiment.fasta.write_text(text)
    later = experiment.fasta.stat().st_mtime + 10
    os.utime(fai, (later, later))
    return fai.read_bytes()


def test_a_stale_index_with_longer_headers_never_shifts_a_base(tmp_path, capsys):
    from bpnetz.build.builder import build_store

    experiment = write_tiny_experiment(tmp_path / "exp", seed=5)
    before = lengthen_headers(experiment)
    fai = Path(f"{experiment.fasta}.fai")
    assert "not the header of 'chr1'" in index_problem(experiment.fasta, fai)
    build_store(**experiment.build_args(tmp_path / "store.zarr"))
    assert f"notice: {fai} does not match the FASTA" in capsys.readouterr().err
    assert fai.read_bytes() == before  # the user's index is left as it was
    group = zarr.open_group(str(tmp_path / "store.zarr"), mode="r")
    lay = schema.layout(group)
    genome = parse_fasta(experiment.fasta)
    chrom, summit, seq = group["chrom"][:], group["summit"][:], group["seq"][:]
    starts = [lay.seq_window(int(s))[0] for s in summit]
    expected = np.stack([encode(genome[c][s:s + lay.seq_len]) for c, s in zip(chrom, starts, strict=True)])
    np.testing.assert_array_equal(seq, expected)


def test_an_index_older_than_the_fasta_is_replaced_by_a_fresh_one(tmp_path, capsys):
    genome = {"a": "ACGT" * 40, "b": "TTGCA" * 9}
    fasta = tmp_path / "g.fa"
    write_fasta(fasta, genome, width=50)
    fai = Path(f"{fasta}.fai")
    open_fasta(fasta).close()
    earlier = fasta.stat().st_mtime - 10
    os.utime(fai, (earlier, earlier))
    assert index_problem(fasta, fai) == "is older than the FASTA"
    handle = open_fasta(fasta)
    assert handle["b"][:] == genome["b"] and handle["a"][37:41] == genome["a"][37:41]
    handle.close()
    assert "is older than the FASTA" in capsys.readouterr().err
    assert fai.stat().st_mtime == earlier  # not rewritten


@pytest.mark.parametrize("edit, problem", [
    (lambda f: f, None),
    (lambda f: f.replace("\t50\t51", "\t60\t61", 1), "lines are not 60 bases long"),
    (lambda f: f.replace("a\t160\t", "a\t150\t", 1), "do not end where the next record begins"),
    (lambda f: f.replace("b\t45\t", "b\t50\t", 1), "do not end where the next record begins"),
    (lambda f: "a\tx\n" + f, "line 1 is not a FASTA index line"),
    (lambda f: f.replace("a\t", "c\t", 1), "is not the header of 'c'"),
])
def test_each_index_line_is_checked_against_the_fasta(tmp_path, edit, problem):
    fasta = tmp_path / "g.fa"
    write_fasta(fasta, {"a": "ACGT" * 40, "b": "TTGCA" * 9}, width=50)
    fai = tmp_path / "g.fa.fai"
    fai.write_text(edit("a\t160\t24\t50\t51\nb\t45\t212\t50\t51\n"))  # what samtools faidx writes
    found = index_problem(fasta, fai)
    assert found == problem if problem is None else problem in found


def test_compressed_fasta_is_refused_with_the_fix(tmp_path):
    plain = tmp_path / "g.fa.gz"
    with gzip.open(plain, "wt") as handle:
        handle.write(">a\nACGT\n")
    with pytest.raises(InputError, match="gzip-compressed.*gunzip -k g.fa.gz") as info:
        open_fasta(plain)
    assert str(plain) in str(info.value)
    body = zlib.compressobj(wbits=-15)
    data = body.compress(b">a\nACGT\n") + body.flush()
    bgzf = tmp_path / "b.fa.gz"  # one BGZF block: gzip with the 'BC' extra field
    bgzf.write_bytes(b"\x1f\x8b\x08\x04\0\0\0\0\0\xff\x06\0BC\x02\0" + (len(data) + 25).to_bytes(2, "little")
                     + data + zlib.crc32(b">a\nACGT\n").to_bytes(4, "little") + (8).to_bytes(4, "little"))
    assert gzip.decompress(bgzf.read_bytes()) == b">a\nACGT\n"
    with pytest.raises(InputError, match="bgzip-compressed.*bgzip -d -k b.fa.gz"):
        open_fasta(bgzf)
