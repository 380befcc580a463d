"""Checks that run over every registered id, including ids added later."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import lm_envs
from lm_envs.registration import ENVIRONMENTS

ALL_IDS = sorted(ENVIRONMENTS)


def _rollout(env, seed: int, steps: int) -> list:
    obs, _ = env.reset(seed=seed)
    action_rng = np.random.default_rng(seed)
    record = [obs.tolist()]
    for _ in range(steps):
        valid = np.flatnonzero(env.unwrapped.action_masks())
        obs, reward, terminated, truncated, _ = env.step(int(action_rng.choice(valid)))
        record.append((obs.tolist(), float(reward), bool(terminated), bool(truncated)))
        if terminated or truncated:
            obs, _ = env.reset()
            record.append(obs.tolist())
    return record


def test_every_id_registered_on_import():
    for env_id in ALL_IDS:
        assert env_id in gym.registry
        assert gym.registry[env_id].vector_entry_point is not None, env_id


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_determinism_rollout(env_id):
    first = _rollout(gym.make(env_id), seed=123, steps=300)
    second = _rollout(gym.make(env_id), seed=123, steps=300)
    assert first == second


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_environment_card(env_id):
    env = gym.make(env_id)
    card = type(env.unwrapped).__doc__
    for heading in (
        "Action space",
        "Observation space",
        "Rewards",
        "Episode end",
        "Arguments",
        "Version history",
    ):
        assert heading in card, f"{env_id} card lacks {heading!r}"


def test_unknown_id_suggests():
    with pytest.raises(gym.error.Error, match="LMNextToken"):
        gym.make("LMNextTokn-v0")


def test_version_attribute():
    assert lm_envs.__version__
