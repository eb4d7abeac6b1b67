"""`EpochSubset`, the fixed random subset of windows a cpu preset trains on per epoch: which items, and that it
keeps only them."""

from __future__ import annotations

import numpy as np

from ractd.prepare import EpochSubset


class Items:
    """A BatchSource of n items whose batch names the items asked for."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {"item": np.asarray(indices)}


def test_the_subset_is_the_seeded_permutations_prefix_and_owns_only_it():
    sub = EpochSubset(Items(1000), 100, seed=3)
    expected = np.random.default_rng(3).permutation(1000)[:100]
    assert len(sub) == 100
    np.testing.assert_array_equal(sub.index, expected)
    # a copy of 100 int32, not a view keeping the whole permutation of the source alive
    assert sub.index.base is None and sub.index.nbytes == 4 * 100
    np.testing.assert_array_equal(sub.get_batch(np.array([0, 5, 99]))["item"], expected[[0, 5, 99]])
    assert len(EpochSubset(Items(10), 50)) == 10  # never more than the source has
