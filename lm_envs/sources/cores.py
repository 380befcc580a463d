"""Batch cores of the source environments, and the memoized sources and streams they read.

:class:`SourceNextTokenCore` is teacher-forced prediction over a stream sampled from a
source; :class:`SourceGenerateCore` is generation scored by the true source. Each serves both
the single environments (:mod:`lm_envs.sources.envs`) and the native batched ones
(:mod:`lm_envs.vector.sources`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence

import numpy as np

from lm_envs.corpora import SPLITS
from lm_envs.data import OBS_DTYPE
from lm_envs.envs.generate import GenerationBatch
from lm_envs.sources.base import TokenSource
from lm_envs.sources.grammar import GrammarSource, grammar_key
from lm_envs.sources.markov import MAX_SYMBOLS, MarkovSource, check_concentration
from lm_envs.validation import check_choice, check_int

REWARDS = ("match", "log_prob")


def markov_source(
    n_symbols: int, order: int, concentration: float, source_seed: int
) -> MarkovSource:
    """Return the (memoized) Markov chain of this configuration."""
    return _markov_source(
        check_int("n_symbols", n_symbols, 2, MAX_SYMBOLS),
        check_int("order", order, 1),
        check_concentration(concentration),
        check_int("source_seed", source_seed, 0),
    )


@functools.lru_cache(maxsize=16)
def _markov_source(
    n_symbols: int, order: int, concentration: float, source_seed: int
) -> MarkovSource:
    return MarkovSource(n_symbols, order, concentration, source_seed)


@functools.lru_cache(maxsize=8)
def _grammar_source(key: str) -> GrammarSource:
    return GrammarSource(
        {symbol: [tuple(rule) for rule in rules] for symbol, rules in json.loads(key)}
    )


def grammar_source(grammar: Mapping[str, Sequence[tuple[str, float]]] | None) -> GrammarSource:
    """Return the (memoized) grammar source of ``grammar`` (the default grammar when None)."""
    return _grammar_source(grammar_key(grammar))


@functools.lru_cache(maxsize=16)
def sample_split(source: TokenSource, source_seed: int, split: str, length: int) -> np.ndarray:
    """Return the read-only token stream of one split: ``length`` ids (or more, to end a sentence)."""
    rng = np.random.default_rng([source_seed, 1 + SPLITS.index(split)])
    tokens = source.sample(length, rng)
    tokens.flags.writeable = False
    return tokens


def load_stream(
    source: TokenSource,
    source_seed: int,
    split: str,
    stream_length: int,
    context_length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the split's stream after ``context_length`` pads, and its episode starts there."""
    check_choice("split", split, SPLITS)
    source_seed = check_int("source_seed", source_seed, 0)
    tokens = sample_split(source, source_seed, split, stream_length)
    stream = np.full(context_length + len(tokens), source.vocab.pad_id, dtype=OBS_DTYPE)
    stream[context_length:] = tokens
    return stream, source.episode_starts(tokens) + context_length


def check_context_length(source: TokenSource, context_length: int) -> int:
    """Return ``context_length`` if its window determines the source's state, else raise."""
    context_length = check_int("context_length", context_length, 1)
    if context_length < source.min_context_length:
        raise ValueError(
            f"context_length={context_length} is too short: a window must show "
            f"{source.min_context_length} tokens to determine the source's next-token "
            f"distribution; use context_length >= {source.min_context_length}."
        )
    return context_length


class SourceNextTokenCore:
    """Batch core of teacher-forced prediction over a stream sampled from a source."""

    def __init__(
        self,
        source: TokenSource,
        num_envs: int,
        source_seed: int,
        context_length: int,
        episode_length: int,
        split: str,
        reward: str,
        stream_length: int,
    ) -> None:
        self.source = source
        self.num_envs = num_envs
        self.context_length = check_context_length(source, context_length)
        self.episode_length = check_int("episode_length", episode_length, 1)
        self.reward = check_choice("reward", reward, REWARDS)
        stream_length = check_int("stream_length", stream_length, 1)
        self.stream, starts = load_stream(
            source, source_seed, split, stream_length, self.context_length
        )
        # Every target of an episode must lie inside the stream.
        self.starts = starts[starts + self.episode_length <= len(self.stream)]
        if len(self.starts) == 0:
            raise ValueError(
                f"stream_length={stream_length} leaves no room for one episode of "
                f"episode_length={self.episode_length}; raise stream_length."
            )
        self.vocab_size = source.vocab_size
        self.action_mask = source.vocab.action_mask()
        self.action_mask.flags.writeable = False
        self._window_view = np.lib.stride_tricks.sliding_window_view(self.stream, context_length)
        self.positions = np.zeros(num_envs, dtype=np.int64)
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.states = np.zeros(num_envs, dtype=np.int64)
        self.last_actions = np.full(num_envs, -1, dtype=np.int64)
        self.last_targets = np.full(num_envs, -1, dtype=np.int64)

    def reset_rows(
        self, rows: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> dict[str, np.ndarray]:
        for row, rng in zip(rows, rngs, strict=True):
            self.positions[row] = self.starts[rng.integers(len(self.starts))]
        self.steps[rows] = 0
        self.last_actions[rows] = -1
        windows = self._window_view[self.positions[rows] - self.context_length]
        self.states[rows] = self.source.states_from_contexts(windows)
        return {}

    def step_rows(self, actions: np.ndarray, active: np.ndarray):
        targets = self.stream[self.positions].astype(np.int64)
        if self.reward == "match":
            rewards = (actions == targets).astype(np.float64)
        else:
            rewards = self.source.log_prob(self.states, actions)

        # The context advances with the true token, whatever the action.
        advanced = self.source.next_states[self.states, targets]
        self.states = np.where(active, advanced, self.states)
        self.positions += active
        self.steps += active
        eos_id = self.source.vocab.eos_id
        if eos_id is None:
            terminated = np.zeros(self.num_envs, dtype=bool)
        else:
            terminated = active & (targets == eos_id)
        truncated = active & ~terminated & (self.steps >= self.episode_length)
        rewards[~active] = 0.0
        self.last_actions = np.where(active, actions, self.last_actions)
        self.last_targets = np.where(active, targets, self.last_targets)
        return rewards, terminated, truncated, {"target": targets, "_target": active.copy()}

    def observe(self) -> np.ndarray:
        return self._window_view[self.positions - self.context_length]

    def render_row(self, row: int) -> str:
        vocab = self.source.vocab
        if self.last_actions[row] < 0:
            window = self._window_view[self.positions[row] - self.context_length]
            return vocab.decode(window[window != vocab.pad_id], skip_special_tokens=False)
        window = self._window_view[self.positions[row] - 1 - self.context_length]
        context = vocab.decode(window[window != vocab.pad_id], skip_special_tokens=False)
        action, target = int(self.last_actions[row]), int(self.last_targets[row])
        verdict = "match" if action == target else f"miss, target {vocab.symbols[target]!r}"
        return f"{context}{vocab.separator}[[{vocab.symbols[action]}]] ({verdict})"


class SourceGenerateCore:
    """Batch core of generation scored by the true source, from prompts of its stream."""

    def __init__(
        self,
        source: TokenSource,
        num_envs: int,
        source_seed: int,
        context_length: int,
        prompt_length: int,
        max_new_tokens: int,
        split: str,
        stream_length: int,
    ) -> None:
        self.source = source
        self.num_envs = num_envs
        self.context_length = check_context_length(source, context_length)
        self.prompt_length = check_int("prompt_length", prompt_length, 0, self.context_length)
        if self.prompt_length < source.min_prompt_length:
            raise ValueError(
                f"prompt_length={prompt_length} is too short: the source's state needs the "
                f"last {source.min_prompt_length} tokens; use prompt_length >= "
                f"{source.min_prompt_length}."
            )
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
        stream_length = check_int("stream_length", stream_length, 1)
        self.stream, self.starts = load_stream(
            source, source_seed, split, stream_length, self.context_length
        )
        self.vocab_size = source.vocab_size
        self.action_mask = source.vocab.action_mask()
        self.action_mask.flags.writeable = False
        self.batch = GenerationBatch(
            num_envs,
            self.context_length,
            self.max_new_tokens,
            source.vocab.pad_id,
            source.vocab.eos_id,
        )
        self.best_returns = source.best_returns(self.max_new_tokens)
        self.states = np.zeros(num_envs, dtype=np.int64)
        self.last_log_probs = np.zeros(num_envs, dtype=np.float64)

    def reset_rows(
        self, rows: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> dict[str, np.ndarray]:
        for row, rng in zip(rows, rngs, strict=True):
            end = int(self.starts[rng.integers(len(self.starts))])
            self.batch.start(row, self.stream[end - self.prompt_length : end])
        self.states[rows] = self.source.states_from_contexts(self.batch.windows[rows])
        return {"optimal_return": self.best_returns[self.states[rows]]}

    def step_rows(self, actions: np.ndarray, active: np.ndarray):
        log_probs = self.source.log_prob(self.states, actions)
        advanced = self.source.next_states[self.states, actions]
        self.states = np.where(active, advanced, self.states)
        terminated, truncated = self.batch.append(actions, active)
        rewards = np.where(active, log_probs, 0.0)
        self.last_log_probs = np.where(active, log_probs, self.last_log_probs)
        infos = {"log_prob": log_probs, "_log_prob": active.copy()}
        infos.update(self.batch.end_infos(terminated | truncated, self.source.vocab.decode))
        return rewards, terminated, truncated, infos

    def observe(self) -> np.ndarray:
        return self.batch.windows.copy()

    def render_row(self, row: int) -> str:
        vocab = self.source.vocab
        return self.batch.render_row(
            row, vocab.decode, self.last_log_probs[row], separator=vocab.separator
        )
