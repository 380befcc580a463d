"""Experience replay that stores each environment's steps once, in order, with n-step returns.

Every sub-environment owns one column of a ring of ``rows``. A column stores that environment's
steps in the order they happened: the observation, the action taken in it, the reward, whether
the episode ended after the action, and the id of the observation's action mask. The next
observation of a step is the observation stored one row below it, so no observation is stored
twice. After an episode ends, the caller adds one more row that contains the episode's true final
observation and is marked not sampleable (``valid=False``). With next-step autoreset that row is
the step whose action the environment ignores; with same-step autoreset it is built from
``infos["final_obs"]``.

The n-step transition of the step in row ``a`` is computed when it is sampled. It sums
``gamma ** k * r[a + k]`` until ``n`` steps or the end of the episode, whichever comes first, and
bootstraps from the observation ``m`` rows below ``a``. Here ``m`` is ``n``, or the number of
steps up to and including the episode's last step, so a truncated episode bootstraps from its
final observation and never from the next episode's first one. A step that terminated the
episode gets discount 0 (no bootstrap). A step is sampleable once the row it bootstraps from has
been written.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np

from agents.sum_tree import SumTree
from lm_envs.cache import smallest_uint_dtype
from lm_envs.validation import check_int

logger = logging.getLogger(__name__)

# Mask ids are stored as uint16, so at most this many distinct action masks fit in one buffer.
MAX_MASK_KINDS = 2**16
# Rejection rounds before sampling falls back to listing every sampleable row.
_MAX_REJECTION_ROUNDS = 64


def physical_memory_bytes() -> int | None:
    """Return the machine's physical memory in bytes, or None where os.sysconf cannot tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


@dataclass
class ReplayBatch:
    """A sampled batch of n-step transitions (numpy arrays, first axis the batch)."""

    obs: np.ndarray  # (B, L) token ids in the buffer's storage dtype
    actions: np.ndarray  # (B,) int64
    returns: np.ndarray  # (B,) float32, sum of gamma**k * r over the m steps taken
    next_obs: np.ndarray  # (B, L) the observation m steps later
    next_mask_ids: np.ndarray  # (B,) int64 rows of ReplayBuffer.mask_table for next_obs
    discounts: np.ndarray  # (B,) float32, gamma**m, or 0 when the episode terminated
    weights: np.ndarray  # (B,) float32 importance weights, max 1 (all 1 without priorities)
    indices: np.ndarray  # (B,) int64 leaf ids to pass back to update_priorities
    steps: np.ndarray  # (B,) int64, m
    terminated: np.ndarray  # (B,) bool


class ReplayBuffer:
    """Uniform or prioritized replay over ``num_envs`` columns of steps.

    Args:
        capacity: steps stored in total; each environment gets ``ceil(capacity / num_envs)``
            rows.
        num_envs: number of sub-environments (columns).
        context_length: L, the observation length.
        vocab_size: V; observations and actions are stored in the smallest unsigned dtype that
            fits ``V - 1``.
        n_step: steps summed into one return (1 is the one-step Bellman target).
        gamma: discount per step.
        prioritized: sample in proportion to ``(|TD error| + priority_eps) ** alpha``.
        alpha: priority exponent (0 is uniform).
        priority_eps: added to each |TD error| so no stored step gets probability 0.
        rng: the generator that draws samples.

    Raises:
        ValueError: an argument is out of range, or the buffer would not fit in the machine's
            physical memory.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        context_length: int,
        vocab_size: int,
        n_step: int = 1,
        gamma: float = 0.99,
        prioritized: bool = False,
        alpha: float = 0.6,
        priority_eps: float = 1e-6,
        rng: np.random.Generator | None = None,
    ) -> None:
        capacity = check_int("capacity", capacity, 1)
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.context_length = check_int("context_length", context_length, 1)
        self.vocab_size = check_int("vocab_size", vocab_size, 2)
        self.n_step = check_int("n_step", n_step, 1)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}.")
        self.gamma = float(gamma)
        self.rows = math.ceil(capacity / self.num_envs)
        if self.rows < self.n_step + 1:
            raise ValueError(
                f"capacity={capacity} gives {self.rows} rows per environment for "
                f"num_envs={self.num_envs}, but n_step={self.n_step} needs at least "
                f"{self.n_step + 1}; raise the buffer size to >= "
                f"{(self.n_step + 1) * self.num_envs}."
            )
        self.prioritized = bool(prioritized)
        self.alpha = float(alpha)
        self.priority_eps = float(priority_eps)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.token_dtype = smallest_uint_dtype(self.vocab_size)

        self.nbytes = self.memory_bytes(
            self.rows * self.num_envs,
            self.num_envs,
            self.context_length,
            self.vocab_size,
            self.prioritized,
        )
        self._check_memory(capacity)
        logger.info(
            "allocating a replay buffer of %d steps (%d rows x %d environments): %d bytes",
            self.rows * self.num_envs,
            self.rows,
            self.num_envs,
            self.nbytes,
        )
        shape = (self.rows, self.num_envs)
        self.obs = np.zeros((*shape, self.context_length), dtype=self.token_dtype)
        self.actions = np.zeros(shape, dtype=self.token_dtype)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.ended = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)
        # Allocated when a second distinct mask appears; until then every row has mask id 0.
        self.mask_ids: np.ndarray | None = None
        self.counts = np.zeros(self.num_envs, dtype=np.int64)  # rows ever written per column
        self._num_valid = 0
        self._masks: list[np.ndarray] = []
        self._mask_index: dict[bytes, int] = {}
        self._mask_table: np.ndarray | None = None
        self.tree = SumTree(self.rows * self.num_envs) if self.prioritized else None
        self.max_priority = 1.0

    @staticmethod
    def memory_bytes(
        capacity: int, num_envs: int, context_length: int, vocab_size: int, prioritized: bool
    ) -> int:
        """Return the bytes a buffer of these settings allocates, mask ids and sum tree included."""
        rows = math.ceil(capacity / num_envs)
        steps = rows * num_envs
        token_bytes = smallest_uint_dtype(vocab_size).itemsize
        # obs + action + reward (float32) + terminated + ended + valid + mask id (uint16)
        per_step = context_length * token_bytes + token_bytes + 4 + 3 + 2
        total = steps * per_step
        if prioritized:
            total += SumTree.memory_bytes(steps)
        return total

    def _check_memory(self, capacity: int) -> None:
        physical = physical_memory_bytes()
        if physical is None:
            return
        gib = 2**30
        if self.nbytes > physical:
            raise ValueError(
                f"a replay buffer of capacity={capacity} needs {self.nbytes / gib:.2f} GiB, more "
                f"than this machine's {physical / gib:.2f} GiB of physical memory; lower the "
                "buffer size or the context length."
            )
        if self.nbytes > physical / 2:
            warnings.warn(
                f"a replay buffer of capacity={capacity} needs {self.nbytes / gib:.2f} GiB, over "
                f"half of this machine's {physical / gib:.2f} GiB of physical memory; lower the "
                "buffer size if the process runs out of memory.",
                stacklevel=3,
            )

    def __len__(self) -> int:
        """Return the number of stored steps that are real transitions (valid rows)."""
        return self._num_valid

    @property
    def mask_table(self) -> np.ndarray:
        """The distinct action masks seen so far, bool (K, V); row k is mask id k."""
        if self._mask_table is None or len(self._mask_table) != len(self._masks):
            if self._masks:
                self._mask_table = np.stack(self._masks)
            else:
                self._mask_table = np.ones((1, self.vocab_size), dtype=bool)
        return self._mask_table

    # ----------------------------------------------------------------------------------------
    # Writing

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        masks: np.ndarray | None = None,
        valid: np.ndarray | None = None,
        env_ids: np.ndarray | None = None,
    ) -> None:
        """Append one row to each column in ``env_ids`` (all columns when None).

        Args:
            obs: (k, L) observations the actions were taken in.
            actions: (k,) actions taken.
            rewards: (k,) rewards received.
            terminated: (k,) whether the episode terminated after the action.
            truncated: (k,) whether the episode was truncated after the action.
            masks: (k, V) bool action masks of ``obs``; None means every action is valid.
            valid: (k,) False for rows that are not transitions (the step an autoreset ignores,
                or the row holding a final observation); None means all True.
            env_ids: (k,) the columns to append to.
        """
        ids = np.arange(self.num_envs) if env_ids is None else np.asarray(env_ids, dtype=np.int64)
        count = len(ids)
        obs = np.asarray(obs)
        if obs.shape != (count, self.context_length):
            raise ValueError(
                f"obs must have shape ({count}, {self.context_length}), got {obs.shape}."
            )
        valid_rows = np.ones(count, dtype=bool) if valid is None else np.asarray(valid, bool)
        slots = self.counts[ids] % self.rows

        # Rows about to be overwritten leave the valid count first.
        overwritten = self.counts[ids] >= self.rows
        if overwritten.any():
            self._num_valid -= int(self.valid[slots[overwritten], ids[overwritten]].sum())

        # When every column is appended at one shared slot (every Rollout.step under next-step
        # autoreset), a basic-slicing write of that row replaces the slower scatter by (slot, id)
        # pairs.
        where = (slots, ids)
        if env_ids is None and (slots == slots[0]).all():
            where = (int(slots[0]), slice(None))
        self.obs[where] = obs
        self.actions[where] = actions
        self.rewards[where] = rewards
        self.terminated[where] = terminated
        self.ended[where] = np.logical_or(terminated, truncated)
        self.valid[where] = valid_rows
        mask_ids = self._mask_ids_of(masks, count)
        if self.mask_ids is None and mask_ids.any():
            self.mask_ids = np.zeros((self.rows, self.num_envs), dtype=np.uint16)
        if self.mask_ids is not None:
            self.mask_ids[where] = mask_ids
        if self.tree is not None:
            priority = self.max_priority**self.alpha
            self.tree.update(slots * self.num_envs + ids, np.where(valid_rows, priority, 0.0))
        self.counts[ids] += 1
        self._num_valid += int(valid_rows.sum())

    def _mask_ids_of(self, masks: np.ndarray | None, count: int) -> np.ndarray:
        if masks is None:
            return np.full(count, self._mask_id(np.ones(self.vocab_size, dtype=bool)))
        masks = np.asarray(masks, dtype=bool)
        if masks.shape != (count, self.vocab_size):
            raise ValueError(
                f"masks must have shape ({count}, {self.vocab_size}), got {masks.shape}."
            )
        # Environments such as LMNextToken have one mask for every state: one id, no sorting.
        if (masks == masks[0]).all():
            return np.full(count, self._mask_id(masks[0]))
        unique, inverse = np.unique(masks, axis=0, return_inverse=True)
        unique_ids = np.array([self._mask_id(row) for row in unique], dtype=np.int64)
        return unique_ids[inverse.reshape(-1)]

    def _mask_id(self, mask: np.ndarray) -> int:
        key = np.packbits(mask).tobytes()
        found = self._mask_index.get(key)
        if found is None:
            if len(self._masks) >= MAX_MASK_KINDS:
                raise RuntimeError(
                    f"more than {MAX_MASK_KINDS} distinct action masks were added; this buffer "
                    "stores mask ids as uint16. Use fewer distinct masks."
                )
            found = len(self._masks)
            self._masks.append(mask.copy())
            self._mask_index[key] = found
        return found

    def cut(self) -> None:
        """Mark the trailing steps of every column that cannot be completed any more.

        Call this when the environments are reset outside the normal episode flow (a new call
        to ``learn`` after loading a checkpoint, say). The rows that follow will belong to new
        episodes, so steps whose n-step window is still open would otherwise bootstrap from them.
        """
        env_ids, rows = self._tail_rows()
        stale = ~self._ready(env_ids, rows) & self.valid[rows % self.rows, env_ids]
        if not stale.any():
            return
        slots = rows[stale] % self.rows
        ids = env_ids[stale]
        self.valid[slots, ids] = False
        self._num_valid -= int(stale.sum())
        if self.tree is not None:
            self.tree.update(slots * self.num_envs + ids, np.zeros(len(ids)))

    # ----------------------------------------------------------------------------------------
    # Reading

    def num_sampleable(self) -> int:
        """Return how many stored steps can be sampled now (valid rows whose window is complete)."""
        env_ids, rows = self._tail_rows()
        open_steps = ~self._ready(env_ids, rows) & self.valid[rows % self.rows, env_ids]
        return self._num_valid - int(open_steps.sum())

    def _tail_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (env id, absolute row) of the last n_step rows of each column still stored."""
        offsets = np.arange(1, self.n_step + 1)
        rows = self.counts[:, None] - offsets[None, :]
        oldest = np.maximum(self.counts - self.rows, 0)[:, None]
        keep = rows >= oldest
        env_ids = np.broadcast_to(np.arange(self.num_envs)[:, None], rows.shape)
        return env_ids[keep], rows[keep]

    def _window(self, env_ids: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return m (steps in the n-step window) and whether the window ended the episode."""
        ahead = rows[:, None] + np.arange(self.n_step)[None, :]
        written = ahead <= self.counts[env_ids][:, None] - 1
        ended = self.ended[ahead % self.rows, env_ids[:, None]] & written
        any_end = ended.any(axis=1)
        steps = np.where(any_end, ended.argmax(axis=1) + 1, self.n_step)
        return steps, any_end

    def _ready(self, env_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Return whether the row each step bootstraps from has been written."""
        steps, _ = self._window(env_ids, rows)
        return rows + steps <= self.counts[env_ids] - 1

    def _absolute_rows(self, env_ids: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Map ring slots to absolute row numbers (the newest row with that slot)."""
        last = self.counts[env_ids] - 1
        return last - (last - slots) % self.rows

    def _sampleable(self, env_ids: np.ndarray, slots: np.ndarray) -> np.ndarray:
        ok = slots < np.minimum(self.counts[env_ids], self.rows)
        ok[ok] = self.valid[slots[ok], env_ids[ok]]
        if ok.any():
            rows = self._absolute_rows(env_ids[ok], slots[ok])
            ok[ok] = self._ready(env_ids[ok], rows)
        return ok

    def _draw_slots(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``count`` (env id, slot) pairs, uniformly or by priority."""
        if self.tree is not None:
            leaves = self.tree.sample(count, self.rng)
            return leaves % self.num_envs, leaves // self.num_envs
        filled = int(np.minimum(self.counts, self.rows).max())
        env_ids = self.rng.integers(self.num_envs, size=count)
        slots = self.rng.integers(filled, size=count)
        return env_ids, slots

    def sample(self, batch_size: int, beta: float = 1.0) -> ReplayBatch:
        """Draw ``batch_size`` n-step transitions (with replacement).

        Rows that are not sampleable yet are rejected and drawn again, which keeps the
        distribution uniform (or proportional to priority) over the sampleable rows.

        Args:
            batch_size: number of transitions.
            beta: importance-sampling exponent of prioritized replay; weights are
                ``(P(i) * len(self)) ** -beta`` divided by their maximum in the batch.

        Raises:
            RuntimeError: no stored step is sampleable yet.
        """
        batch_size = check_int("batch_size", batch_size, 1)
        if self._num_valid == 0:
            raise RuntimeError("the replay buffer is empty; add steps before sampling.")
        env_ids = np.zeros(batch_size, dtype=np.int64)
        slots = np.zeros(batch_size, dtype=np.int64)
        missing = np.arange(batch_size)
        for _ in range(_MAX_REJECTION_ROUNDS):
            drawn_envs, drawn_slots = self._draw_slots(len(missing))
            ok = self._sampleable(drawn_envs, drawn_slots)
            env_ids[missing[ok]] = drawn_envs[ok]
            slots[missing[ok]] = drawn_slots[ok]
            missing = missing[~ok]
            if len(missing) == 0:
                break
        if len(missing):
            fill_envs, fill_slots = self._draw_from_all_sampleable(len(missing))
            env_ids[missing] = fill_envs
            slots[missing] = fill_slots
        return self._gather(env_ids, slots, beta)

    def _draw_from_all_sampleable(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw among an explicit list of sampleable rows (slow, used when rejection stalls)."""
        filled = int(np.minimum(self.counts, self.rows).max())
        slot_grid, env_grid = np.meshgrid(
            np.arange(filled), np.arange(self.num_envs), indexing="ij"
        )
        env_ids, slots = env_grid.reshape(-1), slot_grid.reshape(-1)
        ok = self._sampleable(env_ids, slots)
        if not ok.any():
            raise RuntimeError(
                "the replay buffer contains no complete transition yet; add more steps before "
                f"sampling (each step needs the row {self.n_step} steps later, or its episode's "
                "final observation)."
            )
        env_ids, slots = env_ids[ok], slots[ok]
        if self.tree is None:
            chosen = self.rng.integers(len(env_ids), size=count)
        else:
            priorities = self.tree.leaf_values(slots * self.num_envs + env_ids)
            chosen = self.rng.choice(len(env_ids), size=count, p=priorities / priorities.sum())
        return env_ids[chosen], slots[chosen]

    def _gather(self, env_ids: np.ndarray, slots: np.ndarray, beta: float) -> ReplayBatch:
        rows = self._absolute_rows(env_ids, slots)
        steps, any_end = self._window(env_ids, rows)

        # Discounted sum of the rewards inside the window. Later rows may belong to another
        # episode or be stale, so they are selected out: multiplying by 0 keeps NaN as NaN.
        offsets = np.arange(self.n_step)
        ahead = (rows[:, None] + offsets[None, :]) % self.rows
        rewards = self.rewards[ahead, env_ids[:, None]].astype(np.float64)
        inside = offsets[None, :] < steps[:, None]
        returns = np.where(inside, rewards * self.gamma ** offsets[None, :], 0.0).sum(axis=1)

        last_slots = (rows + steps - 1) % self.rows
        terminated = any_end & self.terminated[last_slots, env_ids]
        discounts = np.where(terminated, 0.0, self.gamma ** steps.astype(np.float64))
        next_slots = (rows + steps) % self.rows
        if self.mask_ids is None:
            next_mask_ids = np.zeros(len(rows), dtype=np.int64)
        else:
            next_mask_ids = self.mask_ids[next_slots, env_ids].astype(np.int64)

        indices = slots * self.num_envs + env_ids
        if self.tree is None:
            weights = np.ones(len(rows), dtype=np.float32)
        else:
            probabilities = self.tree.leaf_values(indices) / self.tree.total
            weights = (probabilities * max(self._num_valid, 1)) ** (-beta)
            weights = (weights / weights.max()).astype(np.float32)
        return ReplayBatch(
            obs=self.obs[slots, env_ids],
            actions=self.actions[slots, env_ids].astype(np.int64),
            returns=returns.astype(np.float32),
            next_obs=self.obs[next_slots, env_ids],
            next_mask_ids=next_mask_ids,
            discounts=discounts.astype(np.float32),
            weights=weights,
            indices=indices.astype(np.int64),
            steps=steps.astype(np.int64),
            terminated=terminated,
        )

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set the priority of sampled steps to ``(|td_error| + priority_eps) ** alpha``."""
        if self.tree is None:
            raise ValueError("update_priorities needs a buffer built with prioritized=True.")
        td_errors = np.abs(np.asarray(td_errors, dtype=np.float64))
        if not np.isfinite(td_errors).all():
            raise ValueError("td_errors contain NaN or inf; priorities must be finite.")
        priorities = td_errors + self.priority_eps
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self.tree.update(np.asarray(indices, dtype=np.int64), priorities**self.alpha)

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """Return the stored arrays and the scalar state (JSON-serializable) for a checkpoint."""
        arrays = {
            "obs": self.obs,
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": self.terminated,
            "ended": self.ended,
            "valid": self.valid,
            "counts": self.counts,
            "mask_table": self.mask_table,
        }
        if self.mask_ids is not None:
            arrays["mask_ids"] = self.mask_ids
        if self.tree is not None:
            arrays["priorities"] = self.tree.leaf_values(np.arange(self.rows * self.num_envs))
        scalars = {
            "rows": self.rows,
            "num_envs": self.num_envs,
            "context_length": self.context_length,
            "vocab_size": self.vocab_size,
            "num_valid": self._num_valid,
            "has_masks": bool(self._masks),
            "max_priority": self.max_priority,
        }
        return arrays, scalars

    def load_state_dict(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Restore what :meth:`state_dict` returned; the buffer must have the same shape."""
        for key in ("num_envs", "rows", "context_length", "vocab_size"):
            if scalars[key] != getattr(self, key):
                raise ValueError(
                    f"the saved replay buffer has {key}={scalars[key]}, this one has "
                    f"{getattr(self, key)}; build the agent with the saved settings or load "
                    "without the replay buffer."
                )
        for key in ("obs", "actions", "rewards", "terminated", "ended", "valid", "counts"):
            getattr(self, key)[...] = arrays[key]
        self.mask_ids = arrays["mask_ids"].astype(np.uint16) if "mask_ids" in arrays else None
        self._masks = []
        self._mask_index = {}
        self._mask_table = None
        if scalars["has_masks"]:
            for row in arrays["mask_table"]:
                self._mask_id(row.astype(bool))
        self._num_valid = int(scalars["num_valid"])
        self.max_priority = float(scalars["max_priority"])
        if self.tree is not None:
            if "priorities" not in arrays:
                raise ValueError(
                    "the saved replay buffer has no priorities; load it into an agent with "
                    "prioritized_replay=False."
                )
            self.tree.set_all(arrays["priorities"])
