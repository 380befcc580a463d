"""Exact-answer task environments: contract, scoring, oracle, determinism and the native batch."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lm_envs
from lm_envs.data import OBS_DTYPE
from lm_envs.tasks import (
    EOS_ID,
    PAD_ID,
    SEP_ID,
    AdditionTask,
    CopyTask,
    DuplicatedInputTask,
    LMAdditionEnv,
    LMCopyEnv,
    RepeatCopyTask,
    ReverseTask,
    SortTask,
)

TASK_IDS = (
    "LMCopy-v0",
    "LMReverse-v0",
    "LMRepeatCopy-v0",
    "LMDuplicatedInput-v0",
    "LMAddition-v0",
    "LMSort-v0",
)
SEQUENCE_IDS = tuple(env_id for env_id in TASK_IDS if env_id != "LMAddition-v0")

# Every documented option of every id, one at a time, plus the defaults.
CONFIGS = [(env_id, {}) for env_id in TASK_IDS]
for _env_id in TASK_IDS:
    CONFIGS += [
        (_env_id, {"reward": "sparse"}),
        (_env_id, {"stop_on_error": False}),
        (_env_id, {"context_length": 40}),
        (_env_id, {"render_mode": "ansi"}),
    ]
for _env_id in SEQUENCE_IDS:
    CONFIGS += [
        (_env_id, {"min_length": 1, "max_length": 3}),
        (_env_id, {"num_symbols": 52}),
    ]
CONFIGS += [
    ("LMRepeatCopy-v0", {"num_repeats": 3}),
    ("LMDuplicatedInput-v0", {"duplication": 3}),
    ("LMAddition-v0", {"num_digits": 1}),
    ("LMAddition-v0", {"num_digits": 18}),
]
CONFIG_IDS = [f"{env_id}-{kwargs}" for env_id, kwargs in CONFIGS]


def make_env(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, disable_env_checker=True, **kwargs)


def expected_answer(env_id: str, tokens: tuple[str, ...], prompt: str, **kwargs) -> str:
    """Solve a decoded prompt with plain Python string operations, independently of the envs."""
    if env_id == "LMCopy-v0":
        return prompt
    if env_id == "LMReverse-v0":
        return prompt[::-1]
    if env_id == "LMRepeatCopy-v0":
        return prompt * kwargs.get("num_repeats", 2)
    if env_id == "LMDuplicatedInput-v0":
        return prompt[:: kwargs.get("duplication", 2)]
    if env_id == "LMAddition-v0":
        left, right = prompt.split("+")
        return str(int(left) + int(right))
    if env_id == "LMSort-v0":
        return "".join(sorted(prompt, key=tokens.index))
    raise AssertionError(f"no oracle for {env_id}")


def oracle_action(env_id: str, tokens: tuple[str, ...], obs: np.ndarray, **kwargs) -> int:
    """Return the correct next token, read only from the observation."""
    ids = obs[obs != PAD_ID]
    separator = int(np.flatnonzero(ids == SEP_ID)[0])
    prompt = "".join(tokens[i] for i in ids[:separator])
    written = "".join(tokens[i] for i in ids[separator + 1 :])
    answer = expected_answer(env_id, tokens, prompt, **kwargs)
    assert answer.startswith(written)
    if len(written) == len(answer):
        return EOS_ID
    return tokens.index(answer[len(written)])


def mixed_action(env: gym.Env, rng: np.random.Generator) -> int:
    """Return the correct token 70% of the time, otherwise a random valid action."""
    unwrapped = env.unwrapped
    if rng.random() < 0.7 and not unwrapped._done:
        return int(unwrapped._batch.targets()[0])
    return int(rng.choice(np.flatnonzero(unwrapped.action_masks())))


# --- Registration and spaces -------------------------------------------------------------


def test_ids_registered_with_threshold():
    for env_id in TASK_IDS:
        assert env_id in lm_envs.ENVIRONMENTS
        spec = gym.spec(env_id)
        assert spec.reward_threshold == 0.95
        assert spec.vector_entry_point is not None
        assert spec.max_episode_steps is None


def test_prefixed_make_without_import():
    code = (
        "import gymnasium as gym\n"
        f"for env_id in {TASK_IDS!r}:\n"
        "    env = gym.make('lm_envs:' + env_id)\n"
        "    env.reset(seed=0)\n"
        "    print(env.unwrapped.spec.id)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == list(TASK_IDS)


@pytest.mark.parametrize(("env_id", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_gymnasium_check_env(env_id, kwargs):
    env = make_env(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize(("env_id", "kwargs"), CONFIGS, ids=CONFIG_IDS)
def test_sb3_check_env(env_id, kwargs):
    env = make_env(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_spaces_and_default_context(env_id):
    env = make_env(env_id)
    unwrapped = env.unwrapped
    task = unwrapped.task
    vocab = unwrapped.vocabulary.vocab_size
    assert env.action_space == gym.spaces.Discrete(vocab)
    assert env.observation_space.shape == (task.min_context_length,)
    assert env.observation_space.dtype == OBS_DTYPE
    assert env.observation_space.high.max() == vocab - 1
    obs, info = env.reset(seed=0)
    assert obs.dtype == OBS_DTYPE
    assert obs[-1] == SEP_ID
    assert obs[0] == PAD_ID or len(obs[obs != PAD_ID]) == len(obs)
    assert info["action_mask"].dtype == bool


def test_default_context_lengths():
    expected = {
        "LMCopy-v0": 17,
        "LMReverse-v0": 17,
        "LMRepeatCopy-v0": 25,
        "LMDuplicatedInput-v0": 25,
        "LMAddition-v0": 12,
        "LMSort-v0": 17,
    }
    for env_id, length in expected.items():
        assert make_env(env_id).observation_space.shape == (length,)


def test_options_set_spaces():
    cases = [
        ("LMCopy-v0", {"num_symbols": 52}, 55, 17),
        ("LMReverse-v0", {"max_length": 20}, 11, 41),
        ("LMRepeatCopy-v0", {"num_repeats": 3, "max_length": 5}, 11, 21),
        ("LMDuplicatedInput-v0", {"duplication": 3, "max_length": 5}, 11, 21),
        ("LMAddition-v0", {"num_digits": 5}, 14, 18),
        ("LMSort-v0", {"context_length": 30}, 11, 30),
    ]
    for env_id, kwargs, vocab, context in cases:
        env = make_env(env_id, **kwargs)
        assert env.action_space.n == vocab, (env_id, kwargs)
        assert env.observation_space.shape == (context,), (env_id, kwargs)


def test_answer_lengths_follow_options():
    env = make_env("LMRepeatCopy-v0", num_repeats=3, min_length=2, max_length=2)
    env.reset(seed=0)
    assert env.unwrapped._batch.answer_lengths[0] == 2 * 3 + 1
    env = make_env("LMDuplicatedInput-v0", duplication=3, min_length=4, max_length=4)
    obs, _ = env.reset(seed=0)
    assert (obs != PAD_ID).sum() == 4 * 3 + 1
    assert env.unwrapped._batch.answer_lengths[0] == 4 + 1


def test_finished_row_target_is_pad():
    env = make_env("LMCopy-v0", min_length=2, max_length=2)
    env.reset(seed=0)
    batch = env.unwrapped._batch
    for _ in range(3):
        env.step(int(batch.targets()[0]))
    assert batch.targets()[0] == PAD_ID


def test_action_mask_sequence_task():
    mask = make_env("LMCopy-v0", num_symbols=5).unwrapped.action_masks()
    assert mask.tolist() == [False, True, False, True, True, True, True, True]


def test_action_mask_addition():
    unwrapped = make_env("LMAddition-v0").unwrapped
    mask = unwrapped.action_masks()
    tokens = unwrapped.vocabulary.tokens
    assert len(mask) == 14
    assert not mask[PAD_ID]
    assert not mask[SEP_ID]
    assert not mask[tokens.index("+")]
    assert mask[EOS_ID]
    assert all(mask[tokens.index(str(d))] for d in range(10))


def test_action_masks_returns_copy():
    unwrapped = make_env("LMCopy-v0").unwrapped
    unwrapped.action_masks()[:] = False
    assert unwrapped.action_masks()[EOS_ID]


# --- Problem generators --------------------------------------------------------------------


def test_generators_solve_examples():
    rng = np.random.default_rng(0)
    prompt = np.array([5, 3, 4, 3])
    assert CopyTask(1, 4, 4).solve(prompt).tolist() == [5, 3, 4, 3]
    assert ReverseTask(1, 4, 4).solve(prompt).tolist() == [3, 4, 3, 5]
    assert SortTask(1, 4, 4).solve(prompt).tolist() == [3, 3, 4, 5]
    assert RepeatCopyTask(1, 4, 4, 3).solve(prompt[:2]).tolist() == [5, 3] * 3
    assert DuplicatedInputTask(1, 4, 4, 2).solve(np.array([5, 5, 3, 3])).tolist() == [5, 3]
    duplicated = DuplicatedInputTask(2, 5, 4, 3).sample_prompt(rng)
    assert len(duplicated) % 3 == 0
    assert (duplicated[::3] == duplicated[1::3]).all()


def test_sequence_lengths_and_symbols_in_range():
    task = CopyTask(3, 5, 4)
    rng = np.random.default_rng(1)
    lengths = set()
    for _ in range(300):
        prompt = task.sample_prompt(rng)
        lengths.add(len(prompt))
        assert prompt.min() >= 3
        assert prompt.max() < 3 + 4
    assert lengths == {3, 4, 5}


def test_addition_solves_large_operands():
    task = AdditionTask(18)
    rng = np.random.default_rng(2)
    vocabulary = task.vocabulary
    for _ in range(50):
        prompt = task.sample_prompt(rng)
        left, right = vocabulary.decode(prompt).split("+")
        assert vocabulary.decode(task.solve(prompt)) == str(int(left) + int(right))
    example = task.solve(np.concatenate([task.encode_number(57), [13], task.encode_number(468)]))
    assert vocabulary.decode(example) == "525"


def test_addition_has_no_leading_zeros():
    task = AdditionTask(3)
    rng = np.random.default_rng(3)
    for _ in range(200):
        text = task.vocabulary.decode(task.sample_prompt(rng))
        for operand in text.split("+"):
            assert operand == "0" or not operand.startswith("0")


def test_addition_solve_rejects_bad_prompt():
    task = AdditionTask(2)
    with pytest.raises(
        ValueError, match=r"invalid addition prompt: it must contain exactly one '\+'"
    ):
        task.solve(task.encode_number(12))
    with pytest.raises(ValueError, match="expected a non-empty run of digit token ids"):
        task.solve(np.array([13, 4]))


def test_decode_marks_unknown_ids():
    vocabulary = CopyTask(1, 2, 3).vocabulary
    assert vocabulary.decode([3, 4, 1, 0, 99]) == "ab<?>"
    assert vocabulary.decode([3, 1, 99], skip_special_tokens=False) == "a<eos><?>"


# --- Scoring and episode end ----------------------------------------------------------------


@pytest.mark.parametrize("env_id", TASK_IDS)
@pytest.mark.parametrize("reward", ["dense", "sparse"])
def test_oracle_reaches_threshold(env_id, reward):
    env = make_env(env_id, reward=reward)
    tokens = env.unwrapped.vocabulary.tokens
    threshold = gym.spec(env_id).reward_threshold
    returns = []
    obs, _ = env.reset(seed=10)
    for _ in range(100):
        episode_return, steps, done = 0.0, 0, False
        while not done:
            obs, reward_value, terminated, truncated, info = env.step(
                oracle_action(env_id, tokens, obs)
            )
            assert info["target"] == info["target"]
            episode_return += reward_value
            steps += 1
            done = terminated or truncated
            assert not truncated
        assert info["is_success"]
        assert steps == env.unwrapped._batch.answer_lengths[0]
        assert episode_return == pytest.approx(1.0, abs=1e-9)
        returns.append(episode_return)
        obs, _ = env.reset()
    assert np.mean(returns) >= threshold


def test_dense_reward_per_token():
    env = make_env("LMCopy-v0", min_length=3, max_length=3)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(int(env.unwrapped._batch.targets()[0]))
    assert reward == pytest.approx(0.25)
    assert not terminated
    assert "is_success" not in info


def test_sparse_reward_only_at_end():
    env = make_env("LMReverse-v0", reward="sparse", min_length=4, max_length=4)
    env.reset(seed=0)
    rewards = []
    done = False
    while not done:
        _, reward, done, _, _ = env.step(int(env.unwrapped._batch.targets()[0]))
        rewards.append(reward)
    assert rewards == [0.0, 0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_wrong_token_terminates(env_id):
    env = make_env(env_id)
    env.reset(seed=4)
    target = int(env.unwrapped._batch.targets()[0])
    mask = env.unwrapped.action_masks()
    wrong = int(next(i for i in np.flatnonzero(mask) if i != target and i != EOS_ID))
    obs, reward, terminated, truncated, info = env.step(wrong)
    assert terminated
    assert not truncated
    assert reward == 0.0
    assert info["target"] == target
    assert info["is_success"] is False
    assert obs[-1] == wrong


def test_wrong_token_continues_without_stop_on_error():
    env = make_env("LMCopy-v0", stop_on_error=False, min_length=4, max_length=4)
    env.reset(seed=5)
    target = int(env.unwrapped._batch.targets()[0])
    wrong = 3 if target != 3 else 4
    _, reward, terminated, _, _ = env.step(wrong)
    assert reward == 0.0
    assert not terminated
    episode_return, done, steps = 0.0, False, 1
    while not done:
        _, reward, done, truncated, info = env.step(int(env.unwrapped._batch.targets()[0]))
        episode_return += reward
        steps += 1
        assert not truncated
    assert steps == 5
    assert episode_return == pytest.approx(4 / 5)
    assert info["is_success"] is False


def test_sparse_zero_after_mistake():
    env = make_env("LMSort-v0", stop_on_error=False, reward="sparse", min_length=3, max_length=3)
    env.reset(seed=6)
    target = int(env.unwrapped._batch.targets()[0])
    env.step(3 if target != 3 else 4)
    rewards, done = [], False
    while not done:
        _, reward, done, _, _ = env.step(int(env.unwrapped._batch.targets()[0]))
        rewards.append(reward)
    assert rewards == [0.0, 0.0, 0.0]


def test_early_eos_terminates_without_stop_on_error():
    env = make_env("LMCopy-v0", stop_on_error=False, min_length=5, max_length=5)
    env.reset(seed=7)
    _, reward, terminated, _, info = env.step(EOS_ID)
    assert terminated
    assert reward == 0.0
    assert info["is_success"] is False
    assert info["target"] != EOS_ID


def test_step_after_end_warns_once():
    env = LMCopyEnv()
    env.reset(seed=0)
    env.step(EOS_ID)
    with pytest.warns(UserWarning, match="step\\(\\) called after the episode ended"):
        obs, reward, terminated, truncated, _ = env.step(3)
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert obs[-1] == EOS_ID
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.step(3)


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="called before reset"):
        LMCopyEnv().step(3)


def test_render_marks_last_action():
    env = make_env("LMAddition-v0", render_mode="ansi")
    env.reset(seed=0)
    prompt = env.render()
    assert prompt.endswith("=")
    assert "+" in prompt
    target = int(env.unwrapped._batch.targets()[0])
    env.step(target)
    digit = env.unwrapped.vocabulary.tokens[target]
    assert env.render() == f"{prompt}[[{digit}]] (correct)"
    wrong = 3 if env.unwrapped._batch.targets()[0] != 3 else 4
    env.step(wrong)
    assert "(wrong, expected" in env.render()


def test_render_without_mode_returns_none():
    env = LMCopyEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render\\(\\) called without a render mode"):
        assert env.render() is None


# --- Determinism -----------------------------------------------------------------------------


def rollout(env_id: str, seed: int, steps: int, **kwargs) -> list:
    env = make_env(env_id, **kwargs)
    rng = np.random.default_rng(99)
    obs, _ = env.reset(seed=seed)
    trajectory = [obs.tolist()]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(mixed_action(env, rng))
        trajectory.append((obs.tolist(), reward, terminated, truncated, info["target"]))
        if terminated or truncated:
            obs, _ = env.reset()
            trajectory.append(obs.tolist())
    return trajectory


@pytest.mark.parametrize("env_id", TASK_IDS)
@pytest.mark.parametrize("kwargs", [{}, {"reward": "sparse", "stop_on_error": False}])
def test_same_seed_same_trajectory(env_id, kwargs):
    first = rollout(env_id, 123, 200, **kwargs)
    assert first == rollout(env_id, 123, 200, **kwargs)
    assert first != rollout(env_id, 124, 200, **kwargs)


# --- Bad arguments and actions ----------------------------------------------------------------

BAD_ARGUMENTS = [
    ("LMCopy-v0", {"min_length": 0}, ValueError, r"min_length must be >= 1, got 0"),
    ("LMCopy-v0", {"min_length": 5, "max_length": 2}, ValueError, r"max_length=2 is smaller"),
    ("LMSort-v0", {"num_symbols": 53}, ValueError, r"num_symbols must be in \[2, 52\], got 53"),
    ("LMSort-v0", {"num_symbols": 1}, ValueError, r"num_symbols must be in \[2, 52\], got 1"),
    ("LMReverse-v0", {"num_symbols": "8"}, TypeError, r"num_symbols must be an int, got str"),
    ("LMRepeatCopy-v0", {"num_repeats": 0}, ValueError, r"num_repeats must be >= 1, got 0"),
    ("LMDuplicatedInput-v0", {"duplication": 1}, ValueError, r"duplication must be >= 2, got 1"),
    ("LMAddition-v0", {"num_digits": 19}, ValueError, r"num_digits must be in \[1, 18\], got 19"),
    ("LMAddition-v0", {"num_digits": 2.0}, TypeError, r"num_digits must be an int, got float"),
    (
        "LMCopy-v0",
        {"context_length": 16},
        ValueError,
        r"context_length=16 is too small for LMCopy-v0 .* need up to 17 tokens",
    ),
    ("LMAddition-v0", {"context_length": 0}, ValueError, r"context_length must be >= 1, got 0"),
    ("LMCopy-v0", {"reward": "dens"}, ValueError, r"reward must be one of .*Did you mean 'dense'"),
    ("LMCopy-v0", {"stop_on_error": "yes"}, TypeError, r"stop_on_error must be a bool, got str"),
    ("LMCopy-v0", {"render_mode": "human"}, ValueError, r"render_mode must be one of \['ansi'\]"),
]


@pytest.mark.parametrize(("env_id", "kwargs", "error", "message"), BAD_ARGUMENTS)
@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
def test_bad_argument_messages(env_id, kwargs, error, message):
    with pytest.raises(error, match=message):
        make_env(env_id, **kwargs)
    with pytest.raises(error, match=message):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)


def test_bad_action_messages():
    env = LMAdditionEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action 14 is out of range; valid token ids are 0 .. 13"):
        env.step(14)
    with pytest.raises(TypeError, match=r"action must be an integer token id, got float"):
        env.step(1.5)


# --- Native batch ------------------------------------------------------------------------------


def make_vec(env_id: str, num_envs: int, **kwargs):
    return gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
    )


def choose_actions(singles, rng) -> np.ndarray:
    return np.array([mixed_action(env, rng) for env in singles])


@pytest.mark.parametrize("env_id", TASK_IDS)
@pytest.mark.parametrize("kwargs", [{}, {"reward": "sparse", "stop_on_error": False}])
def test_vector_matches_single_next_step(env_id, kwargs):
    num_envs, seed = 4, 21
    vec = make_vec(env_id, num_envs, **kwargs)
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    singles = [make_env(env_id, **kwargs) for _ in range(num_envs)]
    vec_obs, _ = vec.reset(seed=seed)
    for i, env in enumerate(singles):
        obs, _ = env.reset(seed=seed + i)
        assert (vec_obs[i] == obs).all()
    rng = np.random.default_rng(0)
    pending = [False] * num_envs
    episodes_ended = 0
    for _ in range(150):
        actions = choose_actions(singles, rng)
        vec_obs, rewards, terminated, truncated, infos = vec.step(actions)
        assert vec_obs.dtype == OBS_DTYPE
        assert rewards.dtype == np.float32
        for i, env in enumerate(singles):
            if pending[i]:
                obs, _ = env.reset()
                assert (rewards[i], terminated[i], truncated[i]) == (0.0, False, False)
                assert not infos["_target"][i]
                pending[i] = False
            else:
                obs, reward, term, trunc, info = env.step(int(actions[i]))
                assert rewards[i] == np.float32(reward)
                assert (terminated[i], truncated[i]) == (term, trunc)
                assert infos["_target"][i]
                assert infos["target"][i] == info["target"]
                assert infos["_is_success"][i] == term
                if term:
                    assert infos["is_success"][i] == info["is_success"]
                pending[i] = term or trunc
                episodes_ended += int(term)
            assert (vec_obs[i] == obs).all()
    assert episodes_ended > 20


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_vector_matches_single_same_step(env_id):
    num_envs, seed = 3, 8
    vec = make_vec(env_id, num_envs, autoreset_mode="same_step")
    assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    singles = [make_env(env_id) for _ in range(num_envs)]
    vec.reset(seed=seed)
    for i, env in enumerate(singles):
        env.reset(seed=seed + i)
    rng = np.random.default_rng(1)
    finals = 0
    for _ in range(120):
        actions = choose_actions(singles, rng)
        vec_obs, rewards, terminated, _, infos = vec.step(actions)
        for i, env in enumerate(singles):
            obs, reward, term, trunc, _ = env.step(int(actions[i]))
            assert rewards[i] == np.float32(reward)
            assert terminated[i] == term
            if term or trunc:
                assert infos["_final_obs"][i]
                assert infos["final_obs"].dtype == OBS_DTYPE
                assert (infos["final_obs"][i] == obs).all()
                obs, _ = env.reset()
                finals += 1
            elif "_final_obs" in infos:
                assert not infos["_final_obs"][i]
            assert (vec_obs[i] == obs).all()
    assert finals > 20


def test_vector_oracle_all_succeed():
    env_id = "LMAddition-v0"
    vec = make_vec(env_id, 16, autoreset_mode="same_step")
    tokens = vec.unwrapped.vocabulary.tokens
    obs, _ = vec.reset(seed=3)
    returns = np.zeros(16)
    finished = []
    for _ in range(40):
        actions = [oracle_action(env_id, tokens, row) for row in obs]
        obs, rewards, terminated, _, infos = vec.step(actions)
        returns += rewards
        for i in np.flatnonzero(terminated):
            assert infos["is_success"][i]
            finished.append(returns[i])
            returns[i] = 0.0
    assert len(finished) > 50
    np.testing.assert_allclose(finished, 1.0, atol=1e-5)


def test_vector_action_masks_and_spaces():
    vec = make_vec("LMCopy-v0", 5, num_symbols=4)
    masks = vec.unwrapped.action_masks()
    assert masks.shape == (5, 7)
    assert masks.dtype == bool
    assert masks[:, EOS_ID].all()
    assert not masks[:, [PAD_ID, SEP_ID]].any()
    assert vec.observation_space.shape == (5, 17)
    assert vec.single_action_space == gym.spaces.Discrete(7)


def test_vector_render_lists_every_subenv():
    vec = make_vec("LMCopy-v0", 2, render_mode="ansi")
    vec.reset(seed=0)
    texts = vec.render()
    assert len(texts) == 2
    assert all(text.endswith("=") for text in texts)
    vec.step([3, 3])
    assert all("[[a]]" in text for text in vec.render())


def test_vector_seed_list_matches_int_seed():
    first, _ = make_vec("LMSort-v0", 3).reset(seed=[4, 5, 6])
    second, _ = make_vec("LMSort-v0", 3).reset(seed=4)
    assert (first == second).all()


def test_vector_bad_arguments():
    with pytest.raises(ValueError, match=r"num_envs must be >= 1, got 0"):
        make_vec("LMCopy-v0", 0)
    with pytest.raises(ValueError, match=r"autoreset_mode must be one of .*Did you mean"):
        make_vec("LMCopy-v0", 2, autoreset_mode="same-step")
    vec = make_vec("LMCopy-v0", 2)
    with pytest.raises(ValueError, match=r"seed list has 3 entries; expected num_envs=2"):
        vec.reset(seed=[1, 2, 3])
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\), got \(3,\)"):
        vec.step([3, 3, 3])
    with pytest.raises(ValueError, match=r"action 11 is out of range"):
        vec.step([3, 11])
    with pytest.raises(TypeError, match=r"actions must be integer token ids, got dtype float64"):
        vec.step([3.0, 4.0])
