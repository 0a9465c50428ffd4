"""Dinucleotide shuffles: random sequences with exactly the dinucleotide counts of a given sequence.

DeepLIFT-SHAP compares each sequence with shuffled copies of itself; preserving every dinucleotide count keeps
the composition (GC, CpG) of the reference identical, so contributions reflect the order of bases, not their
composition. The algorithm is Altschul & Erickson's (1985), as formulated by Kandel et al. (1996): the sequence is
an Eulerian path through the graph whose vertices are letters and whose edges are its dinucleotides; a uniformly
random Eulerian path with the same first and last letter is drawn by

1. choosing, for every letter other than the last one, the edge it leaves by for the last time, such that these
   "last edges" form an arborescence towards the last letter (drawn here with Wilson's loop-erased random walk,
   which gives each arborescence a probability proportional to the product of its edge multiplicities, the
   distribution the algorithm needs; self-loops can never be last edges);
2. shuffling every letter's other out-edges uniformly and putting its last edge at the end;
3. walking from the first letter, always leaving by the next unused edge.

N (code 4) is a fifth letter, so runs of N move as dinucleotides like any other. Steps 1-2 are numpy, vectorised
over the shuffles of a sequence; step 3 is inherently sequential and runs compiled (numba, installed with
modisco-lite), for all shuffles of a batch of sequences at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from bpnetz.genome.sequence import N_CODE, decode, encode, one_hot, onehot_to_codes

N_LETTERS = N_CODE + 1


def dinucleotide_shuffle(sequence: np.ndarray | str, rng: np.random.Generator) -> np.ndarray | str:
    """One dinucleotide shuffle of a sequence, returned in the form it came in.

    ``sequence`` is a DNA string (case ignored; returned upper-case), an (L,) array of base codes (A=0 … N=4), or
    an (L, 4) one-hot array (all-zero rows are N).
    """
    if isinstance(sequence, str):
        return decode(dinucleotide_shuffles(encode(sequence)[None], 1, [rng])[0, 0])
    sequence = np.asarray(sequence)
    if sequence.ndim == 2:
        shuffled = dinucleotide_shuffles(onehot_to_codes(sequence)[None], 1, [rng])[0, 0]
        return one_hot(shuffled, dtype=sequence.dtype)
    return dinucleotide_shuffles(sequence[None].astype(np.uint8), 1, [rng])[0, 0].astype(sequence.dtype)


def reference_shuffles(codes: np.ndarray, num_shuffles: int, seed: int, indices: Sequence[int]) -> np.ndarray:
    """(B, num_shuffles, L) shuffles of (B, L) base codes, sequence ``i`` drawn from the generator (seed, index).

    Seeding each sequence by its own index makes the references reproducible and independent of batching.
    """
    rngs = [np.random.default_rng([seed, int(i)]) for i in indices]
    return dinucleotide_shuffles(codes, num_shuffles, rngs)


def dinucleotide_shuffles(codes: np.ndarray, num_shuffles: int, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """(B, num_shuffles, L) uint8 shuffles of (B, L) base codes; sequence ``b`` uses ``rngs[b]``."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if codes.ndim != 2 or len(rngs) != len(codes):
        raise ValueError(f"expected (B, L) codes and B generators, got {codes.shape} and {len(rngs)}")
    if codes.size and codes.max() > N_CODE:
        raise ValueError(f"base codes must be 0..{N_CODE}, found {int(codes.max())}")
    n_seq, length = codes.shape
    if length < 3 or num_shuffles == 0:  # a single Eulerian path: every shuffle is the sequence itself
        return np.repeat(codes[:, None], num_shuffles, axis=1)
    edge_lists = np.empty((n_seq, num_shuffles, length - 1), dtype=np.uint8)
    block_starts = np.empty((n_seq, N_LETTERS), dtype=np.int64)
    for b in range(n_seq):
        edge_lists[b], block_starts[b] = _edge_lists(codes[b], num_shuffles, rngs[b])
    walks = _walk(edge_lists.reshape(n_seq * num_shuffles, length - 1),
                  np.repeat(block_starts, num_shuffles, axis=0),
                  np.repeat(codes[:, 0], num_shuffles))
    return walks.reshape(n_seq, num_shuffles, length)


def _edge_lists(seq: np.ndarray, num_shuffles: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each letter's shuffled out-edge targets (its last edge at the end), as (num_shuffles, L-1) blocks by letter.

    Returns the blocks and the start of each letter's block.
    """
    sources, targets = seq[:-1], seq[1:]
    order = np.argsort(sources, kind="stable")
    sources_sorted, targets_sorted = sources[order], targets[order]
    counts = np.bincount(sources, minlength=N_LETTERS)
    block_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    transitions = np.zeros((N_LETTERS, N_LETTERS), dtype=np.int64)
    np.add.at(transitions, (sources, targets), 1)

    parents = _last_edge_targets(transitions, int(seq[-1]), num_shuffles, rng)
    # Position of some edge (any one: they are identical) for each (source, target): the last edge is taken there.
    edge_at = np.full((N_LETTERS, N_LETTERS), -1, dtype=np.int64)
    edge_at[sources_sorted, targets_sorted] = np.arange(len(targets_sorted))
    keys = rng.random((num_shuffles, len(targets_sorted)))
    rows, letters = np.nonzero(parents >= 0)
    keys[rows, edge_at[letters, parents[rows, letters]]] = 2.0  # sorts after every other edge of the letter
    permutation = np.argsort(sources_sorted[None, :] * 4.0 + keys, axis=1)
    return targets_sorted[permutation], block_starts


def _last_edge_targets(transitions: np.ndarray, root: int, num_shuffles: int,
                       rng: np.random.Generator) -> np.ndarray:
    """(num_shuffles, 5) target of each letter's last edge (-1 for the root and absent letters).

    Wilson's algorithm, vectorised over shuffles: from each letter not yet in the tree, a random walk along
    out-edges (weighted by multiplicity, self-loops excluded) until it meets the tree; the walk's last exits,
    i.e. its loop erasure, join the tree.
    """
    weights = transitions.astype(np.float64)
    np.fill_diagonal(weights, 0.0)
    cumulative = np.cumsum(weights, axis=1)
    has_edges = transitions.sum(axis=1) > 0
    in_tree = np.zeros((num_shuffles, N_LETTERS), dtype=bool)
    in_tree[:, root] = True
    in_tree[:, ~has_edges] = True
    parents = np.full((num_shuffles, N_LETTERS), -1, dtype=np.int64)
    for letter in range(N_LETTERS):
        rows = np.nonzero(~in_tree[:, letter])[0]
        position = np.full(len(rows), letter)
        while len(rows):  # random walk until the tree is hit, overwriting exits (loop erasure)
            draws = rng.random(len(rows)) * cumulative[position, -1]
            step = (draws[:, None] >= cumulative[position]).sum(axis=1)
            parents[rows, position] = step
            arrived = in_tree[rows, step]
            rows, position = rows[~arrived], step[~arrived]
        rows = np.nonzero(~in_tree[:, letter])[0]
        position = np.full(len(rows), letter)
        while len(rows):  # retrace the loop-erased path into the tree
            in_tree[rows, position] = True
            position = parents[rows, position]
            keep = ~in_tree[rows, position]
            rows, position = rows[keep], position[keep]
    return parents


@numba.njit(cache=True, nogil=True)
def _walk(edge_lists: np.ndarray, block_starts: np.ndarray, first: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Eulerian walks: from ``first``, repeatedly leave the current letter by its next unused edge."""
    n_walks, n_edges = edge_lists.shape
    out = np.empty((n_walks, n_edges + 1), dtype=np.uint8)
    cursor = np.empty(block_starts.shape[1], dtype=np.int64)
    for w in range(n_walks):
        cursor[:] = block_starts[w]
        letter = first[w]
        out[w, 0] = letter
        for i in range(n_edges):
            position = cursor[letter]
            cursor[letter] = position + 1
            letter = edge_lists[w, position]
            out[w, i + 1] = letter
    return out
