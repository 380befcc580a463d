"""Soft Q-learning recovers the reference model when the reward is its log-probability.

With reward log p(a | s) and temperature alpha = 1, the soft value of every state is
log sum_a p(a | s) exp(0) = 0 (by induction from the episode end), so the soft-optimal
Q(s, a) is log p(a | s) and the Boltzmann policy softmax(Q / alpha) is p itself. A hard-max
target adds gamma * max Q(s', .), which differs between next states, so plain DQN's
softmax policy does not match p.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import lm_envs  # noqa: F401
from agents.dqn import DQN, DQNConfig

# A 3-symbol, order-1 Markov chain scored by its own log-probabilities.
SOURCE = {
    "n_symbols": 3,
    "order": 1,
    "concentration": 1.0,
    "context_length": 2,
    "prompt_length": 2,
    "max_new_tokens": 8,
}


def _train(soft_q_learning: bool) -> DQN:
    envs = gym.make_vec(
        "MarkovGenerate-v0", num_envs=16, vectorization_mode="vector_entry_point", **SOURCE
    )
    config = DQNConfig(
        total_steps=40_000,
        soft_q_learning=soft_q_learning,
        soft_q_alpha=1.0,
        gamma=0.9,
        learning_rate=3e-3,
        batch_size=128,
        learning_starts=1_000,
        embed_dim=8,
        hidden_dim=32,
        target_update_interval=500,
        log_outputs=(),
    )
    return DQN(envs, config, device="cpu", seed=0).learn()


def _kl_to_reference(agent: DQN) -> tuple[float, float]:
    """Return the mean KL(p || softmax(Q)) and KL(p || uniform) over every context, in nats."""
    source = gym.make("MarkovGenerate-v0", **SOURCE).unwrapped.source
    symbols = np.arange(1, SOURCE["n_symbols"] + 1)
    contexts = np.array([[a, b] for a in symbols for b in symbols], dtype=np.int32)
    reference = source.distribution(contexts)[:, symbols]

    q_values = agent.q_values(contexts)[:, symbols].astype(np.float64)
    shifted = q_values - q_values.max(axis=1, keepdims=True)
    log_policy = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    kl_policy = np.sum(reference * (np.log(reference) - log_policy), axis=1).mean()
    kl_uniform = np.sum(reference * (np.log(reference) + np.log(len(symbols))), axis=1).mean()
    return float(kl_policy), float(kl_uniform)


@pytest.mark.slow
def test_soft_q_policy_is_reference_model():
    kl_policy, kl_uniform = _kl_to_reference(_train(soft_q_learning=True))
    assert kl_uniform > 0.1
    assert kl_policy < 1e-4


@pytest.mark.slow
def test_hard_max_policy_is_not_reference_model():
    kl_policy, _ = _kl_to_reference(_train(soft_q_learning=False))
    assert kl_policy > 1e-4
