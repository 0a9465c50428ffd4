"""The knobs real experiments vary in, for families of simulated experiments (``bpnetz simulate`` flags).

:class:`Variation` holds them; its defaults reproduce the built-in experiment exactly (same random draws, same
files), so seeds of earlier experiments keep their meaning:

* motif sets: built-in names or real JASPAR matrices (``jaspar:GATA1``, ``jaspar:MA0139.2``), read offline from
  the JASPAR database that ``pyjaspar`` ships (release :data:`JASPAR_RELEASE`); see :func:`resolve_motifs`;
* ``strength_noise``: per-site strength multiplied by a log-normal factor of mean 1 and this log-SD (real sites of
  equal PWM score differ several-fold in occupancy; 0 = the score alone decides);
* ``footprint``: the read pile-up shape around a bound site: ``nexus`` (a sharp exponential and a shoulder next to
  the motif edge, ChIP-nexus/exo), ``gaussian`` (a displaced Gaussian bump) or ``chipseq`` (broad, fragment-length
  scale, ~60 bp from the site); ``footprint_scale`` stretches every width;
* ``depth``: read depth, multiplying ChIP background and footprint reads (controls unchanged);
* ``control_leak``: share of the control's rate present in the ChIP (how much signal the bias tracks explain);
* ``background_ratio``: GC-matched negatives per peak (input_data.json's ``ratio`` too);
* ``cooperative_spacing``/``cooperative_width``/``cooperative_strength``: a preferred centre-to-centre spacing
  of cooperative pairs (bp; 0, the default, keeps the boost falling linearly from distance 0 to none at 50 bp):
  the pair boost becomes 1 + strength × a Gaussian of that mean and SD in distance, and more pairs are planted,
  around it (:class:`bpnetz.simulate.loci.Cooperativity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bpnetz.errors import InputError
from bpnetz.genome import motif as motif_lib

FOOTPRINTS = ("nexus", "gaussian", "chipseq")
#: sites are planted within spacing + 130 bp of a region's primary site, which stays within ± 25 bp of the centre
MAX_COOPERATIVE_SPACING = 200
JASPAR_PREFIX = "jaspar:"
JASPAR_RELEASE = "JASPAR2024"
#: a JASPAR matrix shorter than this cannot reach the binding threshold's chance rate (4^-L > CHANCE_RATE)
MIN_JASPAR_LENGTH = 9
#: what a JASPAR motif's footprint looks like (the built-in matrices carry their own)
JASPAR_DEPTH, JASPAR_GAP, JASPAR_DECAY = 200.0, 3, 9.0


@dataclass(frozen=True)
class Variation:
    """How a simulated experiment departs from the built-in one (defaults: not at all)."""

    strength_noise: float = 0.0
    footprint: str = "nexus"
    footprint_scale: float = 1.0
    depth: float = 1.0
    control_leak: float = 0.4
    background_ratio: float = 0.25
    cooperative_spacing: int = 0
    cooperative_width: float = 3.0
    cooperative_strength: float = 3.0

    def problems(self) -> list[str]:
        """What is wrong with these values, one phrase each (empty when valid)."""
        found = []
        if self.strength_noise < 0:
            found.append("--strength-noise must be >= 0")
        if self.footprint not in FOOTPRINTS:
            found.append(f"--footprint must be one of {', '.join(FOOTPRINTS)}")
        for flag, value in (("--footprint-scale", self.footprint_scale), ("--depth", self.depth),
                            ("--background-ratio", self.background_ratio)):
            if not value > 0:
                found.append(f"{flag} must be positive")
        if self.control_leak < 0:
            found.append("--control-leak must be >= 0")
        if not 0 <= self.cooperative_spacing <= MAX_COOPERATIVE_SPACING:
            found.append(f"--cooperative-spacing must be between 0 (off) and {MAX_COOPERATIVE_SPACING} bp")
        if not (self.cooperative_width > 0 and self.cooperative_strength > 0):
            found.append("--cooperative-width and --cooperative-strength must be positive")
        return found


def strength_factors(n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Per-site strength factors: log-normal with mean 1 and log-SD ``sigma`` (ones, drawing nothing, at 0)."""
    if sigma == 0:
        return np.ones(n)
    return np.exp(rng.normal(-0.5 * sigma ** 2, sigma, n))


def _jaspar_matrix(key: str):
    """The JASPAR matrix for an ID (``MA0139.2``) or a name: of that name's matrices at least
    MIN_JASPAR_LENGTH long, the lowest base ID (the classic profile) in its latest version."""
    try:
        from pyjaspar import jaspardb
    except ImportError:
        raise InputError(f"motif '{JASPAR_PREFIX}{key}' needs the pyjaspar package.",
                         fix="pip install pyjaspar (it ships the JASPAR database; no network is used).") from None
    db = jaspardb(release=JASPAR_RELEASE)
    if key.upper().startswith("MA") and "." in key:
        found = [db.fetch_motif_by_id(key)]
    else:
        found = [m for m in db.fetch_motifs_by_name(key) if len(m.counts["A"]) >= MIN_JASPAR_LENGTH]
    found = [m for m in found if m is not None]
    if not found:
        raise InputError(f"no JASPAR matrix '{key}' of at least {MIN_JASPAR_LENGTH} positions in {JASPAR_RELEASE}.",
                         fix="Give a JASPAR name (e.g. jaspar:GATA1, jaspar:CTCF, jaspar:POU5F1::SOX2) or ID.")
    return min(found, key=lambda m: (m.base_id, -int(m.version)))


def jaspar_motif(key: str) -> motif_lib.Motif:
    """A planted motif from a JASPAR matrix (counts normalised per position), with a generic footprint."""
    matrix = _jaspar_matrix(key)
    counts = np.array([[matrix.counts[b][i] for b in "ACGT"] for i in range(len(matrix.counts["A"]))], float)
    if len(counts) < MIN_JASPAR_LENGTH:
        raise InputError(f"JASPAR matrix {matrix.matrix_id} has {len(counts)} positions; at least "
                         f"{MIN_JASPAR_LENGTH} are needed for a binding threshold.", fix="Pick a longer matrix.")
    rows = tuple(tuple(float(p) for p in row / row.sum()) for row in counts)
    return motif_lib.Motif(matrix.name, f"JASPAR {matrix.matrix_id} {matrix.name}", rows, depth=JASPAR_DEPTH,
                           gap=JASPAR_GAP, decay=JASPAR_DECAY)


def resolve_motifs(names: Sequence[str]) -> list[motif_lib.Motif]:
    """Built-in motifs by name and JASPAR motifs by ``jaspar:NAME`` or ``jaspar:ID``, in the order given."""
    builtin = [n for n in names if not n.startswith(JASPAR_PREFIX)]
    if builtin or not names:
        motif_lib.builtin(builtin or None)  # its checks: unknown names
    motifs = [jaspar_motif(n[len(JASPAR_PREFIX):]) if n.startswith(JASPAR_PREFIX) else motif_lib.BUILTIN[n]
              for n in names]
    seen = [m.name for m in motifs]
    if len(set(seen)) != len(seen):
        raise InputError(f"motif names repeat in {list(names)!r}.", fix="List each motif once.")
    return motifs
