"""evaluate() on hand-checkable agents and corpora."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.baselines import NGramAgent, RandomAgent, UnigramAgent
from agents.evaluate import PROBABILITY_FLOOR, evaluate
from lm_envs.data import load_corpus_data, load_windows
from lm_envs.ngram import fit_ngram


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for index in range(30):
        text = "the quick brown fox. 快速的狐狸 🦊 " * (2 + index % 3)
        (folder / f"doc{index:02d}.txt").write_text(text, encoding="utf-8")
    return str(folder)


def tokenizer_of(corpus):
    return load_corpus_data(corpus, "char", None).tokenizer


class ConstantAgent:
    """Always predicts one token; has no distribution."""

    def __init__(self, token: int) -> None:
        self.token = token

    def predict(self, obs, action_masks=None, deterministic=True):
        return np.full(len(obs), self.token, dtype=np.int64)


class EosOnlyAgent:
    """Puts all probability on <eos>, so every other true token has probability 0."""

    def __init__(self, eos_id: int, vocab_size: int) -> None:
        self.eos_id = eos_id
        self.vocab_size = vocab_size

    def predict(self, obs, action_masks=None, deterministic=True):
        return np.full(len(obs), self.eos_id, dtype=np.int64)

    def distribution(self, obs):
        probs = np.zeros((len(obs), self.vocab_size))
        probs[:, self.eos_id] = 1.0
        return probs


def test_uniform_bits_equal_log2_valid(corpus):
    tokenizer = tokenizer_of(corpus)
    valid = int(tokenizer.action_mask().sum())
    metrics = evaluate(RandomAgent(tokenizer.action_mask()), corpus, "char", None, 5)
    assert metrics["bits_per_token"] == pytest.approx(math.log2(valid))
    assert metrics["perplexity"] == pytest.approx(valid)
    assert metrics["floored_tokens"] == 0


def test_constant_agent_accuracy(corpus):
    tokenizer = tokenizer_of(corpus)
    space = int(tokenizer.encode(" ")[0])
    windows = load_windows(corpus, "char", None, "validation", 5)
    truth = windows.stream[windows.targets]
    metrics = evaluate(ConstantAgent(space), corpus, "char", None, 5)
    assert metrics["tokens"] == len(truth)
    assert metrics["accuracy"] == pytest.approx(np.mean(truth == space))
    assert metrics["mean_reward"] == metrics["accuracy"]
    assert metrics["bits_per_token"] is None
    assert metrics["perplexity"] is None
    assert metrics["floored_tokens"] is None
    assert metrics["wall_time_s"] > 0
    assert metrics["steps_per_second"] == pytest.approx(len(truth) / metrics["wall_time_s"])


def test_log_prob_reward_matches_reference(corpus):
    tokenizer = tokenizer_of(corpus)
    fox = int(tokenizer.encode("o")[0])
    metrics = evaluate(
        ConstantAgent(fox), corpus, "char", None, 4, reward="log_prob", reference_order=3
    )
    train = load_windows(corpus, "char", None, "train", 2)
    reference = fit_ngram(train, 3, tokenizer.vocab_size)
    validation = load_windows(corpus, "char", None, "validation", 4)
    contexts = validation.windows(validation.targets)
    expected = reference.log_prob(contexts, np.full(len(contexts), fox)).mean()
    assert metrics["mean_reward"] == pytest.approx(expected)
    assert metrics["mean_reward"] < 0


def test_ngram_bits_match_model(corpus):
    tokenizer = tokenizer_of(corpus)
    train = load_windows(corpus, "char", None, "train", 3)
    agent = NGramAgent(3, tokenizer.vocab_size, tokenizer.pad_id).fit(train)
    validation = load_windows(corpus, "char", None, "validation", 3)
    contexts = validation.windows(validation.targets)
    truth = validation.stream[validation.targets]
    expected = -np.log2(agent.model.prob(contexts, truth)).mean()
    metrics = evaluate(agent, corpus, "char", None, 3, batch_size=7)
    assert metrics["bits_per_token"] == pytest.approx(expected)
    assert metrics["accuracy"] > 0.5


def test_zero_probability_is_floored(corpus):
    tokenizer = tokenizer_of(corpus)
    validation = load_windows(corpus, "char", None, "validation", 6)
    truth = validation.stream[validation.targets]
    missed = int((truth != tokenizer.eos_id).sum())
    assert 0 < missed < len(truth)
    agent = EosOnlyAgent(tokenizer.eos_id, tokenizer.vocab_size)
    metrics = evaluate(agent, corpus, "char", None, 6)
    assert metrics["floored_tokens"] == missed
    expected_bits = missed * -math.log2(PROBABILITY_FLOOR) / len(truth)
    assert metrics["bits_per_token"] == pytest.approx(expected_bits)
    assert math.isfinite(metrics["perplexity"])


def test_evaluation_is_deterministic(corpus):
    tokenizer = tokenizer_of(corpus)
    first = evaluate(RandomAgent(tokenizer.action_mask(), seed=4), corpus, "char", None, 5)
    second = evaluate(RandomAgent(tokenizer.action_mask(), seed=4), corpus, "char", None, 5)
    for key in ("accuracy", "mean_reward", "bits_per_token", "tokens"):
        assert first[key] == second[key], key


def test_max_tokens_and_batching(corpus):
    tokenizer = tokenizer_of(corpus)
    train = load_windows(corpus, "char", None, "train", 5)
    agent = UnigramAgent(tokenizer.vocab_size, tokenizer.pad_id).fit(train)
    whole = evaluate(agent, corpus, "char", None, 5, max_tokens=33, batch_size=4096)
    pieces = evaluate(agent, corpus, "char", None, 5, max_tokens=33, batch_size=5)
    assert whole["tokens"] == pieces["tokens"] == 33
    assert whole["accuracy"] == pieces["accuracy"]
    assert whole["bits_per_token"] == pytest.approx(pieces["bits_per_token"])


def test_bad_arguments_raise(corpus):
    agent = ConstantAgent(2)
    with pytest.raises(ValueError, match=r"split must be one of .* got 'valid'"):
        evaluate(agent, corpus, "char", None, 4, split="valid")
    with pytest.raises(ValueError, match=r"max_tokens must be >= 1, got 0"):
        evaluate(agent, corpus, "char", None, 4, max_tokens=0)
    with pytest.raises(ValueError, match=r"reward must be one of \['match', 'log_prob'\]"):
        evaluate(agent, corpus, "char", None, 4, reward="accuracy")
    with pytest.raises(ValueError, match=r"context_length must be >= 1, got 0"):
        evaluate(agent, corpus, "char", None, 0)


def test_wrong_prediction_shape_raises(corpus):
    class TwoColumnAgent:
        def predict(self, obs, action_masks=None, deterministic=True):
            return np.zeros((len(obs), 2), dtype=np.int64)

    with pytest.raises(ValueError, match=r"agent.predict returned shape \(\d+, 2\)"):
        evaluate(TwoColumnAgent(), corpus, "char", None, 4)
