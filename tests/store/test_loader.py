"""The store stream and its tf.data adapter against direct pyfaidx / pyBigWig reads of the files a hand-made
store was written from."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyBigWig
import pyfaidx
import pytest

from bpnetz.config import Split
from bpnetz.errors import InputError
from bpnetz.model.data import iterate_here, make_dataset, stream_dataset
from bpnetz.store import stream as stream_module
from bpnetz.store.stream import LocusStream
from tests.store.tiny_store import (
    BACKGROUND_RATIO,
    BIASES,
    INPUT_LEN,
    MAX_JITTER,
    OUTPUT_LEN,
    SIGNALS,
    make_tiny_store,
)

SPLIT = Split(val=["chr2"], test=["chr3"])  # train: chr1, chr4
BATCH = 5
COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_store(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def files(tiny):
    fasta = pyfaidx.Fasta(str(tiny.fasta))
    bigwigs = {name: pyBigWig.open(str(path)) for name, path in tiny.bigwigs.items()}
    yield fasta, bigwigs
    fasta.close()
    for bw in bigwigs.values():
        bw.close()


def epoch(stream, with_index=True):
    """One pass over the dataset as numpy batches."""
    return list(stream_dataset(stream, with_index=with_index).as_numpy_iterator())


def decode_one_hot(x: np.ndarray) -> str:
    assert set(np.unique(x)) <= {0.0, 1.0} and x.sum(axis=-1).max() <= 1
    return "".join("ACGT"[int(np.argmax(r))] if r.sum() else "N" for r in x)


def expected_example(tiny, files, row, jitter, flip):
    """What the model should see for a store row at a jitter, read straight from the FASTA and bigWigs."""
    fasta, bigwigs = files
    chrom, summit = tiny.loci[row]["chrom"], tiny.loci[row]["summit"]
    s0 = summit - INPUT_LEN // 2 + jitter
    seq = "".join(b if b in "ACGT" else "N" for b in str(fasta[chrom][s0:s0 + INPUT_LEN]).upper())
    p0 = summit - OUTPUT_LEN // 2 + jitter

    def read(names):
        return np.stack([np.asarray(bigwigs[n].values(chrom, p0, p0 + OUTPUT_LEN)) for n in names], axis=1)

    profile, bias = read([n for n, _, _ in SIGNALS]), read([n for n, _, _ in BIASES])
    if flip:  # the other strand: reverse complement, + and - swapped (tracks 0 <-> 1)
        seq = seq.translate(COMPLEMENT)[::-1]
        profile, bias = profile[::-1][:, [1, 0, 2]], bias[::-1][:, [1, 0, 2]]
    logcounts = [np.log(2 + profile[:, 0].sum() + profile[:, 1].sum()), np.log(1 + profile[:, 2].sum())]
    return seq, profile, bias, np.log(1 + bias.sum(axis=0)), np.array(logcounts)


def examples(batches):
    """Flatten batches to a list of per-example dicts."""
    out = []
    for x, y, w, meta in batches:
        for i in range(len(meta["row"])):
            out.append({"row": int(meta["row"][i]), "jitter": int(meta["jitter"][i]), "flip": bool(meta["flip"][i]),
                        "sequence": x["sequence"][i], "profile_bias": x.get("profile_bias", [None] * 99)[i],
                        "counts_bias": x.get("counts_bias", [None] * 99)[i], "profile": y["profile"][i],
                        "logcounts": y["logcounts"][i], "w_profile": w["profile"][i],
                        "w_logcounts": w["logcounts"][i]})
    return out


def rows_where(tiny, chroms, kind=None, task=None):
    return {i for i, x in enumerate(tiny.loci) if x["chrom"] in chroms and (kind is None or x["kind"] == kind)
            and (task is None or x["task"] == task)}


def test_train_examples_match_direct_reads_at_the_jittered_window(tiny, files):
    stream = LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, reverse_complement="random", seed=3)
    found = examples(epoch(stream))
    for ex in found:
        seq, profile, bias, counts_bias, logcounts = expected_example(tiny, files, ex["row"], ex["jitter"], ex["flip"])
        assert decode_one_hot(ex["sequence"]) == seq
        np.testing.assert_allclose(ex["profile"], profile)
        np.testing.assert_allclose(ex["profile_bias"], bias)
        np.testing.assert_allclose(ex["counts_bias"], counts_bias, rtol=1e-6)
        np.testing.assert_allclose(ex["logcounts"], logcounts, rtol=1e-6)
    jitters = [ex["jitter"] for ex in found]
    assert min(jitters) >= -MAX_JITTER and max(jitters) <= MAX_JITTER and len(set(jitters)) > 3
    assert {ex["flip"] for ex in found} == {False, True}


@pytest.mark.parametrize("reading", [{"cache": True}, {"cache": False, "shuffle_loci": 40, "batches_per_element": 2}],
                         ids=["cached", "streamed-small-elements"])
def test_doubled_batches_are_followed_by_their_reverse_complement(tiny, files, reading):
    stream = LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, reverse_complement="double", seed=1,
                                **reading)
    batches = epoch(stream)
    assert len(batches) == stream.n_batches == 2 * -(-stream.n_loci // BATCH)
    sizes = [len(m["row"]) for *_, m in batches]
    assert sizes[:-2] == [BATCH] * (len(sizes) - 2) and sizes[-1] == sizes[-2] == stream.n_loci - BATCH * (
        (len(sizes) - 2) // 2)
    assert sorted(r for *_, m in batches[::2] for r in m["row"]) == sorted(stream.selection.rows[
        stream.selection.epoch_positions(0)])
    for (x, y, _, m), (rx, ry, _, rm) in zip(batches[::2], batches[1::2]):
        assert not m["flip"].any() and rm["flip"].all()
        np.testing.assert_array_equal(m["row"], rm["row"])
        # a numpy reverse complement of the reverse complement gives back the original batch
        np.testing.assert_array_equal(rx["sequence"][:, ::-1, ::-1], x["sequence"])
        np.testing.assert_array_equal(ry["profile"][:, ::-1][:, :, [1, 0, 2]], y["profile"])
        np.testing.assert_array_equal(rx["profile_bias"][:, ::-1][:, :, [1, 0, 2]], x["profile_bias"])
        np.testing.assert_allclose(ry["logcounts"], y["logcounts"], rtol=1e-6)
    for ex in examples(batches[1::2]):  # and it is the genome's other strand
        seq, profile, *_ = expected_example(tiny, files, ex["row"], ex["jitter"], True)
        assert decode_one_hot(ex["sequence"]) == seq
        np.testing.assert_allclose(ex["profile"], profile)


def test_each_epoch_has_every_peak_once_and_fresh_backgrounds(tiny):
    stream = LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, seed=0, cache=False)
    train_chroms = {"chr1", "chr4"}
    drawn = []
    for _ in range(2):
        batches = epoch(stream)
        rows = [int(r) for *_, m in batches for r in m["row"]]
        sizes = [len(m["row"]) for *_, m in batches]
        assert sizes[:-1] == [BATCH] * (len(sizes) - 1) and 0 < sizes[-1] <= BATCH  # last partial batch kept
        counts = Counter(rows)
        assert max(counts.values()) == 1
        peaks = rows_where(tiny, train_chroms, kind=0)
        assert peaks <= set(rows)
        backgrounds = {}
        for task in (0, 1):
            n_peaks = len(rows_where(tiny, train_chroms, kind=0, task=task))
            backgrounds[task] = set(rows) & rows_where(tiny, train_chroms, kind=1, task=task)
            assert len(backgrounds[task]) == int(n_peaks * BACKGROUND_RATIO[str(task)])
        assert set(rows) == peaks | backgrounds[0] | backgrounds[1]
        drawn.append(backgrounds)
    assert drawn[0][0] != drawn[1][0] or drawn[0][1] != drawn[1][1]


def test_validation_is_fixed_unjittered_and_in_store_order(tiny, files):
    stream = LocusStream(tiny.path, SPLIT, "val", batch_size=BATCH, seed=5)
    first, second = examples(epoch(stream)), examples(epoch(stream))
    assert [e["row"] for e in first] == [e["row"] for e in second] == sorted(e["row"] for e in first)
    assert [e["row"] for e in first] == list(stream.loci()["row"])
    assert all(e["jitter"] == 0 and not e["flip"] for e in first)
    rows = {e["row"] for e in first}
    for task in (0, 1):
        n_peaks = len(rows_where(tiny, {"chr2"}, kind=0, task=task))
        assert len(rows & rows_where(tiny, {"chr2"}, kind=1, task=task)) == int(n_peaks * BACKGROUND_RATIO[str(task)])
    for ex in first:
        seq, profile, *_ = expected_example(tiny, files, ex["row"], 0, False)
        assert decode_one_hot(ex["sequence"]) == seq
        np.testing.assert_allclose(ex["profile"], profile)


def test_test_subset_holds_only_its_peaks(tiny):
    stream = LocusStream(tiny.path, SPLIT, "test", batch_size=BATCH)
    rows = {e["row"] for e in examples(epoch(stream))}
    assert rows == rows_where(tiny, {"chr3"}, kind=0)
    assert set(stream.loci()["chrom"]) == {"chr3"}


@pytest.mark.parametrize("cache", [True, False])
def test_a_stream_restricted_to_fixed_loci_reads_and_yields_only_them(tiny, cache):
    """``only`` (predict's --test-indices) keeps those visits of the unrestricted order, backgrounds included,
    the same examples as the whole stream, and reads no block without one of them."""
    common = {"batch_size": BATCH, "backgrounds": "all", "cache": cache}
    whole = {e["row"]: e for e in examples(epoch(LocusStream(tiny.path, None, "all", **common)))}
    order = list(LocusStream(tiny.path, None, "all", **common).loci()["row"])
    visits = np.array([2, 3, 7, len(order) - 1])
    stream = LocusStream(tiny.path, None, "all", only=visits, **common)
    reads = []
    original = stream.reader.read_block_into
    stream.reader.read_block_into = lambda block, out, at: reads.append(block) or original(block, out, at)
    picked = examples(epoch(stream))
    assert [e["row"] for e in picked] == [order[v] for v in visits] == list(stream.loci()["row"])
    assert stream.n_loci == len(visits)
    for ex in picked:
        for key in ("sequence", "profile", "profile_bias", "logcounts", "w_logcounts"):
            np.testing.assert_array_equal(ex[key], whole[ex["row"]][key])
    assert set(reads) <= {order[v] // stream.reader.block_loci for v in visits}
    with pytest.raises(ValueError, match="drawing backgrounds"):
        LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, only=visits)
    for bad in ([], [-1], [len(order)]):
        with pytest.raises(ValueError, match=rf"must lie in \[0, {len(order)}\)"):
            LocusStream(tiny.path, None, "all", only=np.array(bad, dtype=np.int64), **common)


def test_batches_converted_here_are_the_pipelines(tiny):
    """iterate_here (prediction, no tf.data) yields what the tf.data pipeline yields, batch for batch (to the
    last bit but for float32 rounding of log counts)."""
    def stream():
        return LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, reverse_complement="random", seed=3,
                           batches_per_element=3)

    piped, here = epoch(stream()), list(iterate_here(stream(), with_index=True))
    assert len(piped) == len(here) == stream().n_batches
    for a, b in zip(piped, here):
        for part_a, part_b in zip(a, b):
            assert part_a.keys() == part_b.keys()
            for key in part_a:  # log1p in a graph and eagerly may differ in the last float32 bit
                np.testing.assert_allclose(part_a[key], part_b[key], rtol=3e-7, atol=0, err_msg=key)
                assert part_a[key].dtype == part_b[key].dtype


def test_cached_and_streamed_modes_yield_the_same_examples(tiny):
    def by_row(cache):
        stream = LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, reverse_complement="random",
                                    seed=11, cache=cache, shuffle_loci=40)
        reads = []
        original = stream.reader.read_block_into
        stream.reader.read_block_into = lambda block, out, at: reads.append(block) or original(block, out, at)
        found = [examples(epoch(stream)) for _ in range(2)]
        return stream, reads, [{e["row"]: e for e in exs} for exs in found]

    cached, cached_reads, cached_examples = by_row(True)
    streamed, streamed_reads, streamed_examples = by_row(False)
    assert cached.cached and not streamed.cached
    # cached: read once, up front; streamed: whole blocks, each once per epoch, and the first group of the third
    # epoch, decoded ahead while the second one ended
    assert len(cached_reads) == 0 or max(Counter(cached_reads).values()) == 1
    streamed._prefetched.first.wait()
    plans = [streamed._plan(e) for e in range(3)]
    assert Counter(streamed_reads) == Counter(b for plan in plans[:2] for group in plan.groups for b, _, _ in group) \
        + Counter(b for b, _, _ in plans[2].groups[0])
    for a, b in zip(cached_examples, streamed_examples):
        assert a.keys() == b.keys()
        for row in a:
            for key in ("jitter", "flip", "sequence", "profile", "profile_bias", "logcounts"):
                np.testing.assert_array_equal(a[row][key], b[row][key])


def test_a_seed_fixes_everything(tiny):
    def rows_and_jitter(seed):
        stream = LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, reverse_complement="random",
                                    seed=seed, cache=False)
        return [(e["row"], e["jitter"], e["flip"]) for e in examples(epoch(stream))]

    assert rows_and_jitter(2) == rows_and_jitter(2)
    assert rows_and_jitter(2) != rows_and_jitter(3)


def test_sample_weights_and_per_track_targets(tiny):
    stream = LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, mnll_loss_sample_weight=2.0,
                                mnll_background_weight=0.25, orig_multi_loss=True, jitter=False)
    for ex in examples(epoch(stream)):
        assert ex["w_profile"] == (2.0 if tiny.loci[ex["row"]]["kind"] == 0 else 0.25)
        assert ex["w_logcounts"] == 1.0
        np.testing.assert_allclose(ex["logcounts"], np.log(1 + ex["profile"].sum(axis=0)), rtol=1e-6)


def test_counts_background_weight_applies_to_backgrounds_only(tiny):
    stream = LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, counts_background_weight=0.1, jitter=False)
    got = examples(epoch(stream))
    kinds = {tiny.loci[ex["row"]]["kind"] for ex in got}
    assert kinds == {0, 1}  # both kinds drawn, so both branches are checked
    for ex in got:
        peak = tiny.loci[ex["row"]]["kind"] == 0
        assert ex["w_logcounts"] == pytest.approx(1.0 if peak else 0.1)
        assert ex["w_profile"] == (1.0 if peak else 0.0)  # the profile weights are untouched


def test_store_without_bias_yields_sequence_only(tmp_path):
    tiny = make_tiny_store(tmp_path, with_bias=False)
    x, y, w = next(iter(make_dataset(tiny.path, SPLIT, "val", batch_size=BATCH).as_numpy_iterator()))
    assert set(x) == {"sequence"} and x["sequence"].shape[1:] == (INPUT_LEN, 4)
    assert y["profile"].shape[1:] == (OUTPUT_LEN, 3) and y["logcounts"].shape[1:] == (2,)


def test_a_subset_without_loci_names_the_chromosomes(tiny):
    with pytest.raises(InputError, match=r"chrUn.*chr1"):
        LocusStream(tiny.path, Split(val=["chrUn"]), "val", batch_size=BATCH)


def test_cache_auto_follows_available_memory(tiny, monkeypatch):
    monkeypatch.setattr(stream_module, "available_memory", lambda: 1000)
    assert not LocusStream(tiny.path, SPLIT, "test", batch_size=BATCH).cached
    monkeypatch.setattr(stream_module, "available_memory", lambda: 1 << 34)
    assert LocusStream(tiny.path, SPLIT, "test", batch_size=BATCH).cached


def test_a_built_store_of_a_simulated_experiment_matches_direct_reads(tiny_experiment, tmp_path, monkeypatch):
    """Builder + loader end to end: a stranded task with a stranded control, [+, -] tracks."""
    import json

    from bpnetz.build.builder import build_store
    from bpnetz.build.options import BuildOptions
    from bpnetz.config import Splits

    monkeypatch.chdir(tiny_experiment)
    params = json.loads((tiny_experiment / "bpnet_params.json").read_text())
    input_len, output_len, max_jitter = params["input_len"], params["output_profile_len"], 16
    store = tmp_path / "store.zarr"
    build_store("input_data.json", "genome.fa", "chrom.sizes", store,
                BuildOptions(input_len=input_len, output_len=output_len, max_jitter=max_jitter, progress=False))
    spec = json.loads((tiny_experiment / "input_data.json").read_text())["0"]
    stream = LocusStream(store, Splits.load("splits.json").folds["0"], "train", batch_size=16,
                                reverse_complement="random", seed=4)
    assert [t.strand for t in stream.layout.tracks] == ["+", "-"]
    fasta = pyfaidx.Fasta("genome.fa")
    signal = [pyBigWig.open(p) for p in spec["signal"]["source"]]
    bias = [pyBigWig.open(p) for p in spec["bias"]["source"]]
    loci = stream.reader.loci
    for ex in examples(epoch(stream)[:3]):
        chrom, summit = loci["chrom"][ex["row"]], int(loci["summit"][ex["row"]])
        s0, p0 = summit - input_len // 2 + ex["jitter"], summit - output_len // 2 + ex["jitter"]
        seq = "".join(b if b in "ACGT" else "N" for b in str(fasta[chrom][s0:s0 + input_len]).upper())
        profile = np.nan_to_num(np.stack([bw.values(chrom, p0, p0 + output_len) for bw in signal], axis=1))
        control = np.nan_to_num(np.stack([bw.values(chrom, p0, p0 + output_len) for bw in bias], axis=1))
        if ex["flip"]:
            seq, profile, control = seq.translate(COMPLEMENT)[::-1], profile[::-1, ::-1], control[::-1, ::-1]
        assert decode_one_hot(ex["sequence"]) == seq
        np.testing.assert_allclose(ex["profile"], profile)
        np.testing.assert_allclose(ex["profile_bias"], control, rtol=1e-6)
        np.testing.assert_allclose(ex["logcounts"], [np.log(2 + profile.sum())], rtol=1e-6)


def test_overlapping_epochs_of_a_streamed_stream_do_not_share_buffers(tiny, files):
    """An epoch left half-read (as an abandoned iterator's generator is) while the next one runs: both stay
    correct, checked against direct reads."""
    stream = LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, reverse_complement="random", seed=2,
                                cache=False, shuffle_loci=8, batches_per_element=1)
    first = stream.elements(0)
    head = [next(first)]
    second = list(stream.elements(1))  # a whole epoch while the first one is paused inside its first block group
    for elements in (head + list(first), second):
        rows = []
        for element in elements:
            for k, i in np.ndindex(element["row"].shape):
                row, jitter, flip = int(element["row"][k, i]), int(element["jitter"][k, i]), bool(element["flip"][k, i])
                seq, profile, bias, *_ = expected_example(tiny, files, row, jitter, flip)
                assert decode_one_hot(element["sequence"][k, i]) == seq
                np.testing.assert_allclose(element["signal"][k, i], profile)
                np.testing.assert_allclose(element["bias"][k, i], bias)
                rows.append(row)
        assert len(rows) == len(set(rows)) == stream.n_loci


def element_arrays(elements):
    """An epoch's elements as one list of (name, array) pairs, for exact comparison."""
    return [(name, x) for element in elements for name, x in sorted(element.items())]


@pytest.mark.parametrize("shuffle_loci", [8, 10_000], ids=["many-groups", "one-group"])
def test_next_epochs_first_group_decoded_ahead_changes_nothing(tiny, shuffle_loci):
    """Epochs read one after the other (each claiming the first group decoded ahead by the one before) equal the
    same epochs of fresh streams (nothing decoded ahead), and hold every peak once; a stream resumed at another
    epoch drops what was decoded ahead."""
    def stream():
        return LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, reverse_complement="random", seed=5,
                           cache=False, shuffle_loci=shuffle_loci, batches_per_element=2)

    ahead, claimed = stream(), []
    original = ahead._claim_plan
    ahead._claim_plan = lambda epoch: claimed.append(ahead._prefetched is not None
                                                     and ahead._prefetched.epoch == epoch) or original(epoch)
    peaks = rows_where(tiny, {"chr1", "chr4"}, kind=0)
    for epoch in range(3):
        found = list(ahead.next_epoch())
        fresh = stream()
        fresh.epoch = epoch
        expected = list(fresh.next_epoch())
        assert len(found) == len(expected)
        for (name, x), (name_e, y) in zip(element_arrays(found), element_arrays(expected), strict=True):
            assert name == name_e
            np.testing.assert_array_equal(x, y)
        rows = [int(r) for element in found for r in element["row"].ravel()]
        assert len(rows) == len(set(rows)) == ahead.n_loci and peaks <= set(rows)
    assert claimed == [False, True, True]
    ahead.epoch = 7  # resumed elsewhere: epoch 3's first group, decoded ahead, is dropped
    resumed = stream()
    resumed.epoch = 7
    for (_, x), (_, y) in zip(element_arrays(ahead.next_epoch()), element_arrays(resumed.next_epoch()), strict=True):
        np.testing.assert_array_equal(x, y)


def test_first_elements_of_an_epoch_grow_and_change_nothing_else(tiny, monkeypatch):
    def elements(cache):
        stream = LocusStream(tiny.path, SPLIT, "train", batch_size=2, reverse_complement="random", seed=6,
                             cache=cache, batches_per_element=4)
        return list(stream.elements(0))

    for cache in (True, False):
        ramped = elements(cache)
        assert [e["row"].shape[0] for e in ramped[:3]] == [1, 2, 4]
        with monkeypatch.context() as patch:
            patch.setattr(stream_module, "element_batches", lambda sent, most: most)
            whole = elements(cache)
        assert whole[0]["row"].shape[0] == 4 and len(whole) < len(ramped)
        flat = {name: np.concatenate([e[name].reshape(-1, *e[name].shape[2:]) for e in ramped]) for name in ramped[0]}
        flat_whole = {name: np.concatenate([e[name].reshape(-1, *e[name].shape[2:]) for e in whole])
                      for name in whole[0]}
        for name in flat:
            np.testing.assert_array_equal(flat[name], flat_whole[name])


@pytest.mark.parametrize("cache", [False, True], ids=["streamed", "cached"])
def test_a_continuous_dataset_is_the_epochs_one_after_another(tiny, cache):
    """One iterator over every epoch (training's, see LocusStream.epochs) yields, ``n_batches`` at a time,
    exactly the batches of per-epoch iterations from the same starting epoch, and leaves the epoch counter alone;
    the batch count includes an epoch's last, partial batch, so epochs never drift."""
    def stream():
        return LocusStream(tiny.path, SPLIT, "train", batch_size=BATCH, reverse_complement="random", seed=9,
                           cache=cache, shuffle_loci=8, batches_per_element=2)

    continuous = stream()
    continuous.epoch = 2
    batches = stream_dataset(continuous, with_index=True, continuous=True).as_numpy_iterator()
    per_epoch = stream()
    per_epoch.epoch = 2
    assert continuous.n_loci % BATCH != 0  # a partial batch ends each epoch
    for _ in range(3):
        expected = epoch(per_epoch)
        found = [next(batches) for _ in range(continuous.n_batches)]
        assert len(found) == len(expected) == continuous.n_batches
        for got, want in zip(found, expected, strict=True):
            for part_got, part_want in zip(got, want, strict=True):
                assert part_got.keys() == part_want.keys()
                for key in part_got:
                    np.testing.assert_array_equal(part_got[key], part_want[key])
    assert continuous.epoch == 2 and per_epoch.epoch == 5
