from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import lm_envs  # noqa: F401
from lm_envs.vector.next_token import LMNextTokenVectorEnv


def _make_vec(corpus, num_envs, **kwargs):
    return gym.make_vec(
        "LMNextToken-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        corpus=str(corpus),
        **kwargs,
    )


@pytest.mark.parametrize("reward", ["match", "log_prob"])
def test_batch_equals_single_envs_next_step(tiny_corpus, reward):
    kwargs = {"context_length": 6, "episode_length": 5, "reward": reward}
    num_envs, seed = 4, 11
    vec = _make_vec(tiny_corpus, num_envs, **kwargs)
    singles = [
        gym.make("LMNextToken-v0", corpus=str(tiny_corpus), **kwargs) for _ in range(num_envs)
    ]
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP

    vec_obs, _ = vec.reset(seed=seed)
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(vec_obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    needs_reset = np.zeros(num_envs, dtype=bool)
    for _ in range(40):
        actions = rng.integers(1, vec.single_action_space.n, size=num_envs)
        vec_obs, vec_rew, vec_term, vec_trunc, _ = vec.step(actions)
        for i, env in enumerate(singles):
            if needs_reset[i]:
                obs, _ = env.reset()
                reward, terminated, truncated = 0.0, False, False
            else:
                obs, reward, terminated, truncated, _ = env.step(int(actions[i]))
            np.testing.assert_array_equal(vec_obs[i], obs)
            assert vec_rew[i] == pytest.approx(reward, rel=1e-6)
            assert (vec_term[i], vec_trunc[i]) == (terminated, truncated)
            needs_reset[i] = terminated or truncated
    assert vec_obs.dtype == np.int32


def test_batch_equals_single_envs_same_step(tiny_corpus):
    kwargs = {"context_length": 6, "episode_length": 4}
    num_envs, seed = 3, 5
    vec = _make_vec(tiny_corpus, num_envs, autoreset_mode="same_step", **kwargs)
    singles = [
        gym.make("LMNextToken-v0", corpus=str(tiny_corpus), **kwargs) for _ in range(num_envs)
    ]
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    vec.reset(seed=seed)
    for i, env in enumerate(singles):
        env.reset(seed=seed + i)
    saw_final = False
    for _ in range(20):
        actions = np.full(num_envs, 2)
        vec_obs, vec_rew, vec_term, vec_trunc, infos = vec.step(actions)
        for i, env in enumerate(singles):
            obs, reward, terminated, truncated, _ = env.step(2)
            assert (vec_term[i], vec_trunc[i]) == (terminated, truncated)
            assert vec_rew[i] == reward
            if terminated or truncated:
                saw_final = True
                assert infos["_final_obs"][i]
                np.testing.assert_array_equal(infos["final_obs"][i], obs)
                obs, _ = env.reset()
            np.testing.assert_array_equal(vec_obs[i], obs)
    assert saw_final


def test_autoreset_step_ignores_action(tiny_corpus):
    vec = _make_vec(tiny_corpus, 2, episode_length=1)
    vec.reset(seed=0)
    _, _, _, truncated, _ = vec.step(np.array([2, 2]))
    assert truncated.all()
    _, rewards, terminated, truncated, infos = vec.step(np.array([2, 2]))
    assert (rewards == 0).all()
    assert not terminated.any()
    assert not truncated.any()
    assert not infos["_target"].any()


def test_action_masks_batch_shape(tiny_corpus):
    vec = _make_vec(tiny_corpus, 5)
    masks = vec.action_masks()
    assert masks.shape == (5, vec.single_action_space.n)
    assert masks.dtype == bool
    assert not masks[:, 0].any()


def test_spaces_batched(tiny_corpus):
    vec = _make_vec(tiny_corpus, 3, context_length=7)
    assert vec.observation_space.shape == (3, 7)
    obs, _ = vec.reset(seed=0)
    assert vec.observation_space.contains(obs)


@pytest.mark.parametrize(
    ("actions", "error", "message"),
    [
        (np.array([0, 1]), ValueError, r"actions must have shape \(3,\), got \(2,\)"),
        (
            np.array([0.5, 1.0, 2.0]),
            TypeError,
            r"actions must be integer token ids, got dtype float64",
        ),
        (np.array([0, 1, 10**6]), ValueError, r"action 1000000 is out of range"),
    ],
)
def test_bad_batch_actions(tiny_corpus, actions, error, message):
    vec = _make_vec(tiny_corpus, 3)
    vec.reset(seed=0)
    with pytest.raises(error, match=message):
        vec.step(actions)


def test_bad_num_envs_and_mode(tiny_corpus):
    with pytest.raises(ValueError, match="num_envs must be >= 1, got 0"):
        LMNextTokenVectorEnv(num_envs=0, corpus=str(tiny_corpus))
    with pytest.raises(ValueError, match="Did you mean 'same_step'"):
        LMNextTokenVectorEnv(num_envs=1, corpus=str(tiny_corpus), autoreset_mode="samestep")


def test_seed_list_length_checked(tiny_corpus):
    vec = _make_vec(tiny_corpus, 2)
    with pytest.raises(ValueError, match="seed list has 3 entries; expected num_envs=2"):
        vec.reset(seed=[1, 2, 3])


def test_render_returns_one_text_per_env(tiny_corpus):
    vec = _make_vec(tiny_corpus, 2, render_mode="ansi")
    vec.reset(seed=0)
    vec.step(np.array([3, 3]))
    texts = vec.render()
    assert len(texts) == 2
    assert all("[[" in text for text in texts)
