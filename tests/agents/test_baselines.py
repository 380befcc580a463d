"""Baseline agents on tiny corpora written by the tests."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from agents.baselines import (
    NGramAgent,
    RandomAgent,
    SupervisedAgent,
    SupervisedConfig,
    UnigramAgent,
    resolve_device,
)
from agents.evaluate import evaluate
from agents.networks import QNetwork
from lm_envs.data import load_corpus_data, load_windows


def write_corpus(folder, documents):
    """Write one .txt file per document (20 or more, so splits take whole documents)."""
    folder.mkdir()
    for index, text in enumerate(documents):
        (folder / f"doc{index:03d}.txt").write_text(text, encoding="utf-8")
    return str(folder)


@pytest.fixture
def ab_corpus(tmp_path):
    return write_corpus(tmp_path / "ab", ["ab" * (20 + i) for i in range(30)])


@pytest.fixture
def abc_corpus(tmp_path):
    return write_corpus(tmp_path / "abc", ["abc" * (30 + i) for i in range(30)])


def load(corpus, context_length, split="train", vocab_size=None):
    tokenizer = load_corpus_data(corpus, "char", vocab_size).tokenizer
    return tokenizer, load_windows(corpus, "char", vocab_size, split, context_length)


def char_id(tokenizer, char):
    return int(tokenizer.encode(char)[0])


def test_unigram_predicts_most_frequent(tmp_path):
    corpus = write_corpus(tmp_path / "c", ["aaaab" * 5 + "c" for _ in range(25)])
    tokenizer, train = load(corpus, 4)
    agent = UnigramAgent(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.action_mask())
    agent.fit(train)
    obs = train.windows(train.targets[:7])
    actions = agent.predict(obs)
    assert actions.dtype == np.int64
    assert actions.shape == (7,)
    assert (actions == char_id(tokenizer, "a")).all()


def test_unigram_add_one_smoothing(tmp_path):
    corpus = write_corpus(tmp_path / "c", ["aab" for _ in range(25)])
    tokenizer, train = load(corpus, 2)
    agent = UnigramAgent(tokenizer.vocab_size, tokenizer.pad_id).fit(train)
    tokens = train.stream[train.targets]
    non_pad = tokenizer.vocab_size - 1
    expected_a = ((tokens == char_id(tokenizer, "a")).sum() + 1) / (len(tokens) + non_pad)
    probs = agent.distribution(train.windows(train.targets[:3]))
    assert probs[0, char_id(tokenizer, "a")] == pytest.approx(expected_a)
    assert probs[0, tokenizer.pad_id] == 0.0
    assert probs[0, tokenizer.unk_id] > 0.0
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_ngram_order_two_predicts_alternation(ab_corpus):
    tokenizer, train = load(ab_corpus, 3)
    _, validation = load(ab_corpus, 3, "validation")
    agent = NGramAgent(2, tokenizer.vocab_size, tokenizer.pad_id, tokenizer.action_mask())
    agent.fit(train)
    inside = validation.targets[validation.stream[validation.targets] != tokenizer.eos_id]
    actions = agent.predict(validation.windows(inside))
    np.testing.assert_array_equal(actions, validation.stream[inside])


def test_distributions_sum_to_one(tiny_corpus):
    corpus = str(tiny_corpus)
    tokenizer, train = load(corpus, 6)
    mask = tokenizer.action_mask()
    config = SupervisedConfig(total_examples=512, batch_size=64)
    agents = [
        RandomAgent(mask),
        UnigramAgent(tokenizer.vocab_size, tokenizer.pad_id, mask).fit(train),
        NGramAgent(3, tokenizer.vocab_size, tokenizer.pad_id, mask).fit(train),
        SupervisedAgent(tokenizer.vocab_size, 6, mask, config, device="cpu").fit(train),
    ]
    obs = train.windows(train.targets[:50])
    for agent in agents:
        probs = agent.distribution(obs)
        assert probs.shape == (50, tokenizer.vocab_size), type(agent).__name__
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, err_msg=type(agent).__name__)
        assert (probs >= 0).all(), type(agent).__name__
        assert (probs[:, tokenizer.pad_id] == 0).all(), type(agent).__name__


def test_random_never_picks_masked():
    mask = np.zeros(50, dtype=bool)
    mask[[3, 7, 11, 40]] = True
    agent = RandomAgent(mask, seed=1)
    obs = np.zeros((4000, 5), dtype=np.int32)
    actions = agent.predict(obs)
    assert set(np.unique(actions)) == {3, 7, 11, 40}
    counts = np.bincount(actions, minlength=50)[[3, 7, 11, 40]]
    assert counts.min() > 850  # 1000 expected per id


def test_random_honours_row_masks():
    agent = RandomAgent(np.ones(10, dtype=bool), seed=0)
    row_masks = np.zeros((200, 10), dtype=bool)
    row_masks[np.arange(200), np.arange(200) % 10] = True
    actions = agent.predict(np.zeros((200, 3), dtype=np.int32), action_masks=row_masks)
    np.testing.assert_array_equal(actions, np.arange(200) % 10)


def test_sampling_picks_only_valid(ab_corpus):
    tokenizer, train = load(ab_corpus, 3)
    agent = UnigramAgent(tokenizer.vocab_size, tokenizer.pad_id, seed=3).fit(train)
    actions = agent.predict(train.windows(train.targets[:500]), deterministic=False)
    assert tokenizer.pad_id not in actions
    assert len(np.unique(actions)) >= 2


def test_supervised_learns_repetitive_text(abc_corpus):
    tokenizer, train = load(abc_corpus, 4)
    config = SupervisedConfig(total_examples=6000, batch_size=64, learning_rate=3e-3)
    agent = SupervisedAgent(
        tokenizer.vocab_size, 4, tokenizer.action_mask(), config, device="cpu", seed=0
    )
    start = time.perf_counter()
    agent.fit(train)
    assert time.perf_counter() - start < 20
    assert agent.num_examples == 6000
    assert agent.losses[-1] < agent.losses[0]
    metrics = evaluate(agent, abc_corpus, "char", None, 4)
    assert metrics["accuracy"] > 0.9
    assert metrics["bits_per_token"] < 0.5


def test_supervised_seed_is_reproducible(abc_corpus):
    tokenizer, train = load(abc_corpus, 4)
    config = SupervisedConfig(total_examples=300, batch_size=32)
    weights = []
    for _ in range(2):
        agent = SupervisedAgent(tokenizer.vocab_size, 4, tokenizer.action_mask(), config, "cpu", 5)
        weights.append(agent.fit(train).state_dict())
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name


def test_supervised_weights_load_into_qnetwork(abc_corpus):
    tokenizer, train = load(abc_corpus, 4)
    encoder_kwargs = {"embed_dim": 8, "hidden_dim": 16, "num_layers": 2}
    config = SupervisedConfig(
        total_examples=64, batch_size=32, encoder="gru", dueling=True, encoder_kwargs=encoder_kwargs
    )
    agent = SupervisedAgent(tokenizer.vocab_size, 4, tokenizer.action_mask(), config, "cpu")
    agent.fit(train)
    network = QNetwork(tokenizer.vocab_size, 4, encoder="gru", dueling=True, **encoder_kwargs)
    network.load_state_dict(agent.state_dict())
    obs = train.windows(train.targets[:5])
    with torch.no_grad():
        logits = network(torch.as_tensor(obs.astype(np.int64)))
    valid = tokenizer.action_mask()
    np.testing.assert_allclose(logits.numpy()[:, valid], agent.logits(obs)[:, valid], rtol=1e-6)


def test_supervised_skips_unknown_targets(tmp_path):
    # A vocabulary cap of 5 keeps <pad>, <eos>, <unk> and two characters, so "c" becomes <unk>.
    corpus = write_corpus(tmp_path / "c", ["aaabbc" * 4 for _ in range(25)])
    tokenizer, train = load(corpus, 3, vocab_size=5)
    assert (train.stream[train.targets] == tokenizer.unk_id).any()
    config = SupervisedConfig(total_examples=200, batch_size=50)
    agent = SupervisedAgent(5, 3, tokenizer.action_mask(), config, "cpu").fit(train)
    assert np.isfinite(agent.losses).all()
    assert (agent.distribution(train.windows(train.targets[:4]))[:, tokenizer.unk_id] == 0).all()


def test_multilingual_corpus_predictions_decode(tiny_corpus):
    tokenizer, train = load(str(tiny_corpus), 4)
    agent = NGramAgent(3, tokenizer.vocab_size, tokenizer.pad_id, tokenizer.action_mask())
    agent.fit(train)
    # The window "机器学" is followed by "习" wherever it occurs.
    window = np.asarray(tokenizer.encode("机器学"), dtype=np.int32)[None, :]
    window = np.concatenate([np.zeros((1, 1), dtype=np.int32), window], axis=1)
    assert tokenizer.decode(agent.predict(window)) == "习"


def test_unfitted_agents_raise():
    with pytest.raises(RuntimeError, match=r"UnigramAgent is not fitted; call fit"):
        UnigramAgent(10, 0).predict(np.zeros((1, 2), dtype=np.int32))
    with pytest.raises(RuntimeError, match=r"NGramAgent is not fitted; call fit"):
        NGramAgent(2, 10, 0).distribution(np.zeros((1, 2), dtype=np.int32))


def test_bad_inputs_raise():
    agent = RandomAgent(np.ones(6, dtype=bool))
    with pytest.raises(ValueError, match=r"obs must have shape \(batch, context_length\)"):
        agent.predict(np.zeros((2, 3, 4), dtype=np.int32))
    with pytest.raises(TypeError, match=r"obs must contain integer token ids, got dtype float"):
        agent.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"action_masks must have shape \(6,\) or \(2, 6\)"):
        agent.predict(np.zeros((2, 3), dtype=np.int32), action_masks=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match=r"needs at least one valid"):
        agent.predict(np.zeros((2, 3), dtype=np.int32), action_masks=np.zeros(6, dtype=bool))
    with pytest.raises(ValueError, match=r"at least one True entry"):
        RandomAgent(np.zeros(4, dtype=bool))
    with pytest.raises(ValueError, match=r"action_mask must have shape \(8,\)"):
        UnigramAgent(8, 0, action_mask=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match=r"order must be an int >= 1, got 0"):
        NGramAgent(0, 8, 0)


def test_supervised_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"total_examples must be >= 1, got 0"):
        SupervisedConfig(total_examples=0)
    with pytest.raises(TypeError, match=r"batch_size must be an int, got float"):
        SupervisedConfig(batch_size=2.5)
    with pytest.raises(ValueError, match=r"learning_rate must be > 0, got -1"):
        SupervisedConfig(learning_rate=-1)
    with pytest.raises(ValueError, match=r"max_grad_norm must be > 0 or None"):
        SupervisedConfig(max_grad_norm=0)


def test_supervised_rejects_other_context_length(abc_corpus):
    tokenizer, train = load(abc_corpus, 4)
    agent = SupervisedAgent(tokenizer.vocab_size, 8, tokenizer.action_mask(), device="cpu")
    with pytest.raises(ValueError, match=r"windows have context_length=4, the network expects 8"):
        agent.fit(train)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match=r"device 'tpu' is not a torch device; use 'auto'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"CUDA is not available; use 'cpu'"):
            resolve_device("cuda")


def test_supervised_predict_follows_caller_mask(abc_corpus):
    tokenizer, train = load(abc_corpus, 4)
    config = SupervisedConfig(total_examples=64, batch_size=32)
    agent = SupervisedAgent(tokenizer.vocab_size, 4, tokenizer.action_mask(), config, "cpu")
    agent.fit(train)
    obs = train.windows(train.targets[:3])
    only_unk = np.zeros(tokenizer.vocab_size, dtype=bool)
    only_unk[tokenizer.unk_id] = True
    np.testing.assert_array_equal(agent.predict(obs, action_masks=only_unk), tokenizer.unk_id)
    only_c = np.zeros(tokenizer.vocab_size, dtype=bool)
    only_c[char_id(tokenizer, "c")] = True
    sampled = agent.predict(obs, action_masks=only_c, deterministic=False)
    np.testing.assert_array_equal(sampled, char_id(tokenizer, "c"))
