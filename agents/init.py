"""Start a DQN from a supervised next-token model of the same network.

:class:`~agents.baselines.SupervisedAgent` trains :class:`~agents.networks.QNetwork` by
cross-entropy, so its outputs are logits. Copying them into a DQN makes the first greedy policy
the supervised model's argmax. The values are on the logit scale, not the reward scale, so the
first updates pull the Q-values of the actions taken towards the rewards while the others keep
their logits, which reorders the greedy choices for a while. In benchmarks/dqn_variants.py on
tinyshakespeare (char, 3 seeds) greedy accuracy fell from 0.257 to 0.195 in the first 5000
steps, then ended at 0.268 after 100k steps against 0.260 without the copy.

Typical use::

    supervised = pretrain_supervised(agent, train_windows, tokenizer.action_mask(), 20_000)
    agent.learn()
"""

from __future__ import annotations

import numpy as np
import torch

from agents.baselines import SupervisedAgent, SupervisedConfig
from agents.dqn import DQN
from agents.dqn_config import DQNConfig
from lm_envs.data import TokenWindows


def supervised_config_for(
    config: DQNConfig,
    total_examples: int,
    learning_rate: float | None = None,
    batch_size: int | None = None,
) -> SupervisedConfig:
    """Return supervised settings whose network matches ``config``'s Q-network exactly.

    Args:
        config: the DQN's settings; the encoder, dueling head and layer sizes are copied.
        total_examples: (window, next token) pairs to train on.
        learning_rate: Adam step size; the DQN's when None.
        batch_size: examples per step; the DQN's when None.
    """
    return SupervisedConfig(
        total_examples=total_examples,
        batch_size=config.batch_size if batch_size is None else batch_size,
        learning_rate=config.learning_rate if learning_rate is None else learning_rate,
        max_grad_norm=config.max_grad_norm,
        encoder=config.encoder,
        dueling=config.dueling,
        encoder_kwargs={
            "embed_dim": config.embed_dim,
            "hidden_dim": config.hidden_dim,
            "num_layers": config.num_layers,
            "num_heads": config.num_heads,
        },
    )


def init_from_supervised(agent: DQN, supervised: SupervisedAgent) -> DQN:
    """Copy ``supervised``'s network weights into ``agent``'s Q-network and target network.

    Call it before :meth:`DQN.learn`: the optimizer state of an agent that has already taken
    gradient steps would belong to other weights.

    Returns:
        ``agent``, whose greedy actions now equal ``supervised.predict``'s.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: the agent has already trained, or the two networks differ in V, L or
            layout (build the supervised agent with :func:`supervised_config_for`).
    """
    if not isinstance(agent, DQN):
        raise TypeError(f"agent must be an agents.dqn.DQN, got {type(agent).__name__}.")
    if not isinstance(supervised, SupervisedAgent):
        raise TypeError(
            f"supervised must be an agents.baselines.SupervisedAgent, got "
            f"{type(supervised).__name__}."
        )
    if agent.n_updates > 0:
        raise ValueError(
            f"the agent has already taken {agent.n_updates} gradient steps; initialise a new "
            "DQN from the supervised model before calling learn()."
        )
    if (supervised.vocab_size, supervised.context_length) != (
        agent.vocab_size,
        agent.context_length,
    ):
        raise ValueError(
            f"the supervised model has V={supervised.vocab_size}, L={supervised.context_length}; "
            f"the DQN has V={agent.vocab_size}, L={agent.context_length}. Train the supervised "
            "model on the same tokenizer and context_length."
        )
    state = supervised.state_dict()
    expected = agent.q_network.state_dict()
    mismatched = sorted(
        name
        for name in set(state) | set(expected)
        if name not in state or name not in expected or state[name].shape != expected[name].shape
    )
    if mismatched:
        raise ValueError(
            f"the supervised network's layout differs from the DQN's in {mismatched}; build the "
            "SupervisedAgent with supervised_config_for(agent.config, total_examples)."
        )
    with torch.no_grad():
        agent.q_network.load_state_dict(state)
        agent.target_network.load_state_dict(state)
    return agent


def pretrain_supervised(
    agent: DQN,
    windows: TokenWindows,
    action_mask: np.ndarray,
    total_examples: int,
    learning_rate: float | None = None,
    batch_size: int | None = None,
) -> SupervisedAgent:
    """Train a supervised model with ``agent``'s network and copy it into ``agent``.

    Args:
        agent: an untrained DQN.
        windows: the training split, loaded with the agent's context length.
        action_mask: bool (V,), True for valid token ids (``tokenizer.action_mask()``).
        total_examples: (window, next token) pairs to train on.
        learning_rate, batch_size: see :func:`supervised_config_for`.

    Returns:
        The trained supervised agent, seeded with the agent's seed (0 when it has none), so it
        starts from the same weights as the DQN did.
    """
    config = supervised_config_for(agent.config, total_examples, learning_rate, batch_size)
    supervised = SupervisedAgent(
        agent.vocab_size,
        agent.context_length,
        action_mask,
        config,
        device=agent.device,
        seed=agent.seed if agent.seed is not None else 0,
    )
    supervised.fit(windows)
    init_from_supervised(agent, supervised)
    return supervised
