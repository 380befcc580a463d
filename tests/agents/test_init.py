"""Supervised initialisation: weights copied into both networks, same greedy accuracy, checks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.baselines import SupervisedAgent, SupervisedConfig
from agents.dqn import DQN, DQNConfig
from agents.evaluate import evaluate
from agents.init import init_from_supervised, pretrain_supervised, supervised_config_for
from lm_envs.data import load_corpus_data, load_windows

CONTEXT = 4


def make_agent(corpus, seed=0, context_length=CONTEXT, **kwargs) -> DQN:
    env = gym.make_vec(
        "LMNextToken-v0",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        corpus=str(corpus),
        context_length=context_length,
        episode_length=16,
    )
    settings = dict(
        total_steps=200,
        learning_starts=40,
        gamma=0.0,
        embed_dim=8,
        hidden_dim=32,
        batch_size=16,
        buffer_size=400,
        log_outputs=(),
    )
    settings.update(kwargs)
    return DQN(env, DQNConfig(**settings), device="cpu", seed=seed)


def train_supervised(corpus, agent: DQN, examples=2000, seed=0, **overrides) -> SupervisedAgent:
    tokenizer = load_corpus_data(str(corpus), "char", None).tokenizer
    windows = load_windows(str(corpus), "char", None, "train", agent.context_length)
    config = supervised_config_for(agent.config, examples, learning_rate=1e-2)
    for name, value in overrides.items():
        setattr(config, name, value)
    supervised = SupervisedAgent(
        agent.vocab_size, agent.context_length, tokenizer.action_mask(), config, "cpu", seed
    )
    return supervised.fit(windows)


def assert_weights_equal(module: torch.nn.Module, state: dict) -> None:
    own = module.state_dict()
    assert own.keys() == state.keys()
    for name, tensor in state.items():
        assert torch.equal(own[name], tensor), name


def test_config_for_matches_network():
    config = DQNConfig(
        encoder="gru", embed_dim=12, hidden_dim=24, num_layers=2, dueling=True, batch_size=32
    )
    supervised = supervised_config_for(config, 500)
    assert supervised.total_examples == 500
    assert supervised.encoder == "gru"
    assert supervised.dueling is True
    assert supervised.encoder_kwargs == {
        "embed_dim": 12,
        "hidden_dim": 24,
        "num_layers": 2,
        "num_heads": 4,
    }
    assert supervised.batch_size == 32
    assert supervised.learning_rate == config.learning_rate
    assert supervised.max_grad_norm == config.max_grad_norm


def test_config_for_overrides():
    supervised = supervised_config_for(DQNConfig(), 100, learning_rate=0.5, batch_size=7)
    assert supervised.learning_rate == 0.5
    assert supervised.batch_size == 7


def test_weights_copied_into_both_networks(tiny_corpus):
    agent = make_agent(tiny_corpus)
    supervised = train_supervised(tiny_corpus, agent)
    before = agent.q_network.state_dict()["head.weight"].clone()
    assert not torch.equal(before, supervised.state_dict()["head.weight"])

    assert init_from_supervised(agent, supervised) is agent
    assert_weights_equal(agent.q_network, supervised.state_dict())
    assert_weights_equal(agent.target_network, supervised.state_dict())
    # Copies, not shared tensors: training the DQN must not move the supervised model.
    assert agent.q_network.head.weight.data_ptr() != supervised.q_network.head.weight.data_ptr()


def test_initial_greedy_accuracy_equals_supervised(tiny_corpus):
    agent = make_agent(tiny_corpus)
    supervised = train_supervised(tiny_corpus, agent)
    init_from_supervised(agent, supervised)
    data = (str(tiny_corpus), "char", None, CONTEXT)
    dqn_metrics = evaluate(agent, *data, split="validation")
    supervised_metrics = evaluate(supervised, *data, split="validation")
    assert dqn_metrics["tokens"] == supervised_metrics["tokens"]
    assert dqn_metrics["accuracy"] == supervised_metrics["accuracy"]
    # The supervised model beats chance here, so equal accuracy is not two zeros.
    assert supervised_metrics["accuracy"] > 0.3

    windows = load_windows(str(tiny_corpus), "char", None, "validation", CONTEXT)
    obs = windows.windows(windows.targets)
    mask = supervised.action_mask
    assert np.array_equal(agent.predict(obs, mask), supervised.predict(obs, mask))


def test_dueling_network_copied(tiny_corpus):
    agent = make_agent(tiny_corpus, dueling=True)
    supervised = train_supervised(tiny_corpus, agent, examples=200)
    init_from_supervised(agent, supervised)
    assert "value_head.weight" in supervised.state_dict()
    assert_weights_equal(agent.q_network, supervised.state_dict())


def test_learning_continues_after_init(tiny_corpus):
    agent = make_agent(tiny_corpus)
    init_from_supervised(agent, train_supervised(tiny_corpus, agent, examples=200))
    copied = agent.q_network.head.weight.detach().clone()
    agent.learn()
    assert agent.n_updates > 0
    assert not torch.equal(agent.q_network.head.weight, copied)


def test_pretrain_supervised_trains_and_copies(tiny_corpus):
    agent = make_agent(tiny_corpus, seed=5)
    tokenizer = load_corpus_data(str(tiny_corpus), "char", None).tokenizer
    windows = load_windows(str(tiny_corpus), "char", None, "train", CONTEXT)
    supervised = pretrain_supervised(agent, windows, tokenizer.action_mask(), 300, batch_size=50)
    assert supervised.num_examples == 300
    assert len(supervised.losses) == 6
    assert supervised.seed == 5
    assert supervised.config.batch_size == 50
    assert_weights_equal(agent.q_network, supervised.state_dict())


def test_rejects_trained_agent(tiny_corpus):
    agent = make_agent(tiny_corpus)
    supervised = train_supervised(tiny_corpus, agent, examples=100)
    agent.learn()
    with pytest.raises(ValueError, match=r"already taken \d+ gradient steps"):
        init_from_supervised(agent, supervised)


def test_rejects_other_context_length(tiny_corpus):
    agent = make_agent(tiny_corpus)
    other = make_agent(tiny_corpus, context_length=CONTEXT + 1)
    supervised = train_supervised(tiny_corpus, other, examples=100)
    with pytest.raises(ValueError, match=r"L=5; the DQN has V=\d+, L=4"):
        init_from_supervised(agent, supervised)


def test_rejects_other_layout(tiny_corpus):
    agent = make_agent(tiny_corpus)
    supervised = train_supervised(
        tiny_corpus,
        agent,
        examples=100,
        encoder_kwargs={"embed_dim": 8, "hidden_dim": 16, "num_layers": 1, "num_heads": 4},
    )
    with pytest.raises(ValueError, match=r"differs from the DQN's in \['encoder.body.1.bias'"):
        init_from_supervised(agent, supervised)


def test_rejects_missing_dueling_head(tiny_corpus):
    agent = make_agent(tiny_corpus, dueling=True)
    supervised = train_supervised(tiny_corpus, agent, examples=100, dueling=False)
    with pytest.raises(ValueError, match="value_head.bias"):
        init_from_supervised(agent, supervised)


def test_rejects_wrong_types(tiny_corpus):
    agent = make_agent(tiny_corpus)
    with pytest.raises(TypeError, match="supervised must be an agents.baselines.SupervisedAgent"):
        init_from_supervised(agent, {"head.weight": torch.zeros(1)})
    config = SupervisedConfig(total_examples=10)
    supervised = SupervisedAgent(agent.vocab_size, CONTEXT, np.ones(agent.vocab_size, bool), config)
    with pytest.raises(TypeError, match="agent must be an agents.dqn.DQN"):
        init_from_supervised(supervised, supervised)
