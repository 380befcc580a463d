"""A binary sum tree over leaf priorities: O(log n) updates and proportional sampling, in numpy."""

from __future__ import annotations

import numpy as np


class SumTree:
    """Leaf priorities with each inner node holding the sum of its children.

    Node 1 is the root and the leaves are nodes ``capacity .. 2 * capacity - 1``, where
    ``capacity`` is ``size`` rounded up to a power of two (padding leaves stay 0). Every method
    works on whole batches of leaves at once.

    Args:
        size: number of leaves that can hold a priority.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}.")
        self.size = int(size)
        self.capacity = 1 << (self.size - 1).bit_length()
        self.depth = self.capacity.bit_length() - 1
        self.nodes = np.zeros(2 * self.capacity, dtype=np.float64)

    @staticmethod
    def memory_bytes(size: int) -> int:
        """Return the bytes that a tree of ``size`` leaves allocates."""
        return 2 * (1 << (int(size) - 1).bit_length()) * 8

    @property
    def total(self) -> float:
        """The sum of all priorities."""
        return float(self.nodes[1])

    def leaf_values(self, leaves: np.ndarray) -> np.ndarray:
        """Return the priorities of ``leaves``."""
        return self.nodes[np.asarray(leaves, dtype=np.int64) + self.capacity]

    def update(self, leaves: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of ``leaves``; a leaf listed twice keeps its last priority."""
        leaves = np.asarray(leaves, dtype=np.int64)
        priorities = np.broadcast_to(np.asarray(priorities, dtype=np.float64), leaves.shape)
        if leaves.size == 0:
            return
        if leaves.min() < 0 or leaves.max() >= self.size:
            raise ValueError(
                f"leaf ids must be in [0, {self.size}), got {leaves.min()}..{leaves.max()}."
            )
        if (priorities < 0).any() or not np.isfinite(priorities).all():
            raise ValueError("priorities must be finite and >= 0.")
        # numpy leaves the winner of repeated fancy-index writes unspecified, so keep the last.
        _, last_from_end = np.unique(leaves[::-1], return_index=True)
        keep = len(leaves) - 1 - last_from_end
        nodes = leaves[keep] + self.capacity
        self.nodes[nodes] = priorities[keep]
        for _ in range(self.depth):
            nodes = np.unique(nodes // 2)
            self.nodes[nodes] = self.nodes[2 * nodes] + self.nodes[2 * nodes + 1]

    def set_all(self, priorities: np.ndarray) -> None:
        """Replace every leaf priority (length ``size``) and rebuild the inner sums."""
        priorities = np.asarray(priorities, dtype=np.float64)
        if priorities.shape != (self.size,):
            raise ValueError(f"priorities must have shape ({self.size},), got {priorities.shape}.")
        self.nodes[:] = 0.0
        self.nodes[self.capacity : self.capacity + self.size] = priorities
        level = self.capacity // 2
        while level >= 1:
            parents = np.arange(level, 2 * level)
            self.nodes[parents] = self.nodes[2 * parents] + self.nodes[2 * parents + 1]
            level //= 2

    def find(self, values: np.ndarray) -> np.ndarray:
        """Return, for each value in [0, total), the leaf whose prefix-sum interval contains it."""
        values = np.asarray(values, dtype=np.float64).copy()
        nodes = np.ones(len(values), dtype=np.int64)
        for _ in range(self.depth):
            left = self.nodes[2 * nodes]
            go_right = values >= left
            values = np.where(go_right, values - left, values)
            nodes = 2 * nodes + go_right
        # Rounding can step past the last non-zero leaf; callers reject zero-priority leaves.
        return np.minimum(nodes - self.capacity, self.size - 1)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``count`` leaves with probability proportional to priority, one per stratum.

        The range [0, total) is cut into ``count`` equal strata and one value is drawn
        uniformly in each, which lowers the variance of a batch against independent draws.
        """
        total = self.total
        if not total > 0:
            raise RuntimeError("every priority is 0; add steps before sampling.")
        values = (np.arange(count) + rng.random(count)) * (total / count)
        return self.find(np.minimum(values, np.nextafter(total, 0.0)))
