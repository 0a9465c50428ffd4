"""Readers and locus selection, checked against direct pyfaidx / pyBigWig reads and hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pyBigWig
import pyfaidx
import pytest

from bpnetz.build import loci as loci_mod
from bpnetz.errors import InputError
from bpnetz.genome import bigwig, fasta, intervals, sequence, windows
from bpnetz.store import schema
from tests.build.tiny_inputs import GENOME_SIZES, write_bigwig, write_fasta


def _codes(text: str) -> np.ndarray:
    """Base codes computed without sequence.encode: A/C/G/T in either case, everything else 4."""
    return np.array([{"A": 0, "C": 1, "G": 2, "T": 3}.get(ch, 4) for ch in text.upper()], dtype=np.uint8)


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    rng = np.random.default_rng(3)
    seqs = {c: "".join(rng.choice(list("ACGTacgtNRYKMn"), n)) for c, n in GENOME_SIZES.items()}
    path = tmp_path_factory.mktemp("fasta") / "g.fa"
    write_fasta(path, seqs, width=50)
    return path, seqs


def test_read_bed_narrowpeak_and_plain(tmp_path):
    path = tmp_path / "x.bed"
    path.write_text("track name=x\n# comment\nchr1\t10\t50\tp1\t0\t.\t0\t0\t0\t7\n\nchr2 5 9\n")
    bed = intervals.read_bed(path)
    assert bed.chrom.tolist() == ["chr1", "chr2"]
    assert bed.start.tolist() == [10, 5] and bed.end.tolist() == [50, 9]
    assert bed.summit_offset.tolist() == [7, -1]
    assert bed.name.tolist() == ["p1", "."]
    assert bed.line.tolist() == [3, 5]


def test_read_bed_whole_file_and_line_by_line_paths_agree(tmp_path):
    """The whole-column path (tab-separated files) and the line-by-line one give the same records."""
    rng = np.random.default_rng(3)
    lines = ["track x", "# comment", ""]
    for i in range(500):
        start = int(rng.integers(0, 10_000))
        extra = f"\tp{i}\t0\t.\t0\t0\t0\t{int(rng.integers(-1, 50))}" if i % 3 else ""
        lines.append(f"chr{i % 4}\t{start}\t{start + 50}{extra}")
    path = tmp_path / "many.bed"
    path.write_text("\r\n".join(lines) + "\r\n")
    assert intervals._file_columns(path, "x") is not None
    whole, by_line = intervals.read_bed(path), intervals._line_columns(path, "x")
    assert whole.fields == by_line[0] and whole.line.tolist() == by_line[1]
    np.testing.assert_array_equal(np.stack([whole.start, whole.end, whole.summit_offset]), by_line[2])
    assert whole.chrom.tolist() == [f"chr{i % 4}" for i in range(500)]


def _near_valid_bed(rng: np.random.Generator, lines: int) -> str:
    """A tab-separated file of one column count, with rare faults: bad integers, -1/-2 summits, short lines, empty
    names, non-ASCII text, CR line ends, comments, blank lines, a trailing tab, no final line end."""
    columns, rows = int(rng.choice([3, 4, 6, 10, 12])), []
    odd = ["-1", "-2", "+5", "007", "1e3", "9_491", "", " 5", "\u0663", "99999999999999999999", "x", "-0"]
    for i in range(lines):
        start = int(rng.integers(0, 1000))
        end = start + int(rng.integers(-2, 300))
        row = ["chr1" if rng.random() < 0.5 else "chrX", str(start), str(end), *(["", f"p{i}", "n\u00e9"][
            int(rng.choice(3, p=[0.2, 0.78, 0.02]))] if k == 3 else str(int(rng.integers(-1, max(end - start, 1))))
            if k == 9 else "0" for k in range(3, columns))]
        if rng.random() < 0.03:
            row[int(rng.integers(1, columns))] = str(rng.choice(odd))
        rows.append("\t".join(row[:int(rng.integers(1, columns))] if rng.random() < 0.01 else row))
    text = "\n".join(rows) + ("\n" if rng.random() < 0.8 else "")
    for fault, chance in (("\r", 0.03), ("#", 0.03), ("blank", 0.03), ("tab", 0.03)):
        if rng.random() < chance:
            text = {"\r": text.replace("\n", "\r\n"), "#": "# c\n" + text, "blank": text.replace("\n", "\n\n", 1),
                    "tab": text + "\t"}[fault]
    return text


def test_uniform_files_cut_by_numpy_equal_the_line_parser(tmp_path):
    """Files whose lines all hold the same number of tab-separated columns are cut by numpy; every file that path
    takes gives exactly the line-by-line parser's records (a file that parser refuses is never taken)."""
    rng = np.random.default_rng(11)
    taken = 0
    for i in range(400):
        path = tmp_path / f"f{i}.bed"
        path.write_text(_near_valid_bed(rng, int(rng.integers(1, 25))), encoding="utf-8")
        fast = intervals._uniform_rows(path)
        if fast is None:
            continue
        taken += 1
        want = intervals._FileRows.from_fields(*intervals._line_columns(path, "x"))  # raises if it refuses
        assert fast.lines == want.lines and fast.numbers.tolist() == want.numbers.tolist(), path.read_text()
        np.testing.assert_array_equal(fast.columns, want.columns)
        assert fast.chrom.tolist() == want.chrom.tolist() and fast.name.tolist() == want.name.tolist()
    assert 100 < taken < 400  # both paths exercised
    bed = intervals.read_bed(path)
    assert [list(row) for row in bed.fields] == [line.split("\t") for line in bed.fields.lines]


@pytest.mark.parametrize("text, where", [("chr1\t10\n", "line 1"), ("chr1\t1\t2\nchr1\tx\t5\n", "line 2"),
                                         ("chr1\t10\t5\n", "line 1"), ("# c\nchr1\t+5\t9\n", "line 2"),
                                         ("chr1\t1\t9_491\n", "line 1"), ("chr1\t1\t2\n\nchr1\t\u0663\t9\n", "line 3"),
                                         ("chr1\t1\t2\nchr1\t1\t9\tp\t0\t.\t0\t0\t0\t8\n", "line 2"),
                                         ("chr1\t1\t2\nchr1\t1\t9\tp\t0\t.\t0\t0\t0\t-2\n", "line 2"),
                                         ("chr1\t1\t2\nchr1\t1\t99999999999999999999\n", "line 2")])
def test_read_bed_malformed_names_file_and_line(tmp_path, text, where):
    path = tmp_path / "bad.bed"
    path.write_text(text)
    with pytest.raises(InputError, match=where) as err:
        intervals.read_bed(path)
    assert "bad.bed" in str(err.value)


def test_edge_files_of_the_numpy_path(tmp_path):
    """A file of one line end holds no record; a 20 kB name (bedtools' collapsed names) is read whole, with the
    chromosome names beside it."""
    (tmp_path / "nl.bed").write_text("\n")
    assert len(intervals.read_bed(tmp_path / "nl.bed")) == 0
    long_name = "n" * 20_000
    rows = [f"chr{i % 3}\t{i}\t{i + 5}\t{long_name if i == 7 else f'p{i}'}" for i in range(2_000)]
    (tmp_path / "long.bed").write_text("\n".join(rows) + "\n")
    bed = intervals.read_bed(tmp_path / "long.bed")
    assert bed.name[7] == long_name and bed.name[8] == "p8"
    assert bed.chrom.tolist()[:4] == ["chr0", "chr1", "chr2", "chr0"]


def test_a_damaged_gzip_bed_is_an_input_error(tmp_path):
    """Damaged deflate data (zlib.error, not an OSError) ends in the file's InputError, never a traceback."""
    import gzip

    data = bytearray(gzip.compress(b"".join(b"chr1\t%d\t%d\n" % (i, i + 9) for i in range(3000))))
    data[len(data) // 3:len(data) // 3 + 40] = bytes(range(40))
    path = tmp_path / "peaks.bed.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="peaks.bed.gz"):
        intervals.read_bed(path)


@pytest.mark.parametrize("row", ["chr1\t10\t50\tp\t0\t.", "chr1\t10\t50\tp\t0\t.\t0\t0\t0\t-1"])
def test_peaks_without_summit_are_an_error_with_file_line_and_fix(tmp_path, row):
    path = tmp_path / "peaks.narrowPeak"
    path.write_text("chr1\t0\t40\tp\t0\t.\t0\t0\t0\t20\n" + row + "\n")
    with pytest.raises(InputError) as err:
        loci_mod.read_loci(path, task=0, kind=schema.KIND_PEAK, source_file=0, allow_midpoint=False)
    message = str(err.value)
    assert "peaks.narrowPeak" in message and "line 2" in message and "column 10" in message
    assert "awk" in message  # suggests how to add the column


def test_background_bed_uses_midpoint_when_allowed(tmp_path):
    path = tmp_path / "bg.bed"
    path.write_text("chr1\t100\t201\nchr2\t10\t50\tn\t0\t.\t0\t0\t0\t5\n")
    table = loci_mod.read_loci(path, task=1, kind=schema.KIND_BACKGROUND, source_file=3, allow_midpoint=True)
    assert table.summit.tolist() == [150, 15]
    assert table.task.tolist() == [1, 1] and table.kind.tolist() == [1, 1]
    assert table.source_file.tolist() == [3, 3] and table.source_line.tolist() == [1, 2]


def test_fasta_windows_equal_pyfaidx_reads(genome):
    path, seqs = genome
    rng = np.random.default_rng(0)
    chroms = rng.choice(list(GENOME_SIZES), 300)
    length = 150
    starts = np.array([rng.integers(0, GENOME_SIZES[c] - length) for c in chroms])
    starts[:20] = starts[0]  # identical windows in one span
    chroms[:20] = chroms[0]
    handle = fasta.open_fasta(path)
    got = fasta.fasta_windows(handle, chroms.astype(object), starts, length)
    direct = pyfaidx.Fasta(str(path))
    for i, (c, s) in enumerate(zip(chroms, starts, strict=True)):
        text = direct[c][int(s):int(s) + length].seq
        np.testing.assert_array_equal(got[i], _codes(text))
        assert text == seqs[c][s:s + length]
    iupac = np.array([ch in "RYKMRYKM" for c, s in zip(chroms, starts, strict=True)
                      for ch in seqs[c][s:s + length]]).reshape(len(starts), length)
    assert iupac.any() and (got[iupac] == sequence.N_CODE).all()


def test_bigwig_windows_equal_pybigwig_values(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    sizes = {"chr1": 3000, "chr2": 2000}
    values = {c: np.where(rng.random(n) < 0.3, rng.poisson(3, n), np.nan).astype(float) for c, n in sizes.items()}
    path = tmp_path / "x.bw"
    write_bigwig(path, values, sizes)
    monkeypatch.setattr(windows, "MERGE_GAP", 50)  # exercise both merged and separate reads
    monkeypatch.setattr(windows, "MAX_SPAN", 400)
    length = 120
    chroms = rng.choice(list(sizes), 200)
    starts = np.array([rng.integers(-30, sizes[c] - length + 30) for c in chroms])  # some cross the ends
    got = bigwig.bigwig_windows(bigwig.open_bigwig(path), chroms.astype(object), starts, length)
    bw = pyBigWig.open(str(path))
    for i, (c, s) in enumerate(zip(chroms, starts, strict=True)):
        lo, hi = max(int(s), 0), min(int(s) + length, sizes[c])
        want = np.full(length, np.nan)
        want[lo - s:hi - s] = bw.values(c, lo, hi)
        np.testing.assert_array_equal(got[i], want.astype(np.float32))


def test_bigwig_has_data(tmp_path):
    sizes = {"chr1": 1000, "chr2": 1000}
    path = tmp_path / "x.bw"
    write_bigwig(path, {"chr1": np.r_[np.full(500, np.nan), np.ones(500)]}, sizes)
    handle = bigwig.open_bigwig(path)
    assert bigwig.bigwig_has_data(handle, ["chr1"])
    assert not bigwig.bigwig_has_data(handle, ["chr2", "chrX"])


def test_not_a_bigwig_is_an_input_error(tmp_path):
    path = tmp_path / "fake.bw"
    path.write_text("not a bigwig\n")
    with pytest.raises(InputError, match="fake.bw"):
        bigwig.open_bigwig(path)


def _table(chrom, summit, task=None, kind=None):
    n = len(summit)
    return loci_mod.LocusTable(
        chrom=np.array(chrom, dtype=object), start=np.array(summit) - 5, end=np.array(summit) + 5,
        summit=np.array(summit, dtype=np.int64), kind=np.array(kind or [0] * n, dtype=np.uint8),
        task=np.array(task or [0] * n, dtype=np.int16), name=np.array(["x"] * n, dtype=object),
        source_file=np.zeros(n, dtype=np.int16), source_line=np.arange(1, n + 1))


def test_select_loci_edges_duplicates_blacklist_and_order(tmp_path):
    layout = schema.StoreLayout(input_len=20, output_len=10, max_jitter=3, tasks=["0", "1"], tracks=[])
    # seq window of summit s is [s - 13, s + 13); chromosome length 100 -> summits 13..87 fit
    chrom = ["c1", "c1", "c1", "c1", "c1", "c1", "c2", "c2", "c9", "c1", "c1"]
    summit = [50, 12, 13, 87, 88, 50, 40, 60, 50, 50, 30]
    task = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    blacklist_bed = tmp_path / "bl.bed"
    blacklist_bed.write_text("c2\t70\t75\nc2\t72\t80\n")  # overlaps the window of summit 60 (47..73) only
    lengths = {"c1": 100, "c2": 100}
    sel = loci_mod.select_loci(_table(chrom, summit, task), layout, lengths, {"c9": "chrom_not_in_fasta"},
                               blacklist=intervals.read_blacklist(blacklist_bed))
    reasons = dict(zip(sel.rejected.source_line.tolist(), sel.reasons.tolist(), strict=True))
    assert reasons == {2: "window_past_chrom_end", 5: "window_past_chrom_end", 6: "duplicate",
                       8: "blacklist_overlap", 9: "chrom_not_in_fasta"}
    # kept: peaks ordered by chromosome, summit, task; duplicates keep the first (line 1, not line 6)
    assert list(zip(sel.kept.chrom.tolist(), sel.kept.summit.tolist(), sel.kept.source_line.tolist())) == [
        ("c1", 13, 3), ("c1", 30, 11), ("c1", 50, 1), ("c1", 50, 10), ("c1", 87, 4), ("c2", 40, 7)]
    only_c2 = loci_mod.select_loci(_table(chrom, summit, task), layout, lengths, {}, chroms=["c2"])
    assert only_c2.kept.summit.tolist() == [40, 60]
    assert only_c2.reasons.tolist() == ["chrom_not_selected"] * 9


@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_builders_fasta_reads_equal_the_sequence_up_to_chromosome_ends(tmp_path, monkeypatch, line_end):
    """read_windows (line ends dropped by translate, or the 2-D cut at a chromosome's last line) gives the codes of
    the written sequence, for windows inside lines, across lines and ending on each chromosome's last base."""
    rng = np.random.default_rng(5)
    seqs = {"chr1": "".join(rng.choice(list("ACGTacgtNRYKMn"), 41_037)),  # spans far from the end: translated
            "chr2": "".join(rng.choice(list("ACGTN"), 880))}
    path = tmp_path / "g.fa"
    with open(path, "w", newline="") as handle:
        for chrom, seq in seqs.items():
            handle.write(f">{chrom} x{line_end}")
            handle.writelines(seq[i:i + 50] + line_end for i in range(0, len(seq), 50))
    length = 120
    chroms, starts = [], []
    for c in ("chr1", "chr2"):
        ends = [len(seqs[c]) - length, len(seqs[c]) - length - 7, 0]  # the last bases, near them, the first
        chroms += [c] * 41
        starts += [*rng.integers(0, min(len(seqs[c]), 20_000) - length, 38).tolist(), *ends]
    chroms, starts = np.array(chroms, dtype=object), np.array(starts, dtype=np.int64)
    handle = fasta.open_fasta(path)
    cut, spans = [], []
    line_codes, span_codes = fasta._line_codes, fasta._span_codes
    monkeypatch.setattr(fasta, "_line_codes", lambda *args: cut.append(1) or line_codes(*args))
    monkeypatch.setattr(fasta, "_span_codes", lambda *args: spans.append(1) or span_codes(*args))
    got = fasta.read_windows(handle, chroms, starts, length)
    for i, (c, s) in enumerate(zip(chroms, starts, strict=True)):
        np.testing.assert_array_equal(got[i], _codes(seqs[c][int(s):int(s) + length]))
    assert 0 < len(cut) < len(spans)  # both ways of coding a span were taken
