"""Stable-Baselines3 adapter, feature extractor, accuracy callback and training recipes."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode
from sb3_contrib import QRDQN, MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecEnv, VecMonitor

import lm_envs
from lm_envs.reference import LOG_PROB_FLOOR
from lm_envs.sb3.callbacks import TokenAccuracyCallback
from lm_envs.sb3.extractors import TokenWindowExtractor
from lm_envs.sb3.vec_env import LMVecEnv, make_sb3_env, split_infos

ENV_ID = "LMNextToken-v0"
# With the tiny corpus and the char tokenizer, V = 47 and 44 ids are valid actions, so a
# uniformly random policy scores about 0.023, and always naming the most frequent validation
# token (a space) scores 0.21. Beating 0.3 takes a policy that reads its context window.
LEARNED_ACCURACY = 0.3


@pytest.fixture
def env_kwargs(tiny_corpus):
    return {"corpus": str(tiny_corpus), "context_length": 8, "episode_length": 32}


def _dummy_vec_env(env_kwargs, num_envs: int, seed: int) -> DummyVecEnv:
    dummy = DummyVecEnv([lambda: gym.make(ENV_ID, **env_kwargs) for _ in range(num_envs)])
    dummy.seed(seed)
    return dummy


def _valid_actions(rng: np.random.Generator, mask: np.ndarray, size: int) -> np.ndarray:
    return rng.choice(np.flatnonzero(mask), size=size)


# ---------------------------------------------------------------------- adapter


def test_adapter_spaces_and_reset(env_kwargs):
    env = make_sb3_env(ENV_ID, 4, seed=0, **env_kwargs)
    assert isinstance(env, VecEnv)
    assert env.num_envs == 4
    assert env.observation_space == gym.spaces.Box(0, 46, shape=(8,), dtype=np.int32)
    assert env.action_space == gym.spaces.Discrete(47)
    obs = env.reset()
    assert obs.shape == (4, 8)
    assert obs.dtype == np.int32
    assert len(env.reset_infos) == 4


def test_adapter_step_passes_nan_check(env_kwargs):
    env = VecCheckNan(make_sb3_env(ENV_ID, 3, seed=1, **env_kwargs), raise_exception=True)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(40):
        obs, rewards, dones, infos = env.step(rng.integers(3, 47, size=3))
        assert obs.shape == (3, 8)
        assert rewards.dtype == np.float32
        assert dones.dtype == bool
        assert len(infos) == 3
        assert all(isinstance(info, dict) for info in infos)
        assert env.observation_space.contains(obs[0])


def test_adapter_matches_dummy_vec_env(env_kwargs):
    env_kwargs = {**env_kwargs, "episode_length": 5}
    num_envs, seed = 4, 11
    adapter = make_sb3_env(ENV_ID, num_envs, seed=seed, **env_kwargs)
    dummy = _dummy_vec_env(env_kwargs, num_envs, seed)
    np.testing.assert_array_equal(adapter.reset(), dummy.reset())

    rng = np.random.default_rng(0)
    mask = adapter.action_masks()[0]
    truncations = terminations = 0
    for _ in range(300):
        actions = _valid_actions(rng, mask, num_envs)
        obs, rewards, dones, infos = adapter.step(actions)
        dummy_obs, dummy_rewards, dummy_dones, dummy_infos = dummy.step(actions)
        np.testing.assert_array_equal(obs, dummy_obs)
        np.testing.assert_array_equal(rewards, dummy_rewards)
        np.testing.assert_array_equal(dones, dummy_dones)
        for info, dummy_info, done in zip(infos, dummy_infos, dones, strict=True):
            assert info["target"] == dummy_info["target"]
            if not done:
                assert "terminal_observation" not in info
                continue
            np.testing.assert_array_equal(
                info["terminal_observation"], dummy_info["terminal_observation"]
            )
            assert info["TimeLimit.truncated"] == dummy_info["TimeLimit.truncated"]
            truncations += info["TimeLimit.truncated"]
            terminations += not info["TimeLimit.truncated"]
    assert truncations > 0
    assert terminations > 0


def test_adapter_over_sync_vector_env(env_kwargs):
    env_kwargs = {**env_kwargs, "episode_length": 4}
    sync = gym.make_vec(
        ENV_ID,
        3,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **env_kwargs,
    )
    from_sync = LMVecEnv(sync)
    native = make_sb3_env(ENV_ID, 3, **env_kwargs)
    from_sync.seed(5)
    native.seed(5)
    np.testing.assert_array_equal(from_sync.reset(), native.reset())
    assert from_sync.reset_infos[0]["action_mask"].shape == (47,)

    rng = np.random.default_rng(1)
    episodes_ended = 0
    for _ in range(12):
        actions = rng.integers(3, 47, size=3)
        obs, rewards, dones, infos = from_sync.step(actions)
        native_obs, native_rewards, native_dones, native_infos = native.step(actions)
        np.testing.assert_array_equal(obs, native_obs)
        np.testing.assert_array_equal(rewards, native_rewards)
        np.testing.assert_array_equal(dones, native_dones)
        episodes_ended += int(dones.sum())
        for info, native_info in zip(infos, native_infos, strict=True):
            assert info["target"] == native_info["target"]
            assert info.get("TimeLimit.truncated") == native_info.get("TimeLimit.truncated")
            np.testing.assert_array_equal(
                info.get("terminal_observation", []), native_info.get("terminal_observation", [])
            )
    assert episodes_ended >= 6


def test_sync_vector_env_reaches_each_env(env_kwargs):
    sync = gym.make_vec(
        ENV_ID,
        3,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **env_kwargs,
    )
    env = LMVecEnv(sync)
    env.reset()
    assert env.action_masks().shape == (3, 47)
    assert env.env_method("action_masks", indices=[1])[0].shape == (47,)
    assert is_masking_supported(env)
    assert env.get_attr("observation_space") == [env.observation_space] * 3
    env.set_attr("flag", 0)
    env.set_attr("flag", 5, indices=[1])
    assert env.get_attr("flag") == [0, 5, 0]
    assert env.env_method("get_wrapper_attr", "flag", indices=[0, 1]) == [0, 5]


def test_truncation_sets_time_limit_flag(env_kwargs):
    env_kwargs = {**env_kwargs, "episode_length": 3}
    env = make_sb3_env(ENV_ID, 2, seed=0, **env_kwargs)
    env.reset()
    single = gym.make(ENV_ID, **env_kwargs)
    single.reset(seed=0)
    for step in range(3):
        obs, _, dones, infos = env.step(np.array([5, 5]))
        single_obs, _, terminated, truncated, _ = single.step(5)
        assert not terminated
        if step < 2:
            assert not dones.any()
    assert truncated
    assert dones.all()
    assert infos[0]["TimeLimit.truncated"] is True
    assert infos[1]["TimeLimit.truncated"] is True
    np.testing.assert_array_equal(infos[0]["terminal_observation"], single_obs)
    # The returned row is already the next episode's first observation.
    assert not np.array_equal(obs[0], infos[0]["terminal_observation"])


def test_termination_clears_time_limit_flag(env_kwargs):
    # Episodes longer than any document end only when the text ends.
    env_kwargs = {**env_kwargs, "episode_length": 1000}
    env = make_sb3_env(ENV_ID, 1, seed=3, **env_kwargs)
    env.reset()
    eos_id = lm_envs.load_corpus_data(env_kwargs["corpus"]).tokenizer.eos_id
    for _ in range(1000):
        _, _, dones, infos = env.step(np.array([5]))
        if dones[0]:
            break
    assert dones[0]
    assert infos[0]["TimeLimit.truncated"] is False
    assert infos[0]["target"] == eos_id
    assert infos[0]["terminal_observation"][-1] == eos_id


def test_seed_makes_reset_reproducible(env_kwargs):
    env = make_sb3_env(ENV_ID, 4, **env_kwargs)
    assert env.seed(7) == [7, 8, 9, 10]
    first = env.reset()
    env.seed(7)
    np.testing.assert_array_equal(env.reset(), first)
    # Without a new seed, reset() continues the random streams instead of repeating them.
    assert not np.array_equal(env.reset(), first)


def test_reset_rejects_per_env_options(env_kwargs):
    env = make_sb3_env(ENV_ID, 2, **env_kwargs)
    env.set_options([{"a": 1}, {"a": 2}])
    with pytest.raises(ValueError, match="one options dict for all sub-environments"):
        env.reset()


def test_step_wait_without_actions_raises(env_kwargs):
    env = make_sb3_env(ENV_ID, 2, **env_kwargs)
    env.reset()
    with pytest.raises(RuntimeError, match="without a pending step_async"):
        env.step_wait()


def test_action_masks_rows(env_kwargs):
    env = make_sb3_env(ENV_ID, 5, seed=0, **env_kwargs)
    env.reset()
    masks = env.action_masks()
    assert masks.shape == (5, 47)
    assert masks.dtype == bool
    assert not masks[:, 0].any()  # <pad>
    assert not masks[:, 2].any()  # <unk>
    assert masks[:, 1].all()  # <eos>
    rows = env.env_method("action_masks", indices=[1, 3])
    assert len(rows) == 2
    assert rows[0].shape == (47,)
    assert is_masking_supported(env)
    np.testing.assert_array_equal(get_action_masks(env), masks)


def test_get_attr_set_attr_and_wrappers(env_kwargs):
    env = make_sb3_env(ENV_ID, 3, **env_kwargs)
    assert env.get_attr("observation_space") == [env.observation_space] * 3
    assert env.get_attr("action_space", indices=2) == [env.action_space]
    assert env.get_attr("render_mode") == [None, None, None]
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        env.get_attr("missing")
    assert env.env_is_wrapped(Monitor) == [False, False, False]
    with pytest.raises(ValueError, match=r"set_attr\('flag'\) on sub-environments \[1\]"):
        env.set_attr("flag", 1, indices=[1])
    env.set_attr("flag", 2)
    assert env.get_attr("flag", indices=[0, 2]) == [2, 2]


def test_env_method_splits_batched_results(env_kwargs):
    env = make_sb3_env(ENV_ID, 3, render_mode="ansi", **env_kwargs)
    env.reset()
    env.step(np.array([5, 6, 7]))
    texts = env.render()
    assert isinstance(texts, tuple)
    assert len(texts) == 3
    assert all("[[" in text for text in texts)
    assert env.env_method("render", indices=[2]) == [texts[2]]


def test_render_without_mode_warns(env_kwargs):
    env = make_sb3_env(ENV_ID, 2, **env_kwargs)
    env.reset()
    with pytest.warns(UserWarning, match="no `render_mode`"):
        assert env.render() is None


def test_vec_monitor_records_episodes(env_kwargs):
    env = VecMonitor(make_sb3_env(ENV_ID, 2, seed=0, **{**env_kwargs, "episode_length": 3}))
    env.reset()
    for _ in range(3):
        _, _, dones, infos = env.step(np.array([5, 5]))
    assert dones.all()
    assert infos[0]["episode"]["l"] == 3


@pytest.mark.parametrize("env_id", sorted(lm_envs.ENVIRONMENTS))
def test_make_sb3_env_every_registered_id(env_id):
    env = make_sb3_env(env_id, 3, seed=0)
    obs = env.reset()
    assert obs.shape == (3, *env.observation_space.shape)
    rng = np.random.default_rng(0)
    for _ in range(20):
        masks = env.action_masks()
        assert masks.shape == (3, env.action_space.n)
        actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])
        obs, _, dones, infos = env.step(actions)
        assert all(env.observation_space.contains(row) for row in obs)
        for info, done in zip(infos, dones, strict=True):
            assert ("terminal_observation" in info) == done
            assert ("TimeLimit.truncated" in info) == done


def test_lm_vec_env_rejects_next_step_batch(env_kwargs):
    venv = gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", **env_kwargs)
    with pytest.raises(ValueError, match="needs a vector env with same-step autoreset"):
        LMVecEnv(venv)


def test_lm_vec_env_rejects_single_env(env_kwargs):
    with pytest.raises(TypeError, match="wraps a gymnasium.vector.VectorEnv, got"):
        LMVecEnv(gym.make(ENV_ID, **env_kwargs))


def test_make_sb3_env_errors():
    with pytest.raises(ValueError, match="sets autoreset_mode='same_step' itself"):
        make_sb3_env(ENV_ID, 2, autoreset_mode="next_step")
    with pytest.raises(ValueError, match="'Pendulum-v1' has no native batched implementation"):
        make_sb3_env("Pendulum-v1", 2)
    with pytest.raises(ValueError, match="'CartPole-v1' does not accept autoreset_mode"):
        make_sb3_env("CartPole-v1", 2)


def test_split_infos_respects_masks():
    infos = {
        "target": np.array([4, 5, 6]),
        "_target": np.array([True, False, True]),
        "row": np.arange(6).reshape(3, 2),
        "episode": {"r": np.array([1.0, 2.0, 3.0]), "_r": np.array([False, True, False])},
        "_episode": np.array([False, True, False]),
        "final_obs": np.zeros((3, 2)),
    }
    per_env = split_infos(infos, 3)
    assert per_env[0]["target"] == 4
    assert "target" not in per_env[1]
    assert per_env[2]["target"] == 6
    np.testing.assert_array_equal(per_env[1]["row"], [2, 3])
    assert per_env[1]["episode"] == {"r": 2.0}
    assert "episode" not in per_env[0]
    assert all("final_obs" not in info for info in per_env)


# ---------------------------------------------------------------------- feature extractor


@pytest.mark.parametrize("encoder", ["mlp", "gru", "transformer"])
def test_extractor_encodes_windows(encoder):
    space = gym.spaces.Box(0, 46, shape=(8,), dtype=np.int32)
    extractor = TokenWindowExtractor(space, encoder=encoder, embed_dim=8, hidden_dim=16)
    assert extractor.encoder.embedding.num_embeddings == 47
    windows = torch.randint(0, 47, (5, 8))
    features = extractor(windows.float())
    assert features.shape == (5, extractor.features_dim)
    # SB3 passes float observations; they must select the same embeddings as the integer ids.
    torch.testing.assert_close(features, extractor(windows))


def test_extractor_projects_to_features_dim():
    space = gym.spaces.Box(0, 46, shape=(8,), dtype=np.int32)
    extractor = TokenWindowExtractor(space, features_dim=12, encoder="gru", hidden_dim=16)
    assert extractor.features_dim == 12
    assert extractor(torch.zeros(2, 8)).shape == (2, 12)


def test_extractor_rejects_bad_spaces():
    with pytest.raises(TypeError, match="needs a Box observation space"):
        TokenWindowExtractor(gym.spaces.Discrete(5))
    with pytest.raises(ValueError, match="needs integer token ids, got dtype float32"):
        TokenWindowExtractor(gym.spaces.Box(0, 4, shape=(8,), dtype=np.float32))
    with pytest.raises(ValueError, match=r"needs a 1-D window \(context_length,\)"):
        TokenWindowExtractor(gym.spaces.Box(0, 4, shape=(2, 8), dtype=np.int32))
    with pytest.raises(ValueError, match="low=0 and one shared high"):
        TokenWindowExtractor(gym.spaces.Box(1, 4, shape=(8,), dtype=np.int32))
    space = gym.spaces.Box(0, 4, shape=(8,), dtype=np.int32)
    with pytest.raises(ValueError, match="features_dim must be >= 1, got 0"):
        TokenWindowExtractor(space, features_dim=0)
    with pytest.raises(ValueError, match="encoder kind must be one of"):
        TokenWindowExtractor(space, encoder="lstm")


# ---------------------------------------------------------------------- accuracy callback


def test_callback_logs_eval_keys(env_kwargs, tmp_path):
    env = make_sb3_env(ENV_ID, 4, seed=0, **env_kwargs)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=64, device="cpu", seed=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = TokenAccuracyCallback(env_kwargs, eval_freq=8, max_tokens=100)
    model.learn(64, callback=callback)

    assert [r["num_timesteps"] for r in callback.results] == [32, 64]
    with open(tmp_path / "progress.csv", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    logged = [float(row["eval/accuracy"]) for row in rows if row.get("eval/accuracy")]
    assert logged == pytest.approx([r["accuracy"] for r in callback.results])
    assert any(row.get("eval/mean_reward") for row in rows)


def test_callback_scores_split_in_order(env_kwargs):
    env = make_sb3_env(ENV_ID, 2, seed=0, **env_kwargs)
    model = DQN("MlpPolicy", env, learning_starts=10, device="cpu", seed=0)
    callback = TokenAccuracyCallback(env_kwargs, max_tokens=100_000)

    data = lm_envs.load_corpus_data(env_kwargs["corpus"])
    text = data.tokenizer.decode(callback.targets, skip_special_tokens=True)
    assert text == "".join(data.corpus.split("validation"))

    predicted = callback.predict_tokens(model)
    result = callback.evaluate(model)
    assert result["accuracy"] == pytest.approx(np.mean(predicted == callback.targets))
    assert result["mean_reward"] == pytest.approx(result["accuracy"])


def test_callback_log_prob_reward(env_kwargs):
    env_kwargs = {**env_kwargs, "reward": "log_prob"}
    env = make_sb3_env(ENV_ID, 2, seed=0, **env_kwargs)
    model = MaskablePPO("MlpPolicy", env, n_steps=8, device="cpu", seed=0)
    result = TokenAccuracyCallback(env_kwargs, max_tokens=64).evaluate(model)
    # Masked greedy choices never pick <pad>, so every log-probability is finite and negative.
    assert np.isfinite(result["mean_reward"])
    assert result["mean_reward"] < 0


class _AlwaysPadModel:
    """A model whose greedy choice is always <pad> (id 0), the one token of probability 0."""

    def predict(self, observation, deterministic=False):
        return np.zeros(len(observation), dtype=np.int64), None


def test_callback_clips_log_prob_like_env(env_kwargs):
    env_kwargs = {**env_kwargs, "reward": "log_prob"}
    result = TokenAccuracyCallback(env_kwargs, max_tokens=64).evaluate(_AlwaysPadModel())
    assert result["accuracy"] == 0.0
    assert result["mean_reward"] == LOG_PROB_FLOOR

    env = gym.make_vec(ENV_ID, 2, vectorization_mode="vector_entry_point", **env_kwargs)
    env.reset(seed=0)
    _, rewards, _, _, _ = env.step(np.zeros(2, dtype=np.int64))
    np.testing.assert_array_equal(rewards, [LOG_PROB_FLOOR, LOG_PROB_FLOOR])


def test_callback_rejects_bad_arguments(env_kwargs):
    with pytest.raises(ValueError, match="unknown LMNextToken-v0 argument 'context_lenght'"):
        TokenAccuracyCallback({"context_lenght": 8})
    with pytest.raises(ValueError, match="eval_freq must be >= 1, got 0"):
        TokenAccuracyCallback(env_kwargs, eval_freq=0)
    with pytest.raises(ValueError, match="split must be one of"):
        TokenAccuracyCallback(env_kwargs, split="valid")


def test_callback_rejects_mismatched_model(env_kwargs):
    env = make_sb3_env(ENV_ID, 2, **env_kwargs)
    model = A2C("MlpPolicy", env, n_steps=4, device="cpu")
    callback = TokenAccuracyCallback({**env_kwargs, "context_length": 16})
    with pytest.raises(ValueError, match=r"observations of shape \(8,\)"):
        model.learn(8, callback=callback)


# ---------------------------------------------------------------------- recipes


def _policy_kwargs(encoder: str = "mlp") -> dict:
    return {
        "features_extractor_class": TokenWindowExtractor,
        "features_extractor_kwargs": {"encoder": encoder, "embed_dim": 16, "hidden_dim": 64},
    }


def _train_and_score(model, env_kwargs, total_timesteps: int) -> float:
    model.learn(total_timesteps)
    return TokenAccuracyCallback(env_kwargs, max_tokens=512).evaluate(model)["accuracy"]


def test_recipe_dqn(env_kwargs):
    env = make_sb3_env(ENV_ID, 8, seed=0, **env_kwargs)
    model = DQN(
        "MlpPolicy",
        env,
        gamma=0.0,
        learning_starts=256,
        buffer_size=10_000,
        batch_size=64,
        train_freq=1,
        exploration_fraction=0.3,
        target_update_interval=200,
        policy_kwargs=_policy_kwargs(),
        device="cpu",
        seed=0,
    )
    assert _train_and_score(model, env_kwargs, 4096) > LEARNED_ACCURACY


def test_recipe_qrdqn(env_kwargs):
    env = make_sb3_env(ENV_ID, 8, seed=0, **env_kwargs)
    model = QRDQN(
        "MlpPolicy",
        env,
        gamma=0.0,
        learning_rate=1e-3,
        learning_starts=256,
        buffer_size=10_000,
        batch_size=64,
        train_freq=1,
        exploration_fraction=0.3,
        target_update_interval=200,
        policy_kwargs={**_policy_kwargs(), "n_quantiles": 16},
        device="cpu",
        seed=0,
    )
    assert _train_and_score(model, env_kwargs, 4096) > LEARNED_ACCURACY


def test_recipe_ppo_gru(env_kwargs):
    env = make_sb3_env(ENV_ID, 8, seed=0, **env_kwargs)
    model = PPO(
        "MlpPolicy",
        env,
        gamma=0.0,
        learning_rate=3e-3,
        n_steps=64,
        batch_size=128,
        n_epochs=4,
        policy_kwargs=_policy_kwargs("gru"),
        device="cpu",
        seed=0,
    )
    assert _train_and_score(model, env_kwargs, 4096) > LEARNED_ACCURACY


def test_recipe_a2c(env_kwargs):
    env = make_sb3_env(ENV_ID, 8, seed=0, **env_kwargs)
    model = A2C(
        "MlpPolicy",
        env,
        gamma=0.0,
        learning_rate=3e-3,
        n_steps=8,
        policy_kwargs=_policy_kwargs(),
        device="cpu",
        seed=0,
    )
    assert _train_and_score(model, env_kwargs, 4096) > LEARNED_ACCURACY


def test_recipe_maskable_ppo(env_kwargs):
    env = make_sb3_env(ENV_ID, 8, seed=0, **env_kwargs)
    model = MaskablePPO(
        "MlpPolicy",
        env,
        gamma=0.0,
        learning_rate=3e-3,
        n_steps=64,
        batch_size=128,
        n_epochs=4,
        policy_kwargs=_policy_kwargs(),
        device="cpu",
        seed=0,
    )
    accuracy = _train_and_score(model, env_kwargs, 4096)
    assert accuracy > LEARNED_ACCURACY
    obs = env.reset()
    actions, _ = model.predict(obs, action_masks=env.action_masks())
    assert env.action_masks()[np.arange(8), actions].all()


# ---------------------------------------------------------------------- documentation


def test_docs_recipes_run(tiny_corpus, capsys):
    """Run every ``python`` block of docs/sb3.md in order, on the tiny corpus with 512 steps."""
    page = Path(__file__).parents[2] / "docs" / "sb3.md"
    source = "\n".join(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S))
    replacements = {
        'CORPUS = "pydoc"': f"CORPUS = {str(tiny_corpus)!r}",
        "TOTAL_TIMESTEPS = 50_000": "TOTAL_TIMESTEPS = 512",
        "EVAL_FREQ = 1_000": "EVAL_FREQ = 8",
    }
    for old, new in replacements.items():
        assert old in source
        source = source.replace(old, new)
    exec(compile(source, str(page), "exec"), {"__name__": "docs_sb3"})

    printed = capsys.readouterr().out
    for name in ("DQN", "QR-DQN", "PPO", "A2C", "MaskablePPO"):
        assert re.search(rf"^{name} \{{'accuracy': ", printed, re.M), name
