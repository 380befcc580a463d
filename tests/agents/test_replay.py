"""Replay buffer and sum tree: storage, wrap-around, n-step windows, priorities, masks."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from agents import replay as replay_module
from agents.replay import ReplayBuffer
from agents.sum_tree import SumTree

L = 3
V = 50


def make_buffer(**kwargs) -> ReplayBuffer:
    settings = dict(capacity=64, num_envs=1, context_length=L, vocab_size=V, n_step=1, gamma=0.5)
    settings.update(kwargs)
    settings.setdefault("rng", np.random.default_rng(0))
    return ReplayBuffer(**settings)


def obs_of(value: int, num_envs: int = 1) -> np.ndarray:
    """An observation whose ids all equal ``value``, so tests can read which step it was."""
    return np.full((num_envs, L), value, dtype=np.int32)


def add_step(
    buffer: ReplayBuffer,
    value: int,
    reward: float = 0.0,
    terminated: bool = False,
    truncated: bool = False,
    valid: bool = True,
    action: int = 0,
) -> None:
    buffer.add(
        obs_of(value),
        np.array([action]),
        np.array([reward], dtype=np.float32),
        np.array([terminated]),
        np.array([truncated]),
        valid=np.array([valid]),
    )


def transition_of(buffer: ReplayBuffer, first_obs_value: int, draws: int = 400):
    """Sample until the transition starting at the observation ``first_obs_value`` shows up."""
    batch = buffer.sample(draws)
    rows = np.flatnonzero(batch.obs[:, 0] == first_obs_value)
    assert len(rows) > 0, f"the step with observation {first_obs_value} was never sampled"
    i = rows[0]
    return (
        float(batch.returns[i]),
        int(batch.next_obs[i, 0]),
        float(batch.discounts[i]),
        int(batch.steps[i]),
        bool(batch.terminated[i]),
    )


# ------------------------------------------------------------------------------------------
# Sum tree


def test_sum_tree_sums_and_duplicates():
    tree = SumTree(5)
    tree.update(np.array([0, 1, 2, 3, 4]), np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert tree.total == pytest.approx(15.0)
    tree.update(np.array([2, 2]), np.array([10.0, 0.5]))
    assert tree.leaf_values(np.array([2]))[0] == 0.5
    assert tree.total == pytest.approx(12.5)
    rebuilt = SumTree(5)
    rebuilt.set_all(tree.leaf_values(np.arange(5)))
    np.testing.assert_allclose(rebuilt.nodes, tree.nodes)


def test_sum_tree_find_intervals():
    tree = SumTree(4)
    tree.update(np.arange(4), np.array([1.0, 0.0, 2.0, 1.0]))
    found = tree.find(np.array([0.0, 0.99, 1.0, 2.99, 3.0, 3.99]))
    np.testing.assert_array_equal(found, [0, 0, 2, 2, 3, 3])


def test_sum_tree_sampling_proportional():
    tree = SumTree(6)
    priorities = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 10.0])
    tree.update(np.arange(6), priorities)
    rng = np.random.default_rng(0)
    draws = np.concatenate([tree.sample(100, rng) for _ in range(400)])
    frequencies = np.bincount(draws, minlength=6) / len(draws)
    np.testing.assert_allclose(frequencies, priorities / priorities.sum(), atol=0.01)
    assert frequencies[4] == 0.0


def test_sum_tree_rejects_bad_input():
    tree = SumTree(3)
    with pytest.raises(ValueError, match="leaf ids must be in"):
        tree.update(np.array([3]), np.array([1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(RuntimeError, match="every priority is 0"):
        tree.sample(1, np.random.default_rng(0))


# ------------------------------------------------------------------------------------------
# Storage


@pytest.mark.parametrize(
    ("vocab_size", "dtype"),
    [(200, np.uint8), (256, np.uint8), (300, np.uint16), (70_000, np.uint32)],
)
def test_storage_dtype_is_smallest(vocab_size, dtype):
    buffer = make_buffer(vocab_size=vocab_size, capacity=8)
    assert buffer.obs.dtype == dtype
    assert buffer.actions.dtype == dtype


def test_storage_and_sampling():
    buffer = make_buffer(num_envs=2, capacity=40)
    for t in range(10):
        buffer.add(
            np.stack([obs_of(t)[0], obs_of(20 + t)[0]]),
            np.array([t, 20 + t]),
            np.array([t, 20 + t], dtype=np.float32),
            np.zeros(2, dtype=bool),
            np.zeros(2, dtype=bool),
        )
    assert len(buffer) == 20
    # The newest step of each column has no successor yet.
    assert buffer.num_sampleable() == 18
    batch = buffer.sample(500)
    first = batch.obs[:, 0].astype(np.int64)
    np.testing.assert_array_equal(batch.actions, first)
    np.testing.assert_array_equal(batch.returns, first)
    np.testing.assert_array_equal(batch.next_obs[:, 0], first + 1)
    np.testing.assert_array_equal(batch.discounts, 0.5)
    assert set(first) == set(range(9)) | set(range(20, 29))
    np.testing.assert_array_equal(batch.weights, 1.0)


def test_wrap_around_keeps_newest():
    buffer = make_buffer(capacity=5)
    for t in range(13):
        add_step(buffer, t, reward=t)
    assert len(buffer) == 5
    batch = buffer.sample(300)
    # Rows 8..12 are stored; 12 has no successor yet.
    assert set(batch.obs[:, 0]) == {8, 9, 10, 11}
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.obs[:, 0] + 1)


def test_memory_statement_matches_allocation(caplog):
    with caplog.at_level(logging.INFO, logger="agents.replay"):
        buffer = make_buffer(capacity=100, num_envs=4, prioritized=True)
    arrays = [buffer.obs, buffer.actions, buffer.rewards, buffer.terminated, buffer.ended]
    allocated = sum(a.nbytes for a in arrays) + buffer.valid.nbytes + buffer.tree.nodes.nbytes
    mask_id_bytes = buffer.rows * buffer.num_envs * 2
    assert buffer.nbytes == allocated + mask_id_bytes
    assert f"{buffer.nbytes} bytes" in caplog.text


def test_memory_too_large_raises(monkeypatch):
    monkeypatch.setattr(replay_module, "physical_memory_bytes", lambda: 1000)
    with pytest.raises(ValueError, match="more than this machine's .* lower the buffer size"):
        make_buffer(capacity=1000)


def test_memory_over_half_warns(monkeypatch):
    needed = ReplayBuffer.memory_bytes(1000, 1, L, V, False)
    monkeypatch.setattr(replay_module, "physical_memory_bytes", lambda: needed + 10)
    with pytest.warns(UserWarning, match="over half of this machine's"):
        make_buffer(capacity=1000)


def test_too_few_rows_for_n_step():
    with pytest.raises(ValueError, match="n_step=4 needs at least 5; raise the buffer size"):
        make_buffer(capacity=8, num_envs=2, n_step=4)


def test_sample_before_any_transition_raises():
    buffer = make_buffer()
    with pytest.raises(RuntimeError, match="the replay buffer is empty"):
        buffer.sample(4)
    add_step(buffer, 1)
    with pytest.raises(RuntimeError, match="no complete transition yet"):
        buffer.sample(4)


# ------------------------------------------------------------------------------------------
# n-step windows


def test_n_step_plain_window():
    buffer = make_buffer(n_step=3, gamma=0.5)
    for t in range(6):
        add_step(buffer, t, reward=t + 1)
    returns, next_value, discount, steps, terminated = transition_of(buffer, 0)
    assert returns == pytest.approx(1 + 0.5 * 2 + 0.25 * 3)
    assert next_value == 3
    assert discount == pytest.approx(0.125)
    assert steps == 3
    assert not terminated
    # Rows 3, 4, 5 do not have three successors yet.
    assert buffer.num_sampleable() == 3


def test_n_step_termination_inside_window():
    buffer = make_buffer(n_step=3, gamma=0.5)
    add_step(buffer, 0, reward=1)
    add_step(buffer, 1, reward=2, terminated=True)
    add_step(buffer, 2, valid=False)  # the final observation row
    add_step(buffer, 10, reward=100)  # the next episode
    add_step(buffer, 11, reward=100)
    add_step(buffer, 12, reward=100)
    add_step(buffer, 13, reward=100)
    returns, _, discount, steps, terminated = transition_of(buffer, 0)
    assert returns == pytest.approx(1 + 0.5 * 2)
    assert discount == 0.0
    assert steps == 2
    assert terminated
    returns, _, discount, steps, terminated = transition_of(buffer, 1)
    assert returns == pytest.approx(2)
    assert discount == 0.0
    assert steps == 1


def test_n_step_truncation_uses_final_obs():
    buffer = make_buffer(n_step=3, gamma=0.5)
    add_step(buffer, 0, reward=1)
    add_step(buffer, 1, reward=2, truncated=True)
    add_step(buffer, 7, valid=False)  # the true final observation
    add_step(buffer, 10, reward=100)  # the next episode's first observation
    add_step(buffer, 11, reward=100)
    add_step(buffer, 12, reward=100)
    returns, next_value, discount, steps, terminated = transition_of(buffer, 0)
    assert returns == pytest.approx(1 + 0.5 * 2)
    assert next_value == 7
    assert discount == pytest.approx(0.25)
    assert steps == 2
    assert not terminated
    returns, next_value, discount, _, _ = transition_of(buffer, 1)
    assert (returns, next_value, discount) == (pytest.approx(2.0), 7, pytest.approx(0.5))


def test_final_obs_rows_never_sampled():
    buffer = make_buffer(n_step=2)
    for episode in range(5):
        add_step(buffer, 10 * episode + 1, reward=1)
        add_step(buffer, 10 * episode + 2, reward=1, truncated=True)
        add_step(buffer, 10 * episode + 9, valid=False)
    batch = buffer.sample(500)
    assert not np.isin(batch.obs[:, 0] % 10, [9]).any()
    assert len(buffer) == 10
    assert buffer.num_sampleable() == 10


def test_episode_end_awaits_final_row():
    buffer = make_buffer(n_step=2)
    add_step(buffer, 1, reward=1)
    add_step(buffer, 2, reward=1, truncated=True)
    # Both steps bootstrap from the final observation, which is not stored yet.
    assert buffer.num_sampleable() == 0
    add_step(buffer, 3, valid=False)
    assert buffer.num_sampleable() == 2


def test_cut_drops_open_windows():
    buffer = make_buffer(n_step=3)
    for t in range(6):
        add_step(buffer, t, reward=1)
    assert buffer.num_sampleable() == 3
    buffer.cut()
    assert len(buffer) == 3
    for t in range(20, 26):
        add_step(buffer, t, reward=1)
    batch = buffer.sample(400)
    # Steps 3, 4 and 5 would have bootstrapped from the new rollout's rows.
    assert not np.isin(batch.obs[:, 0], [3, 4, 5]).any()
    assert set(batch.obs[:, 0]) == {0, 1, 2, 20, 21, 22}


def test_rewards_after_window_do_not_leak():
    buffer = make_buffer(n_step=3, gamma=0.5)
    add_step(buffer, 0, reward=1, terminated=True)
    add_step(buffer, 1, valid=False)
    add_step(buffer, 2, reward=float("nan"))
    add_step(buffer, 3, reward=float("nan"))
    returns, _, discount, _, _ = transition_of(buffer, 0)
    assert returns == 1.0
    assert discount == 0.0


# ------------------------------------------------------------------------------------------
# Priorities


def test_prioritized_importance_weights():
    buffer = make_buffer(capacity=8, prioritized=True, alpha=1.0, priority_eps=1e-6)
    for t in range(5):
        add_step(buffer, t)
    # Leaves are slot * num_envs + env, so step t sits at leaf t here.
    buffer.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    batch = buffer.sample(200, beta=0.5)
    priorities = np.array([1.0, 2.0, 3.0, 4.0]) + 1e-6
    # Step 4 (no successor) keeps priority 1, the max priority when it was added.
    total = priorities.sum() + 1.0
    probabilities = priorities[batch.indices] / total
    expected = (probabilities * len(buffer)) ** -0.5
    np.testing.assert_allclose(batch.weights, expected / expected.max(), rtol=1e-5)
    assert batch.weights.max() == pytest.approx(1.0)


def test_priorities_steer_sampling():
    buffer = make_buffer(capacity=16, prioritized=True, alpha=1.0)
    for t in range(9):
        add_step(buffer, t)
    buffer.update_priorities(np.arange(8), np.array([1e-3] * 7 + [100.0]))
    batch = buffer.sample(400)
    assert np.mean(batch.obs[:, 0] == 7) > 0.95
    assert buffer.max_priority == pytest.approx(100.0 + buffer.priority_eps)


def test_update_priorities_rejects_nan():
    buffer = make_buffer(prioritized=True)
    add_step(buffer, 0)
    add_step(buffer, 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        buffer.update_priorities(np.array([0]), np.array([np.nan]))


# ------------------------------------------------------------------------------------------
# Masks and checkpoints


def test_constant_masks_store_no_ids():
    buffer = make_buffer(num_envs=3)
    mask = np.ones((3, V), dtype=bool)
    mask[:, 0] = False
    for t in range(4):
        buffer.add(
            obs_of(t, 3), np.zeros(3), np.zeros(3), np.zeros(3, bool), np.zeros(3, bool), mask
        )
    assert buffer.mask_ids is None
    assert buffer.mask_table.shape == (1, V)
    np.testing.assert_array_equal(buffer.mask_table[0], mask[0])


def test_varying_masks_map_to_next_obs():
    buffer = make_buffer(num_envs=1)
    masks = []
    for t in range(6):
        mask = np.zeros((1, V), dtype=bool)
        mask[0, t % 3 + 1] = True  # three distinct masks
        masks.append(mask[0])
        buffer.add(obs_of(t), np.zeros(1), np.zeros(1), np.zeros(1, bool), np.zeros(1, bool), mask)
    assert buffer.mask_ids is not None
    assert len(buffer.mask_table) == 3
    batch = buffer.sample(200)
    next_masks = buffer.mask_table[batch.next_mask_ids]
    for row, next_value in zip(next_masks, batch.next_obs[:, 0], strict=True):
        np.testing.assert_array_equal(row, masks[next_value])


def test_state_dict_round_trip():
    buffer = make_buffer(num_envs=2, n_step=2, prioritized=True)
    for t in range(7):
        mask = np.ones((2, V), dtype=bool)
        mask[1, t % 2] = False
        buffer.add(
            obs_of(t, 2),
            np.array([t, t]),
            np.array([t, -t]),
            np.array([False, t == 3]),
            np.zeros(2, bool),
            mask,
        )
    buffer.update_priorities(np.array([0, 3]), np.array([5.0, 0.1]))
    arrays, scalars = buffer.state_dict()
    copy = make_buffer(num_envs=2, n_step=2, prioritized=True, rng=np.random.default_rng(0))
    copy.load_state_dict(arrays, scalars)
    buffer.rng = np.random.default_rng(5)
    copy.rng = np.random.default_rng(5)
    first, second = buffer.sample(64), copy.sample(64)
    for field in ("obs", "returns", "next_obs", "next_mask_ids", "discounts", "weights"):
        np.testing.assert_array_equal(getattr(first, field), getattr(second, field))
    np.testing.assert_array_equal(buffer.mask_table, copy.mask_table)
    assert len(copy) == len(buffer)


def test_load_state_dict_rejects_other_shape():
    arrays, scalars = make_buffer(num_envs=2).state_dict()
    with pytest.raises(ValueError, match="num_envs=2, this one has 1"):
        make_buffer(num_envs=1).load_state_dict(arrays, scalars)
