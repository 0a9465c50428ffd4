"""Base codes, one-hot and strand pairing of the store schema."""

import numpy as np

from bpnetz.genome.sequence import COMPLEMENT_CODE, decode, encode, one_hot
from bpnetz.store.schema import StoreLayout, Track


def test_encode_maps_iupac_and_lowercase():
    assert encode("ACGTacgtNRYKMn-").tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4]
    assert decode(encode("ACGTN")) == "ACGTN"


def test_one_hot_n_is_zero_row():
    hot = one_hot(encode("ACGTN"))
    assert hot.shape == (5, 4)
    assert hot[:4].tolist() == np.eye(4).tolist() and hot[4].sum() == 0


def test_complement_codes_reverse_complement():
    seq = "AACGTTGN"
    revcomp = seq[::-1].translate(str.maketrans("ACGTN", "TGCAN"))
    assert decode(COMPLEMENT_CODE[encode(seq)][::-1]) == revcomp


def test_strand_swap_pairs_tracks_within_task_and_smoothing():
    tracks = [Track("0/+", 0, "+", "p.bw"), Track("0/-", 0, "-", "m.bw"), Track("1/.", 1, ".", "s.bw"),
              Track("0/+s", 0, "+", "p.bw", (7.0, 81)), Track("0/-s", 0, "-", "m.bw", (7.0, 81))]
    layout = StoreLayout(100, 50, 5, ["0", "1"], tracks)
    assert layout.strand_swap(tracks).tolist() == [1, 0, 2, 4, 3]
    restored = StoreLayout.from_dict(layout.to_dict())
    assert restored == layout
    assert layout.seq_window(1000) == (1000 - 50 - 5, 1000 - 50 - 5 + 110)
    assert layout.profile_window(1000) == (1000 - 25 - 5, 1000 - 25 - 5 + 60)
