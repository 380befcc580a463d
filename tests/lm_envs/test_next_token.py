from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lm_envs  # noqa: F401  (registers the ids)
from lm_envs.data import OBS_DTYPE
from lm_envs.errors import UnknownCorpusError

OPTIONS = [
    {},
    {"reward": "log_prob"},
    {"reward": "log_prob", "reference_order": 1},
    {"tokenizer": "byte"},
    {"tokenizer": "bpe", "vocab_size": 300},
    {"split": "validation", "context_length": 8, "episode_length": 16},
    {"split": "test", "context_length": 1},
    {"render_mode": "ansi"},
]


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_check_env_passes(tiny_corpus, options):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus), **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)


def test_default_make_works_on_embedded_corpus():
    env = gym.make("LMNextToken-v0")
    obs, info = env.reset(seed=0)
    assert obs.dtype == OBS_DTYPE
    assert obs.shape == (64,)
    assert env.action_space.n == env.unwrapped.tokenizer.vocab_size
    assert info["action_mask"].dtype == bool


def test_prefixed_id_works():
    env = gym.make("lm_envs:LMNextToken-v0", context_length=4)
    assert env.observation_space.shape == (4,)


def test_observation_left_padded_at_document_start(tiny_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus), context_length=8)
    base = env.unwrapped
    first_target = int(base.setup.windows.targets[0])
    base.reset(seed=0)
    base._position = first_target
    obs = base._observation()
    assert (obs == base.tokenizer.pad_id).all()
    obs, _, _, _, info = base.step(3)
    assert (obs[:-1] == base.tokenizer.pad_id).all()
    assert obs[-1] == info["target"]


def test_match_reward_and_target(tiny_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus))
    env.reset(seed=1)
    target = int(env.unwrapped.setup.windows.stream[env.unwrapped._position])
    _, reward, _, _, info = env.step(target)
    assert info["target"] == target
    assert reward == 1.0
    wrong = (target + 1) % env.action_space.n
    _, reward, _, _, info = env.step(wrong if wrong != info["target"] else 2)
    assert reward in (0.0, 1.0)


def test_log_prob_reward_matches_reference(tiny_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus), reward="log_prob", context_length=6)
    base = env.unwrapped
    obs, _ = env.reset(seed=3)
    _, reward, _, _, _ = env.step(5)
    expected = base.setup.reference.log_prob(obs[None, :], np.array([5]))[0]
    assert reward == pytest.approx(expected)
    assert reward < 0


def test_log_prob_reward_of_pad_is_floored(tiny_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus), reward="log_prob")
    env.reset(seed=0)
    _, reward, _, _, _ = env.step(env.unwrapped.tokenizer.pad_id)
    assert reward == -30.0


def test_termination_at_end_of_document(tiny_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus), episode_length=1000)
    base = env.unwrapped
    env.reset(seed=0)
    terminated = truncated = False
    steps = 0
    while not (terminated or truncated):
        _, _, terminated, truncated, info = env.step(2)
        steps += 1
    assert terminated and not truncated
    assert info["target"] == base.tokenizer.eos_id


def test_truncation_at_episode_length(tiny_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus), episode_length=3)
    base = env.unwrapped
    env.reset(seed=0)
    base._position = int(base.setup.windows.targets[0])
    flags = [env.step(2)[2:4] for _ in range(3)]
    assert flags[:2] == [(False, False), (False, False)]
    assert flags[2] == (False, True)


def test_step_after_end_warns_once(tiny_corpus):
    env = lm_envs.envs.next_token.LMNextTokenEnv(corpus=str(tiny_corpus), episode_length=1)
    env.reset(seed=0)
    env.step(2)
    with pytest.warns(UserWarning, match="call reset"):
        _, reward, _, _, _ = env.step(2)
    assert reward == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.step(2)


def test_render_marks_action(tiny_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus), render_mode="ansi")
    env.reset(seed=0)
    assert isinstance(env.render(), str)
    env.step(3)
    text = env.render()
    assert "[[" in text
    assert "]]" in text
    assert "match" in text or "miss" in text


def test_render_partial_utf8_with_byte_tokenizer(tiny_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(tiny_corpus), tokenizer="byte", render_mode="ansi")
    env.reset(seed=0)
    for action in (0xE4 + 2, 0x9C + 2, 0xAD + 2, 0xF0 + 2):
        env.step(action)
        assert isinstance(env.render(), str)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"context_length": 0}, ValueError, r"context_length must be >= 1, got 0"),
        ({"context_length": 2.5}, TypeError, r"context_length must be an int, got float"),
        ({"episode_length": 0}, ValueError, r"episode_length must be >= 1, got 0"),
        (
            {"split": "dev"},
            ValueError,
            r"split must be one of \['train', 'validation', 'test'\], got 'dev'",
        ),
        ({"reward": "logprob"}, ValueError, r"Did you mean 'log_prob'"),
        ({"tokenizer": "chr"}, ValueError, r"Did you mean 'char'"),
        ({"tokenizer": "bpe"}, ValueError, r"needs vocab_size"),
        ({"vocab_size": 2**40}, ValueError, r"vocab_size must be in \[4, 2147483647\]"),
        ({"render_mode": "human"}, ValueError, r"render_mode must be one of \['ansi'\]"),
        (
            {"reward": "log_prob", "reference_order": 5, "context_length": 2},
            ValueError,
            r"needs context_length >= 4",
        ),
        (
            {"episode_length": 10**9},
            ValueError,
            r"fewer than one episode of episode_length=1000000000",
        ),
    ],
)
def test_bad_arguments(tiny_corpus, kwargs, error, message):
    with pytest.raises(error, match=message):
        gym.make("LMNextToken-v0", corpus=str(tiny_corpus), **kwargs)


def test_unknown_corpus_did_you_mean():
    with pytest.raises(UnknownCorpusError, match="Did you mean 'pydoc'"):
        gym.make("LMNextToken-v0", corpus="pydocs")


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (-1, ValueError, r"action -1 is out of range; valid token ids are 0 \.\. "),
        (10**6, ValueError, r"action 1000000 is out of range"),
        (1.5, TypeError, r"action must be an integer token id, got float"),
        ("a", TypeError, r"action must be an integer token id, got str"),
        (True, TypeError, r"action must be an integer token id, got bool"),
    ],
)
def test_bad_actions(tiny_corpus, action, error, message):
    env = lm_envs.envs.next_token.LMNextTokenEnv(corpus=str(tiny_corpus))
    env.reset(seed=0)
    with pytest.raises(error, match=message):
        env.step(action)


def test_numpy_scalar_action_accepted(tiny_corpus):
    env = lm_envs.envs.next_token.LMNextTokenEnv(corpus=str(tiny_corpus))
    env.reset(seed=0)
    env.step(np.int64(3))
    env.step(np.array(3))


def test_multilingual_corpus_end_to_end(tmp_path):
    folder = tmp_path / "multi"
    folder.mkdir()
    for i in range(25):
        (folder / f"{i}.txt").write_text(
            f"第{i}章 🐍 Ελληνικά mixed text {i} 😀\n", encoding="utf-8"
        )
    for tokenizer, vocab in (("char", None), ("byte", None), ("bpe", 300)):
        env = gym.make(
            "LMNextToken-v0",
            corpus=str(folder),
            tokenizer=tokenizer,
            vocab_size=vocab,
            context_length=16,
            episode_length=8,
            render_mode="ansi",
        )
        env.reset(seed=0)
        for _ in range(20):
            _, _, terminated, truncated, _ = env.step(
                int(env.unwrapped.action_masks().nonzero()[0][0])
            )
            assert isinstance(env.render(), str)
            if terminated or truncated:
                env.reset()
