"""``bpnetz simulate OUT``: write a synthetic ChIP-nexus experiment (see :mod:`bpnetz.simulate.experiment`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bpnetz.genome.motif import BUILTIN, DEFAULT_MOTIFS
from bpnetz.simulate.loci import COOP_DIFFERENT, COOP_SAME
from bpnetz.simulate.variation import FOOTPRINTS, Variation


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bpnetz simulate",
        description="Write a synthetic ChIP-nexus experiment: genome, stranded count bigWigs, controls, peaks, "
                    "background loci, input_data.json / bpnet_params.json / splits.json and the ground truth "
                    "(planted motifs and sites, expected rates). Deterministic for a seed. Run later commands "
                    "from inside OUT: the JSON files use paths relative to it.")
    parser.add_argument("out", metavar="OUT", help="output directory (must be new or empty unless --force)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--n-chroms", type=int, default=6, help="number of chromosomes chr1..chrN (default 6)")
    parser.add_argument("--chrom-length", type=int, default=1_000_000,
                        help="length of chr1; later ones shrink to 75%% of it (default 1000000)")
    parser.add_argument("--n-peaks", type=int, default=2000,
                        help="bound regions in the genome; each task's peaks are the regions it binds (default 2000)")
    parser.add_argument("--tasks", type=int, default=1, help="number of tasks, each with its own motif subset")
    parser.add_argument("--motifs", default=",".join(DEFAULT_MOTIFS),
                        help=f"comma-separated built-in motifs among {', '.join(BUILTIN)}, or JASPAR matrices as "
                             f"jaspar:NAME or jaspar:ID (e.g. jaspar:CTCF; offline, needs pyjaspar) "
                             f"(default {','.join(DEFAULT_MOTIFS)})")
    parser.add_argument("--input-len", type=int, default=2114, help="model input length (default 2114)")
    parser.add_argument("--output-len", type=int, default=1000, help="model output length (default 1000)")
    parser.add_argument("--max-jitter", type=int, default=128,
                        help="jitter the edge peaks are placed for: within max-jitter + input-len/2 of an end")
    parser.add_argument("--unstranded", action="store_true",
                        help="write one signal.bw per task (strands summed) and one control.bw")
    parser.add_argument("--no-control", action="store_true", help="write no control tracks and no bias key")
    parser.add_argument("--bias-smoothing", nargs=2, type=float, metavar=("SIGMA", "WINDOW"),
                        help="smoothing entry [SIGMA, WINDOW] for every bias track (default null)")
    parser.add_argument("--long-chrom-name", action="store_true",
                        help="add a chromosome with a long name (chrUn_KI270742v1)")
    parser.add_argument("--chrom-names", type=lambda text: [c for c in text.split(",") if c],
                        help="comma-separated chromosome names instead of chr1..chrN (sets --n-chroms)")
    _variation_flags(parser.add_argument_group("how the experiment varies (bpnetz.simulate.variation)"))
    parser.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _variation_flags(group: argparse._ArgumentGroup) -> None:
    defaults = Variation()
    group.add_argument("--strength-noise", type=float, default=defaults.strength_noise,
                       help="log-SD of a per-site log-normal strength factor of mean 1 (default 0)")
    group.add_argument("--footprint", choices=FOOTPRINTS, default=defaults.footprint,
                       help="read pile-up shape around bound sites (default nexus)")
    group.add_argument("--footprint-scale", type=float, default=defaults.footprint_scale,
                       help="multiplies the footprint's widths and distances (default 1)")
    group.add_argument("--depth", type=float, default=defaults.depth,
                       help="read depth: multiplies ChIP background and footprint reads (default 1)")
    group.add_argument("--control-leak", type=float, default=defaults.control_leak,
                       help=f"share of the control's rate present in the ChIP (default {defaults.control_leak})")
    group.add_argument("--background-ratio", type=float, default=defaults.background_ratio,
                       help=f"GC-matched negatives per peak (default {defaults.background_ratio})")
    group.add_argument("--cooperative-spacing", type=int, default=defaults.cooperative_spacing, metavar="BP",
                       help="preferred centre-to-centre spacing of cooperative site pairs: their boost peaks there "
                            "(a Gaussian in distance) and pairs are planted around it (default 0: the boost falls "
                            "linearly to none at 50 bp)")
    group.add_argument("--cooperative-width", type=float, default=defaults.cooperative_width, metavar="BP",
                       help=f"SD of that Gaussian (default {defaults.cooperative_width})")
    group.add_argument("--cooperative-strength", type=float, default=defaults.cooperative_strength,
                       help="boost at the spacing: a pair of different motifs binds 1 + this times as much "
                            f"(same motif: {COOP_SAME / COOP_DIFFERENT:g} of it) (default "
                            f"{defaults.cooperative_strength:g})")


def variation_of(args: argparse.Namespace) -> Variation:
    """The Variation the parsed flags describe."""
    return Variation(strength_noise=args.strength_noise, footprint=args.footprint,
                     footprint_scale=args.footprint_scale, depth=args.depth, control_leak=args.control_leak,
                     background_ratio=args.background_ratio, cooperative_spacing=args.cooperative_spacing,
                     cooperative_width=args.cooperative_width, cooperative_strength=args.cooperative_strength)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, simulate, print a one-paragraph summary."""
    from bpnetz.simulate.experiment import simulate

    args = _parser().parse_args(argv)
    smoothing = None
    if args.bias_smoothing:
        smoothing = (float(args.bias_smoothing[0]), int(args.bias_smoothing[1]))
    summary = simulate(args.out, seed=args.seed, n_chroms=args.n_chroms, chrom_length=args.chrom_length,
                       n_peaks=args.n_peaks, tasks=args.tasks,
                       motifs=[m.strip() for m in args.motifs.split(",") if m.strip()],
                       input_len=args.input_len, output_len=args.output_len, max_jitter=args.max_jitter,
                       stranded=not args.unstranded, control=not args.no_control, bias_smoothing=smoothing,
                       long_chrom_name=args.long_chrom_name, chrom_names=args.chrom_names,
                       variation=variation_of(args), progress=not args.quiet, force=args.force)
    print(summary.describe())
    return 0
