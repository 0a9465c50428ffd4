"""Region planning: every chunk of the unfinished shards is read exactly once, regions follow the genome, and a
build cut into many regions writes the same shard files and totals as one cut into few."""

from __future__ import annotations

import numpy as np
import pytest

from bpnetz.build import regions
from bpnetz.build.builder import build_store
from bpnetz.store import schema
from tests.build.tiny_inputs import write_tiny_experiment


def _runs() -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs of loci (dense 'peaks', then sparse 'background') over two chromosomes: 700 rows."""
    rng = np.random.default_rng(3)
    chrom, summit = [], []
    for n, spacing in ((500, 100), (200, 400)):
        for name, share in (("chrA", 0.6), ("chrB", 0.4)):
            k = int(n * share)
            chrom += [name] * k
            summit += sorted(rng.integers(0, k * spacing, k).tolist())
    return np.array(chrom, dtype=object), np.array(summit, dtype=np.int64)


@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_regions_cover_the_unfinished_chunks_once(parallel, monkeypatch):
    monkeypatch.setattr(regions, "REGION_LOCI", 100)
    chrom, summit = _runs()
    todo = [0, 2, 3, 5]  # shards of 128 rows (16-row chunks); 5 is the last, partial one (60 rows)
    plan = regions.plan_regions(chrom, summit, todo, 128, 16, parallel)
    chunks = np.concatenate(plan)
    want = [c for b in todo for c in range(b * 8, b * 8 + 8) if c * 16 < len(summit)]
    assert sorted(chunks.tolist()) == want  # each once, nothing of the finished shards
    loci = int(regions.chunk_lengths(np.array(want), 16, len(summit)).sum())
    assert len(plan) % parallel == 0 and len(plan) == parallel * -(-loci // (parallel * 100))
    rows = regions.chunk_rows_of(plan[0], 16, len(summit))
    assert rows.tolist() == [r for c in plan[0].tolist() for r in range(c * 16, min(c * 16 + 16, len(summit)))]
    # a region's chunks lie in one stretch of the genome: their middle loci do not interleave with another's
    middles = [[(chrom[m], summit[m]) for m in c * 16 + regions.chunk_lengths(c, 16, len(summit)) // 2]
               for c in plan]
    for first, second in zip(middles, middles[1:]):
        assert max(first, key=lambda x: (x[0], x[1])) <= min(second, key=lambda x: (x[0], x[1]))


def test_many_regions_write_the_same_store(tmp_path, monkeypatch):
    """One region in one thread, one chunk per region in one thread, and one chunk per region in two forked worker
    processes (whose chunks come back through spill files) write identical shard files, totals and content ids."""
    monkeypatch.setattr(schema, "CHUNK_LOCI", 8)
    monkeypatch.setattr(schema, "SHARD_LOCI", 32)
    experiment = write_tiny_experiment(tmp_path / "exp")
    stores = {}
    for region_loci, workers in ((4096, 1), (8, 1), (8, 2)):
        monkeypatch.setattr(regions, "REGION_LOCI", region_loci)
        stores[region_loci, workers] = tmp_path / f"store_{region_loci}_{workers}.zarr"
        build_store(**experiment.build_args(stores[region_loci, workers], workers=workers))
    files = {k: sorted(p.relative_to(s) for p in s.glob("*/c/**/*") if p.is_file()) for k, s in stores.items()}
    first = files[4096, 1]
    assert len(first) >= 9  # 3 shards of seq, signal and bias
    for key, names in files.items():
        assert names == first, key
        for name in names:
            assert (stores[key] / name).read_bytes() == (stores[4096, 1] / name).read_bytes(), (key, name)
    assert not any(regions.SPILL_DIR in p.parts for p in stores[8, 2].rglob("*"))  # the spill files are gone
    metas = [schema.metadata(schema.open_group(s)) for s in stores.values()]
    assert all(m["totals"] == metas[0]["totals"] and m["checksum"] == metas[0]["checksum"] for m in metas)
