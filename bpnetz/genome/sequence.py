"""DNA as bpnetz holds it: uint8 base codes A=0 C=1 G=2 T=3 N=4 (1 byte per base), one-hot in A, C, G, T order,
and the one reverse complement (of codes, and of one-hot rows or position matrices).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BASES = "ACGT"
N_CODE = 4

#: ASCII byte -> base code; every letter other than A/C/G/T (IUPAC codes, N, gaps) maps to N.
CODE_TABLE = np.full(256, N_CODE, dtype=np.uint8)
for _code, _base in enumerate(BASES):
    CODE_TABLE[ord(_base)] = _code
    CODE_TABLE[ord(_base.lower())] = _code

#: base code -> complement code (N stays N), used for reverse complement of code arrays.
COMPLEMENT_CODE = np.array([3, 2, 1, 0, 4], dtype=np.uint8)


def encode(sequence: str | bytes) -> np.ndarray:
    """Base codes (uint8) of a DNA string; any letter other than ACGT (case-insensitive) becomes N=4."""
    raw = sequence.encode("ascii", "replace") if isinstance(sequence, str) else sequence
    return CODE_TABLE[np.frombuffer(raw, dtype=np.uint8)]


def decode(codes: np.ndarray) -> str:
    """DNA string of base codes (4 -> 'N')."""
    return "".join("ACGTN"[int(c)] for c in np.asarray(codes).ravel())


def one_hot(codes: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    """One-hot (…, 4) in order A, C, G, T; N rows are all zero."""
    eye = np.vstack([np.eye(4, dtype=dtype), np.zeros((1, 4), dtype=dtype)])
    return eye[np.asarray(codes)]


def onehot_to_codes(onehot: np.ndarray) -> np.ndarray:
    """Base codes of one-hot rows (…, L, 4); all-zero rows become N."""
    onehot = np.asarray(onehot)
    return np.where(onehot.any(axis=-1), onehot.argmax(axis=-1), N_CODE).astype(np.uint8)


def reverse_complement(codes: np.ndarray) -> np.ndarray:
    """Reverse complement of base-code arrays (…, L) along the last axis (N stays N)."""
    return COMPLEMENT_CODE[np.asarray(codes)[..., ::-1]]


def reverse_complement_onehot(x: np.ndarray) -> np.ndarray:
    """Reverse complement of one-hot rows or position matrices (…, L, 4) in A, C, G, T order, any dtype:
    positions reversed, and the channel axis reversed (A↔T, C↔G; all-zero N rows stay zero)."""
    return np.asarray(x)[..., ::-1, ::-1]
