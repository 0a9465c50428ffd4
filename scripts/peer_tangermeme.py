#!/usr/bin/env python
"""Extract the loci of ``scripts/bench_build.py`` with tangermeme's ``extract_loci`` (the build benchmark's peer).

Runs under a separate interpreter that has tangermeme installed (e.g. ``/work/peer-venv/bin/python``); bpnetz never
imports tangermeme. Input: a BED of loci whose interval midpoint is the summit (``summit, summit + 1``), the FASTA,
the bigWigs; the windows are the store's: ``in_window`` and ``out_window`` widened by ``max_jitter`` on each side.
Prints one JSON line: loci returned, wall and CPU seconds (all threads) of the ``extract_loci`` call (imports
excluded), the threads used and the shapes returned.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loci", required=True)
    parser.add_argument("--fasta", required=True)
    parser.add_argument("--signals", nargs="+", required=True)
    parser.add_argument("--in-window", type=int, default=2114)
    parser.add_argument("--out-window", type=int, default=1000)
    parser.add_argument("--max-jitter", type=int, default=128)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args()

    import torch
    from tangermeme.io import extract_loci

    torch.set_num_threads(args.n_jobs)
    began, cpu = time.perf_counter(), time.process_time()
    seqs, signals = extract_loci(args.loci, args.fasta, signals=args.signals, in_window=args.in_window,
                                 out_window=args.out_window, max_jitter=args.max_jitter, n_jobs=args.n_jobs)
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
    print(json.dumps({"loci": int(seqs.shape[0]), "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "n_jobs": args.n_jobs,
                      "seq_shape": list(seqs.shape), "signal_shape": list(signals.shape)}))


if __name__ == "__main__":
    main()
