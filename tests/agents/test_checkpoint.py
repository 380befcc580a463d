"""Checkpoints: round trips, safe loading, atomic folders, exact resume, stop on NaN."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.checkpoint import write_folder_atomically
from agents.dqn import DQN, DQNConfig

NUM_ENVS = 8


def make_env(corpus, num_envs=NUM_ENVS):
    return gym.make_vec(
        "LMNextToken-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        corpus=str(corpus),
        context_length=4,
        episode_length=12,
    )


def small_config(**kwargs) -> DQNConfig:
    settings = dict(
        total_steps=2048,
        learning_starts=128,
        gamma=0.0,
        learning_rate=1e-3,
        batch_size=32,
        hidden_dim=32,
        buffer_size=1024,
        target_update_interval=200,
        log_outputs=(),
    )
    settings.update(kwargs)
    return DQNConfig(**settings)


def assert_same_weights(first: torch.nn.Module, second: torch.nn.Module) -> None:
    second_state = second.state_dict()
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second_state[name]), name


def test_round_trip_gives_identical_q_values(abc_corpus, tmp_path):
    agent = DQN(make_env(abc_corpus), small_config(dueling=True), device="cpu", seed=1)
    agent.learn(512)
    path = agent.save(tmp_path / "checkpoint")
    assert sorted(os.listdir(path)) == [
        "config.json",
        "optimizer.pt",
        "q_network.pt",
        "target_network.pt",
        "training_state.json",
        "training_state.npz",
    ]
    loaded = DQN.load(path, device="cpu")
    obs = np.random.default_rng(0).integers(0, agent.vocab_size, size=(20, 4))
    np.testing.assert_array_equal(loaded.q_values(obs), agent.q_values(obs))
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    assert loaded.config == agent.config
    assert loaded.num_timesteps == agent.num_timesteps == 512
    assert loaded.n_updates == agent.n_updates
    assert_same_weights(loaded.target_network, agent.target_network)
    assert json.loads((path / "config.json").read_text())["config"]["dueling"] is True


def test_agent_without_env_cannot_learn(abc_corpus, tmp_path):
    path = DQN(make_env(abc_corpus), small_config(), device="cpu").save(tmp_path / "c")
    loaded = DQN.load(path, device="cpu")
    with pytest.raises(ValueError, match="no environment; pass env= to DQN.load"):
        loaded.learn(8)
    with pytest.raises(ValueError, match="resume_rollout=True needs env="):
        DQN.load(path, device="cpu", resume_rollout=True)


def test_pickled_object_is_rejected(abc_corpus, tmp_path):
    path = DQN(make_env(abc_corpus), small_config(), device="cpu").save(tmp_path / "c")
    # A pickle of an arbitrary object (here a class from this test module) must not load.
    torch.save({"weights": Path("not a tensor")}, path / "q_network.pt")
    with pytest.raises(ValueError, match="objects other than tensors .* not loaded"):
        DQN.load(path, device="cpu")


def test_object_array_is_rejected(abc_corpus, tmp_path):
    path = DQN(make_env(abc_corpus), small_config(), device="cpu").save(tmp_path / "c")
    object_array = np.array([{"a": 1}], dtype=object)
    with open(path / "training_state.npz", "wb") as handle:
        np.savez(handle, torch_generator=object_array)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        DQN.load(path, device="cpu")


def test_missing_or_foreign_folder(abc_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder at"):
        DQN.load(tmp_path / "absent", device="cpu")
    path = DQN(make_env(abc_corpus), small_config(), device="cpu").save(tmp_path / "c")
    meta = json.loads((path / "config.json").read_text())
    meta["format_version"] = 99
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="format version 99; this code reads version 1"):
        DQN.load(path, device="cpu")
    (path / "optimizer.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing \['optimizer.pt'\]"):
        DQN.load(path, device="cpu")


def test_atomic_folder_replaces_or_keeps(tmp_path):
    target = tmp_path / "checkpoint"
    write_folder_atomically(target, {"a.txt": b"old", "b.txt": b"old"})
    write_folder_atomically(target, {"a.txt": b"new"})
    assert sorted(os.listdir(target)) == ["a.txt"]
    assert (target / "a.txt").read_bytes() == b"new"
    # A failure while writing leaves the previous folder untouched and no temporary behind.
    with pytest.raises(TypeError):
        write_folder_atomically(target, {"a.txt": b"newer", "b.txt": "not bytes"})
    assert (target / "a.txt").read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file; pass a folder path"):
        write_folder_atomically(tmp_path / "file", {})


def test_replay_round_trip(abc_corpus, tmp_path):
    agent = DQN(make_env(abc_corpus), small_config(prioritized_replay=True), device="cpu")
    agent.learn(512)
    path = agent.save(tmp_path / "c", include_replay=True)
    assert (path / "replay.npz").is_file()
    loaded = DQN.load(path, env=make_env(abc_corpus), device="cpu")
    for name in ("obs", "actions", "rewards", "ended", "valid", "counts"):
        np.testing.assert_array_equal(getattr(loaded.replay, name), getattr(agent.replay, name))
    np.testing.assert_array_equal(loaded.replay.tree.nodes, agent.replay.tree.nodes)
    assert len(loaded.replay) == len(agent.replay)
    with pytest.raises(ValueError, match="num_envs=8, this one has 4"):
        DQN.load(path, env=make_env(abc_corpus, num_envs=4), device="cpu")


@pytest.mark.filterwarnings("ignore:gamma=0.5 on LMNextToken")
def test_exact_resume(abc_corpus, tmp_path):
    """Training 2048 steps in one go equals 1024 + save + load + 1024 with the same seeds.

    The environment cannot be saved, so the resumed run gets a re-created env, reset with the
    agent's seed and stepped as many vector steps as the first half took. That reproduces its
    state because LMNextToken-v0 is teacher-forced: its trajectory does not depend on actions.
    """
    config = small_config(n_step=2, gamma=0.5, prioritized_replay=True, double_dqn=True)
    uninterrupted = DQN(make_env(abc_corpus), config, device="cpu", seed=3)
    uninterrupted.learn(2048)

    first_half = DQN(make_env(abc_corpus), config, device="cpu", seed=3)
    first_half.learn(1024)
    path = first_half.save(tmp_path / "half", include_replay=True)

    env = make_env(abc_corpus)
    env.reset(seed=3)
    for _ in range(1024 // NUM_ENVS):
        env.step(np.zeros(NUM_ENVS, dtype=np.int64))
    resumed = DQN.load(path, env=env, device="cpu", resume_rollout=True)
    resumed.learn(1024)

    assert resumed.num_timesteps == uninterrupted.num_timesteps == 2048
    assert resumed.n_updates == uninterrupted.n_updates
    assert_same_weights(resumed.q_network, uninterrupted.q_network)
    assert_same_weights(resumed.target_network, uninterrupted.target_network)
    np.testing.assert_array_equal(resumed.replay.obs, uninterrupted.replay.obs)
    # Without resume_rollout the env is reset afresh, so the runs part ways.
    diverged = DQN.load(path, env=make_env(abc_corpus), device="cpu").learn(1024)
    assert not torch.equal(diverged.q_network.head.weight, uninterrupted.q_network.head.weight)


class NaNRewardsAfter(gym.vector.VectorWrapper):
    """Return NaN rewards from environment step ``start`` on."""

    def __init__(self, env, start: int) -> None:
        super().__init__(env)
        self.start = start
        self.steps = 0

    def step(self, actions):
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        self.steps += self.num_envs
        if self.steps > self.start:
            rewards = np.full_like(rewards, np.nan)
        return obs, rewards, terminated, truncated, infos


def test_nan_stops_and_keeps_checkpoint(abc_corpus, tmp_path):
    folder = tmp_path / "checkpoints"
    config = small_config(
        checkpoint_folder=str(folder), checkpoint_interval=128, log_interval=64, batch_size=256
    )
    agent = DQN(NaNRewardsAfter(make_env(abc_corpus), start=512), config, device="cpu")
    with pytest.raises(RuntimeError, match="NaN or infinite loss or Q-value; the last good"):
        agent.learn(2048)
    assert agent.num_timesteps < 1024
    saved = DQN.load(folder, device="cpu")
    assert saved.num_timesteps <= 512
    for tensor in saved.q_network.state_dict().values():
        assert torch.isfinite(tensor).all()
    with pytest.raises(RuntimeError, match="NaN or infinite"):
        agent.save(tmp_path / "after_nan")
    assert not (tmp_path / "after_nan").exists()
