"""Held-out metrics of a next-token agent: accuracy, reward, bits per token and speed."""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

import numpy as np

from lm_envs.envs.next_token import make_setup
from lm_envs.validation import check_int

# The smallest probability the cross-entropy reads. A model that gives the true token
# probability 0 (a masked <unk>, a model without smoothing) would make bits_per_token infinite,
# so such tokens cost exactly 100 bits each instead and are counted in "floored_tokens". The
# floor sits far below real small probabilities: the smoothed 4-gram baseline gives about 2e-13
# to a rare character of pydoc's validation split.
PROBABILITY_FLOOR = 2.0**-100


class Agent(Protocol):
    """The agent interface :func:`evaluate` calls; ``distribution`` is optional."""

    def predict(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray: ...


def evaluate(
    agent: Agent,
    corpus: str | os.PathLike,
    tokenizer: str | os.PathLike,
    vocab_size: int | None,
    context_length: int,
    split: str = "validation",
    max_tokens: int | None = None,
    reward: str = "match",
    reference_order: int = 3,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """Score ``agent`` on every target position of a split, in stream order.

    The agent receives the windows and action masks that ``LMNextToken-v0`` gives on that
    split and acts greedily (``deterministic=True``). A random agent draws from its own seeded
    generator, so two fresh agents with the same seed get the same numbers.

    Args:
        agent: anything with ``predict``; ``distribution`` adds bits_per_token and perplexity.
        corpus, tokenizer, vocab_size, context_length: the environment's data arguments.
        split: the split to score, normally one the agent did not train on.
        max_tokens: score only the first ``max_tokens`` targets (all when None).
        reward: the environment reward averaged into ``mean_reward``: ``"match"`` (equals
            accuracy) or ``"log_prob"`` (reference-model log-probability of the chosen token,
            in nats).
        reference_order: order of the reference n-gram model for ``reward="log_prob"``.
        batch_size: windows per ``predict`` call.

    Returns:
        ``accuracy``, ``mean_reward``, ``bits_per_token`` and ``perplexity`` (None without
        ``distribution``), ``floored_tokens`` (None without ``distribution``), ``tokens``,
        ``steps_per_second`` (tokens scored per second) and ``wall_time_s``.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    if max_tokens is not None:
        max_tokens = check_int("max_tokens", max_tokens, 1)
    setup = make_setup(
        corpus,
        tokenizer,
        vocab_size,
        context_length,
        episode_length=1,
        split=split,
        reward=reward,
        reference_order=reference_order,
    )
    windows = setup.windows
    positions = windows.targets if max_tokens is None else windows.targets[:max_tokens]
    has_distribution = callable(getattr(agent, "distribution", None))

    correct = 0
    reward_sum = 0.0
    bits_sum = 0.0
    floored = 0
    start = time.perf_counter()
    for begin in range(0, len(positions), batch_size):
        batch = positions[begin : begin + batch_size]
        obs = windows.windows(batch)
        truth = windows.stream[batch].astype(np.int64)
        masks = np.broadcast_to(setup.action_mask, (len(batch), setup.vocab_size))
        actions = np.asarray(agent.predict(obs, action_masks=masks, deterministic=True))
        if actions.shape != truth.shape:
            raise ValueError(
                f"agent.predict returned shape {actions.shape} for {len(batch)} windows; "
                f"expected ({len(batch)},)."
            )
        hits = actions == truth
        correct += int(hits.sum())
        if reward == "match":
            reward_sum += float(hits.sum())
        else:
            reward_sum += float(setup.reference.log_prob(obs, actions).sum())
        if has_distribution:
            probs = np.asarray(agent.distribution(obs))
            true_probs = probs[np.arange(len(batch)), truth]
            floored += int((true_probs < PROBABILITY_FLOOR).sum())
            bits_sum -= float(np.log2(np.maximum(true_probs, PROBABILITY_FLOOR)).sum())
    wall_time = time.perf_counter() - start

    tokens = len(positions)
    bits = bits_sum / tokens if has_distribution else None
    return {
        "accuracy": correct / tokens,
        "mean_reward": reward_sum / tokens,
        "bits_per_token": bits,
        "perplexity": 2.0**bits if bits is not None else None,
        "floored_tokens": floored if has_distribution else None,
        "tokens": tokens,
        # The floor keeps the rate finite (and the JSON valid) on a clock too coarse to tick.
        "steps_per_second": tokens / max(wall_time, 1e-9),
        "wall_time_s": wall_time,
    }
