"""The common form of synthetic token sources: a finite state machine with exact conditionals.

A source is described by two tables over its states ``s`` and token ids ``a``:

* ``next_states[s, a]``: the state after token ``a`` is appended in state ``s``;
* ``probabilities[s, a]``: the true probability that the next token is ``a`` in state ``s``.
  A row is all zeros in states the source itself never reaches (after ``<pad>`` inside a
  text, after a word a grammar cannot continue with).

The state of any context window is found by running the machine over the window's last
``memory`` tokens from ``start_state``. That is exact once the window has at least
``min_context_length`` tokens, so a policy that reads only the window can reach the
Bayes-optimal accuracy and cross-entropy stored in ``optimum``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lm_envs.reference import clip_log_prob

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"


@dataclass(frozen=True)
class SourceVocabulary:
    """Token names of a source, indexed by id: id 0 is ``<pad>``, then ``<eos>`` if used."""

    symbols: tuple[str, ...]
    eos_id: int | None
    separator: str = ""
    pad_id: int = 0

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        """Return the names of ``ids`` joined by :attr:`separator`, skipping specials by default."""
        special = {self.pad_id, self.eos_id}
        names = [
            self.symbols[int(i)] for i in ids if not (skip_special_tokens and int(i) in special)
        ]
        return self.separator.join(names)

    def action_mask(self) -> np.ndarray:
        """Return a bool array of size V: every id but ``<pad>`` is a valid action."""
        mask = np.ones(self.vocab_size, dtype=bool)
        mask[self.pad_id] = False
        return mask


@dataclass(frozen=True)
class SourceOptimum:
    """The Bayes-optimal next-token scores of a source, per token of its stream.

    ``accuracy`` is the expected top-1 accuracy of predicting the most probable next token and
    ``cross_entropy_nats`` the expected ``-log p(next token)`` of the true model (the entropy
    rate). No predictor of the same stream does better in expectation.
    """

    accuracy: float
    cross_entropy_nats: float

    @property
    def bits_per_token(self) -> float:
        return self.cross_entropy_nats / math.log(2.0)

    @property
    def perplexity(self) -> float:
        return math.exp(self.cross_entropy_nats)


class TokenSource:
    """A synthetic token process with exact conditionals; see the module docstring.

    Subclasses set the attributes below in ``__init__`` and implement :meth:`sample` and
    :meth:`episode_starts`.

    Attributes:
        vocab: token names and special ids.
        next_states: int64 (num_states, V) state transitions.
        probabilities: float64 (num_states, V) true next-token distributions.
        start_state: the state of an empty context.
        memory: number of trailing window tokens that determine the state.
        min_context_length: the shortest window from which the state is always exact.
        min_prompt_length: the shortest generation prompt that determines the state.
        optimum: Bayes-optimal accuracy and cross-entropy.
    """

    vocab: SourceVocabulary
    next_states: np.ndarray
    probabilities: np.ndarray
    start_state: int
    memory: int
    min_context_length: int
    min_prompt_length: int
    optimum: SourceOptimum

    @property
    def vocab_size(self) -> int:
        return self.vocab.vocab_size

    def states_from_contexts(self, contexts: np.ndarray) -> np.ndarray:
        """Return the state (B,) reached after each context window (B, L)."""
        contexts = np.asarray(contexts, dtype=np.int64)
        if contexts.ndim != 2:
            raise ValueError(f"contexts must have shape (batch, length), got {contexts.shape}.")
        states = np.full(contexts.shape[0], self.start_state, dtype=np.int64)
        for column in range(max(contexts.shape[1] - self.memory, 0), contexts.shape[1]):
            states = self.next_states[states, contexts[:, column]]
        return states

    def distribution(self, contexts: np.ndarray) -> np.ndarray:
        """Return the true next-token distributions (B, V) after each context window (B, L)."""
        return self.probabilities[self.states_from_contexts(contexts)]

    def log_prob(self, states: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Return log p(token | state) in nats, clipped below at -30 like every reward."""
        with np.errstate(divide="ignore"):
            return clip_log_prob(np.log(self.probabilities[states, tokens]))

    def best_returns(self, max_new_tokens: int) -> np.ndarray:
        """Return, per state, the highest total clipped log-probability of a generation.

        Backward induction over ``max_new_tokens`` steps: the value of a state is the best
        valid token's log-probability plus the value of the state it leads to, where emitting
        ``<eos>`` ends the episode. Transitions are deterministic given the token, so this is
        the exact optimum of the generation environments.
        """
        with np.errstate(divide="ignore"):
            rewards = clip_log_prob(np.log(self.probabilities))
        rewards[:, ~self.vocab.action_mask()] = -np.inf
        values = np.zeros(len(self.probabilities), dtype=np.float64)
        for _ in range(max_new_tokens):
            continuation = values[self.next_states]
            if self.vocab.eos_id is not None:
                continuation[:, self.vocab.eos_id] = 0.0
            values = (rewards + continuation).max(axis=1)
        return values

    def sample(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Return a token stream of at least ``length`` ids drawn from the source."""
        raise NotImplementedError

    def episode_starts(self, tokens: np.ndarray) -> np.ndarray:
        """Return positions of ``tokens`` where an episode may start."""
        raise NotImplementedError
