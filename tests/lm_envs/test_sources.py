from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import lm_envs  # noqa: F401  (registers the ids)
from lm_envs.data import OBS_DTYPE
from lm_envs.reference import LOG_PROB_FLOOR
from lm_envs.sources import GrammarSource, MarkovSource
from lm_envs.sources import markov as markov_module
from lm_envs.sources.cores import grammar_source, markov_source
from lm_envs.sources.grammar import enumerate_language, parse_rules
from tests.lm_envs.test_generate import assert_vector_matches_single

SOURCE_IDS = [
    "MarkovNextToken-v0",
    "MarkovGenerate-v0",
    "GrammarNextToken-v0",
    "GrammarGenerate-v0",
]
SMALL_STREAM = {"stream_length": 4000}
# a sentence ends after "a" (p 0.3) or "a c" (p 0.2); "b" is a whole sentence (p 0.5).
HAND_GRAMMAR = {"S": [("a X", 0.5), ("b", 0.5)], "X": [("c", 0.4), ("", 0.6)]}
MULTILINGUAL_GRAMMAR = {
    "S": [("我 V O", 0.7), ("🐱 睡觉", 0.3)],
    "V": [("喜欢", 0.6), ("看", 0.4)],
    "O": [("猫", 0.5), ("狗 😀", 0.5)],
}


def ratio_with_se(sums, counts) -> tuple[float, float]:
    """Return the pooled per-step mean over episodes and its standard error.

    Steps of one episode are correlated, so the error is that of a ratio estimator over
    independent episodes, not of independent steps.
    """
    sums = np.asarray(sums, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    ratio = sums.sum() / counts.sum()
    residuals = sums - ratio * counts
    n = len(sums)
    return ratio, math.sqrt((residuals**2).sum() / (n * (n - 1))) / counts.mean()


def run_episodes(env_id, kwargs, policy, min_steps=20_000, num_envs=64):
    """Run the first episodes of each sub-env until ``min_steps`` steps; return (sums, counts)."""
    vec = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode="same_step",
        **kwargs,
    )
    source = vec.unwrapped.source
    obs, _ = vec.reset(seed=0)
    episodes_per_env = None
    running_sum = np.zeros(num_envs)
    running_count = np.zeros(num_envs)
    finished: list[list[tuple[float, float]]] = [[] for _ in range(num_envs)]
    while True:
        obs, rewards, terminated, truncated, _ = vec.step(policy(source, obs))
        running_sum += rewards
        running_count += 1
        for i in np.flatnonzero(terminated | truncated):
            finished[i].append((running_sum[i], running_count[i]))
            running_sum[i] = running_count[i] = 0
        total = sum(count for row in finished for _, count in row)
        if episodes_per_env is None and total >= min_steps:
            # Keep the first m episodes of every row: a fixed count per row is unbiased.
            episodes_per_env = max(len(row) for row in finished)
        if episodes_per_env is not None and min(len(row) for row in finished) >= episodes_per_env:
            break
    first_episodes = [episode for row in finished for episode in row[:episodes_per_env]]
    return [s for s, _ in first_episodes], [c for _, c in first_episodes]


def argmax_policy(source, obs):
    return source.distribution(obs).argmax(axis=1)


def sampling_policy(seed):
    rng = np.random.default_rng(seed)

    def policy(source, obs):
        cumulative = source.distribution(obs).cumsum(axis=1)
        draws = rng.random(len(obs))[:, None] * cumulative[:, -1:]
        return (cumulative <= draws).sum(axis=1)

    return policy


# ---- Markov chain: exact optimum ----


def independent_markov_optimum(source: MarkovSource) -> tuple[float, float]:
    """Accuracy and entropy rate from the eigenvector of an explicitly built state matrix."""
    n, k = source.n_symbols, source.order
    num_states = n**k
    matrix = np.zeros((num_states, num_states))
    for state in range(num_states):
        history = [(state // n ** (k - 1 - i)) % n for i in range(k)]
        for symbol in range(n):
            shifted = [*history[1:], symbol]
            target = sum(s * n ** (k - 1 - i) for i, s in enumerate(shifted))
            matrix[state, target] += source.transitions[state, symbol]
    values, vectors = np.linalg.eig(matrix.T)
    pi = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    pi = pi / pi.sum()
    rows = source.transitions
    accuracy = float(sum(pi[s] * rows[s].max() for s in range(num_states)))
    entropy = float(-sum(pi[s] * (rows[s] * np.log(rows[s])).sum() for s in range(num_states)))
    return accuracy, entropy


@pytest.mark.parametrize(("n_symbols", "order", "concentration"), [(3, 2, 0.7), (5, 1, 0.2)])
def test_markov_optimum_matches_eigenvector(n_symbols, order, concentration):
    source = MarkovSource(n_symbols, order, concentration, seed=5)
    accuracy, entropy = independent_markov_optimum(source)
    assert source.optimum.accuracy == pytest.approx(accuracy, abs=1e-10)
    assert source.optimum.cross_entropy_nats == pytest.approx(entropy, abs=1e-10)
    assert source.optimum.bits_per_token == pytest.approx(entropy / math.log(2))
    assert source.optimum.perplexity == pytest.approx(math.exp(entropy))


def test_markov_power_iteration_matches_solve(monkeypatch):
    source = MarkovSource(4, 3, 0.5, seed=1)
    monkeypatch.setattr(markov_module, "MAX_DENSE_STATES", 0)
    iterated = markov_module.stationary_distribution(source.transitions, 4)
    np.testing.assert_allclose(iterated, source.stationary, atol=1e-12)


def test_markov_chain_fixed_by_seed():
    first = MarkovSource(4, 2, 0.5, seed=3)
    np.testing.assert_array_equal(first.transitions, MarkovSource(4, 2, 0.5, seed=3).transitions)
    assert not np.allclose(first.transitions, MarkovSource(4, 2, 0.5, seed=4).transitions)


def test_markov_concentration_controls_entropy():
    peaked = MarkovSource(8, 2, 0.05, seed=0).optimum
    flat = MarkovSource(8, 2, 20.0, seed=0).optimum
    assert peaked.accuracy > 0.6 > 0.3 > flat.accuracy
    assert peaked.cross_entropy_nats < 1.0 < flat.cross_entropy_nats <= math.log(8)


def test_markov_oracle_reaches_bayes_accuracy():
    kwargs = {"episode_length": 64}
    sums, counts = run_episodes("MarkovNextToken-v0", kwargs, argmax_policy)
    accuracy, se = ratio_with_se(sums, counts)
    optimum = markov_source(8, 2, 0.5, 0).optimum.accuracy
    assert sum(counts) >= 20_000
    assert 4 * se < 0.02
    assert abs(accuracy - optimum) < 4 * se, (accuracy, optimum, se)


def test_markov_entropy_rate_matches_monte_carlo():
    kwargs = {"episode_length": 64, "reward": "log_prob"}
    sums, counts = run_episodes("MarkovNextToken-v0", kwargs, sampling_policy(1))
    mean_reward, se = ratio_with_se(sums, counts)
    entropy = markov_source(8, 2, 0.5, 0).optimum.cross_entropy_nats
    assert 4 * se < 0.05
    assert abs(-mean_reward - entropy) < 4 * se, (-mean_reward, entropy, se)


# ---- grammar: exact optimum ----


def test_hand_grammar_language_and_optimum():
    language = enumerate_language(parse_rules(HAND_GRAMMAR, "S"), "S")
    assert language == pytest.approx({("a", "c"): 0.2, ("a",): 0.3, ("b",): 0.5})
    source = GrammarSource(HAND_GRAMMAR)
    # Tokens per sentence with <eos>: 3 * 0.2 + 2 * 0.3 + 2 * 0.5 = 2.2. Best guesses: first
    # token 0.5 (a or b), after "a": <eos> 0.3, after "a c": 0.2, after "b": 0.5.
    assert source.mean_tokens == pytest.approx(2.2)
    assert source.optimum.accuracy == pytest.approx(1.5 / 2.2)
    entropy = -(0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.5 * math.log(0.5))
    assert source.optimum.cross_entropy_nats == pytest.approx(entropy / 2.2)
    assert source.max_length == 2


def test_hand_grammar_conditionals():
    source = GrammarSource(HAND_GRAMMAR)
    a, b, c = (source.vocab.symbols.index(word) for word in "abc")
    eos = source.vocab.eos_id
    contexts = np.array([[0, 0], [0, a], [a, c], [eos, b], [b, c]])
    rows = source.distribution(contexts)
    assert rows[0, [a, b]] == pytest.approx([0.5, 0.5])
    assert rows[1, [c, eos]] == pytest.approx([0.4, 0.6])
    assert rows[2, eos] == pytest.approx(1.0)
    assert rows[3, eos] == pytest.approx(1.0)
    assert rows[4].sum() == 0.0  # "b c" is no prefix of a sentence


def test_default_grammar_probabilities_sum_to_one():
    source = grammar_source(None)
    assert source.sentence_probs.sum() == pytest.approx(1.0)
    live = source.probabilities[: source.dead_state]
    np.testing.assert_allclose(live.sum(axis=1), 1.0, atol=1e-9)
    assert source.max_length == 10


def test_grammar_oracle_reaches_bayes_accuracy():
    sums, counts = run_episodes("GrammarNextToken-v0", {}, argmax_policy)
    accuracy, se = ratio_with_se(sums, counts)
    optimum = grammar_source(None).optimum.accuracy
    assert sum(counts) >= 20_000
    assert 4 * se < 0.02
    assert abs(accuracy - optimum) < 4 * se, (accuracy, optimum, se)


def test_grammar_entropy_rate_matches_monte_carlo():
    sums, counts = run_episodes("GrammarNextToken-v0", {"reward": "log_prob"}, sampling_policy(2))
    mean_reward, se = ratio_with_se(sums, counts)
    entropy = grammar_source(None).optimum.cross_entropy_nats
    assert 4 * se < 0.05
    assert abs(-mean_reward - entropy) < 4 * se, (-mean_reward, entropy, se)


def test_grammar_episodes_are_whole_sentences():
    env = gym.make("GrammarNextToken-v0", **SMALL_STREAM).unwrapped
    obs, _ = env.reset(seed=4)
    assert obs[-1] in (env.source.vocab.eos_id, env.source.vocab.pad_id)
    targets = []
    while True:
        obs, _, terminated, truncated, info = env.step(2)
        targets.append(info["target"])
        if terminated or truncated:
            break
    assert terminated
    assert not truncated
    assert targets[-1] == env.source.vocab.eos_id
    assert tuple(env.source.vocab.symbols[t] for t in targets[:-1]) in enumerate_language(
        parse_rules(lm_envs.sources.DEFAULT_GRAMMAR, "S"), "S"
    )


# ---- generation: exact best return ----


def markov_best_values(source: MarkovSource, steps: int) -> list[np.ndarray]:
    """Backward induction over the raw transition matrix: values[t][key] for t steps left."""
    n, num_keys = source.n_symbols, source.n_symbols**source.order
    rewards = np.maximum(np.log(source.transitions), LOG_PROB_FLOOR)
    next_keys = (np.arange(num_keys)[:, None] * n + np.arange(n)) % num_keys
    values = [np.zeros(num_keys)]
    for _ in range(steps):
        values.append((rewards + values[-1][next_keys]).max(axis=1))
    return values


def test_markov_planner_reaches_optimal_return():
    steps = 12
    env = gym.make("MarkovGenerate-v0", max_new_tokens=steps, **SMALL_STREAM).unwrapped
    source = env.source
    n, k = source.n_symbols, source.order
    values = markov_best_values(source, steps)
    rewards = np.maximum(np.log(source.transitions), LOG_PROB_FLOOR)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        key = sum(int(obs[-k + i] - 1) * n ** (k - 1 - i) for i in range(k))
        assert info["optimal_return"] == pytest.approx(values[steps][key], abs=1e-9)
        total = 0.0
        for left in range(steps, 0, -1):
            next_keys = (key * n + np.arange(n)) % n**k
            symbol = int(np.argmax(rewards[key] + values[left - 1][next_keys]))
            _, reward, terminated, truncated, _ = env.step(symbol + 1)
            total += reward
            key = int(next_keys[symbol])
            assert not terminated
        assert truncated
        assert total == pytest.approx(info["optimal_return"], abs=1e-9)


def test_markov_generate_reward_is_true_log_prob():
    env = gym.make("MarkovGenerate-v0", **SMALL_STREAM).unwrapped
    source = env.source
    n, k = source.n_symbols, source.order
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=1)
    for _ in range(20):
        action = int(rng.integers(1, n + 1))
        key = sum(int(obs[-k + i] - 1) * n ** (k - 1 - i) for i in range(k))
        obs, reward, *_ = env.step(action)
        assert reward == pytest.approx(math.log(source.transitions[key, action - 1]))


def test_grammar_best_sentence_is_optimal_return():
    env = gym.make("GrammarGenerate-v0", **SMALL_STREAM).unwrapped
    source = env.source
    best = int(np.argmax(source.sentence_probs))
    _, info = env.reset(seed=0)
    assert info["optimal_return"] == pytest.approx(math.log(source.sentence_probs[best]))
    total = 0.0
    for token in [*source.sentences[best].tolist(), source.vocab.eos_id]:
        _, reward, terminated, truncated, info = env.step(token)
        total += reward
    assert terminated
    assert not truncated
    assert total == pytest.approx(math.log(source.sentence_probs[best]))
    assert info["continuation"] == source.vocab.decode(source.sentences[best])


def test_grammar_optimal_return_for_short_budget():
    env = gym.make("GrammarGenerate-v0", max_new_tokens=3, **SMALL_STREAM).unwrapped
    source = env.source
    prefix_mass: dict[tuple, float] = {}
    for sentence, probability in zip(source.sentences, source.sentence_probs, strict=True):
        assert len(sentence) + 1 > 3  # no sentence fits, so the best is a 3-token prefix
        key = tuple(sentence[:3].tolist())
        prefix_mass[key] = prefix_mass.get(key, 0.0) + probability
    _, info = env.reset(seed=0)
    assert info["optimal_return"] == pytest.approx(math.log(max(prefix_mass.values())))


def test_grammar_impossible_word_scores_floor():
    env = gym.make("GrammarGenerate-v0", **SMALL_STREAM).unwrapped
    words = env.source.vocab.symbols
    env.reset(seed=0)
    _, reward, *_ = env.step(words.index("the"))
    assert reward > LOG_PROB_FLOOR
    _, reward, *_ = env.step(words.index("sleeps"))  # "the sleeps" starts no sentence
    assert reward == LOG_PROB_FLOOR
    _, reward, *_ = env.step(words.index("cat"))
    assert reward == LOG_PROB_FLOOR
    _, reward, terminated, _, info = env.step(env.source.vocab.eos_id)
    assert reward == LOG_PROB_FLOOR
    assert terminated
    assert info["continuation"] == "the sleeps cat"


def test_markov_generate_only_truncates():
    env = gym.make("MarkovGenerate-v0", max_new_tokens=6, **SMALL_STREAM).unwrapped
    env.reset(seed=0)
    for step in range(6):
        _, _, terminated, truncated, info = env.step(1)
        assert not terminated
        assert truncated == (step == 5)
    assert info["continuation"] == "aaaaaa"
    assert info["distinct_1"] == pytest.approx(1 / 6)
    assert info["distinct_2"] == pytest.approx(1 / 5)


# ---- multilingual words ----


def test_multilingual_grammar_generates_text():
    env = gym.make(
        "GrammarGenerate-v0",
        grammar=MULTILINGUAL_GRAMMAR,
        context_length=8,
        prompt_length=4,
        render_mode="ansi",
        **SMALL_STREAM,
    ).unwrapped
    words = env.source.vocab.symbols
    env.reset(seed=0)
    total = 0.0
    for word in ["我", "看", "狗", "😀"]:
        _, reward, *_ = env.step(words.index(word))
        total += reward
    assert "[[😀]]" in env.render()
    _, reward, terminated, _, info = env.step(env.source.vocab.eos_id)
    assert terminated
    assert info["continuation"] == "我 看 狗 😀"
    assert total + reward == pytest.approx(math.log(0.7 * 0.4 * 0.5))


def test_grammar_render_shows_sentence_ends():
    env = gym.make("GrammarNextToken-v0", render_mode="ansi", **SMALL_STREAM).unwrapped
    env.reset(seed=3)
    assert env.render().endswith("<eos>")  # the window before a sentence start
    env.step(2)
    text = env.render()
    assert "<eos> [[" in text
    assert "[[" in text
    assert "]] (" in text


# ---- contract: masks, checkers, determinism, batch ----


@pytest.mark.parametrize("env_id", SOURCE_IDS)
def test_action_masks_exclude_pad(env_id):
    env = gym.make(env_id, **SMALL_STREAM).unwrapped
    mask = env.action_masks()
    assert mask.shape == (env.action_space.n,)
    assert not mask[0]
    assert mask[1:].all()
    obs, info = env.reset(seed=0)
    assert obs.dtype == OBS_DTYPE
    np.testing.assert_array_equal(info["action_mask"], mask)


CHECK_OPTIONS = [
    ("MarkovNextToken-v0", {}),
    ("MarkovNextToken-v0", {"reward": "log_prob", "n_symbols": 3, "order": 3}),
    ("MarkovGenerate-v0", {}),
    ("MarkovGenerate-v0", {"prompt_length": 2, "context_length": 4, "render_mode": "ansi"}),
    ("GrammarNextToken-v0", {}),
    ("GrammarNextToken-v0", {"reward": "log_prob", "grammar": MULTILINGUAL_GRAMMAR}),
    ("GrammarGenerate-v0", {}),
    ("GrammarGenerate-v0", {"prompt_length": 0, "render_mode": "ansi"}),
]


@pytest.mark.parametrize(("env_id", "options"), CHECK_OPTIONS)
def test_check_env_passes(env_id, options):
    env = gym.make(env_id, **SMALL_STREAM, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        check_env(env.unwrapped, skip_render_check="render_mode" not in options)
    sb3_check_env(env.unwrapped, warn=True)


def _rollout(env, seed, steps):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    record = [obs.tolist()]
    for _ in range(steps):
        action = int(rng.integers(1, env.action_space.n))
        obs, reward, terminated, truncated, _ = env.step(action)
        record.append((obs.tolist(), reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            record.append(obs.tolist())
    return record


@pytest.mark.parametrize("env_id", SOURCE_IDS)
def test_reset_seed_determinism(env_id):
    first = _rollout(gym.make(env_id, **SMALL_STREAM), 5, 200)
    second = _rollout(gym.make(env_id, **SMALL_STREAM), 5, 200)
    assert first == second
    assert first != _rollout(gym.make(env_id, **SMALL_STREAM), 6, 200)


def test_splits_are_different_streams():
    train = gym.make("MarkovNextToken-v0", split="train", **SMALL_STREAM).unwrapped
    test = gym.make("MarkovNextToken-v0", split="test", **SMALL_STREAM).unwrapped
    assert not np.array_equal(train.core.stream, test.core.stream)
    again = gym.make("MarkovNextToken-v0", split="train", **SMALL_STREAM).unwrapped
    np.testing.assert_array_equal(train.core.stream, again.core.stream)


BATCH_CASES = [
    ("MarkovNextToken-v0", {"episode_length": 5}),
    ("MarkovGenerate-v0", {"max_new_tokens": 4}),
    ("GrammarNextToken-v0", {"reward": "log_prob"}),
    ("GrammarGenerate-v0", {"max_new_tokens": 6}),
]


@pytest.mark.parametrize("autoreset_mode", ["next_step", "same_step"])
@pytest.mark.parametrize(("env_id", "options"), BATCH_CASES)
def test_batch_equals_single_envs(env_id, options, autoreset_mode):
    rng = np.random.default_rng(3)

    def policy(env):
        # Mostly the true model's best token, so grammar sentences reach <eos>.
        if rng.random() < 0.3:
            return int(rng.integers(1, env.action_space.n))
        window = env.core.observe()
        return int(env.source.distribution(window).argmax())

    kwargs = {**SMALL_STREAM, **options}
    assert_vector_matches_single(env_id, kwargs, 3, 40, 30, autoreset_mode, policy)


# ---- bad arguments ----


@pytest.mark.parametrize(
    ("env_id", "kwargs", "error", "match"),
    [
        (
            "MarkovNextToken-v0",
            {"context_length": 1},
            ValueError,
            "context_length=1 is too short.*use context_length >= 2",
        ),
        (
            "MarkovGenerate-v0",
            {"prompt_length": 1},
            ValueError,
            "prompt_length=1 is too short.*use prompt_length >= 2",
        ),
        (
            "MarkovGenerate-v0",
            {"prompt_length": 20},
            ValueError,
            r"prompt_length must be in \[0, 16\]",
        ),
        (
            "MarkovNextToken-v0",
            {"concentration": 0.0},
            ValueError,
            "concentration must be a finite number > 0",
        ),
        (
            "MarkovNextToken-v0",
            {"concentration": "high"},
            TypeError,
            "concentration must be a number",
        ),
        ("MarkovNextToken-v0", {"n_symbols": 1}, ValueError, r"n_symbols must be in \[2, 4096\]"),
        (
            "MarkovNextToken-v0",
            {"n_symbols": 64, "order": 4},
            ValueError,
            "table entries.*lower n_symbols or order",
        ),
        ("MarkovNextToken-v0", {"source_seed": -1}, ValueError, "source_seed must be >= 0"),
        (
            "MarkovNextToken-v0",
            {"stream_length": 100},
            ValueError,
            "stream_length=100 leaves no room.*episode_length=128",
        ),
        ("MarkovNextToken-v0", {"reward": "macth"}, ValueError, "Did you mean 'match'"),
        (
            "GrammarNextToken-v0",
            {"context_length": 8},
            ValueError,
            "context_length=8 is too short.*>= 10",
        ),
        ("GrammarNextToken-v0", {"split": "valid"}, ValueError, "Did you mean 'validation'"),
        ("GrammarNextToken-v0", {"grammar": ["S"]}, TypeError, "grammar must be a mapping"),
        ("GrammarGenerate-v0", {"max_new_tokens": 0}, ValueError, "max_new_tokens must be >= 1"),
        (
            "GrammarGenerate-v0",
            {"render_mode": "rgb_array"},
            ValueError,
            "render_mode must be one of",
        ),
    ],
)
def test_bad_arguments_rejected(env_id, kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make(env_id, **{**SMALL_STREAM, **kwargs})


@pytest.mark.parametrize(
    ("grammar", "match"),
    [
        ({"S": [("a S", 0.5), ("b", 0.5)]}, r"recursive \(S -> S\)"),
        ({"S": [("A", 1.0)], "A": [("S x", 1.0)]}, r"recursive \(S -> A -> S\)"),
        ({"S": [("a", 0.5), ("b", 0.4)]}, "summing to 0.9.*must sum to 1"),
        ({"S": [("a", 1.5), ("b", -0.5)]}, "probability -0.5; use a number > 0"),
        ({"T": [("a", 1.0)]}, "no rules for the start symbol 'S'"),
        ({"S": [("a <eos>", 1.0)]}, "'<eos>' is a special token"),
        ({"S": [("a", "half")]}, r"must be a \(rhs string, probability\) pair"),
    ],
)
def test_bad_grammars_rejected(grammar, match):
    with pytest.raises((ValueError, TypeError), match=match):
        GrammarSource(grammar)


def test_oversized_grammar_rejected(monkeypatch):
    monkeypatch.setattr(lm_envs.sources.grammar, "MAX_SENTENCES", 100)
    with pytest.raises(ValueError, match="more than 100 distinct word sequences"):
        GrammarSource()
