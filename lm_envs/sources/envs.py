"""Environments over synthetic sources whose optimum is known exactly.

Teacher-forced ids (``MarkovNextToken-v0``, ``GrammarNextToken-v0``) read a stream sampled
from the source. Generation ids (``MarkovGenerate-v0``, ``GrammarGenerate-v0``) let the agent
write, and reward each token with its log-probability under the true source.
``env.unwrapped.source.optimum`` contains the Bayes-optimal accuracy and cross-entropy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lm_envs.envs.batch import BatchCoreEnv
from lm_envs.sources.base import TokenSource
from lm_envs.sources.cores import (
    SourceGenerateCore,
    SourceNextTokenCore,
    grammar_source,
    markov_source,
)
from lm_envs.validation import check_choice

GrammarRules = Mapping[str, Sequence[tuple[str, float]]]


class SourceEnv(BatchCoreEnv):
    """Shared constructor of the source environments: build the source, then the batch core."""

    core_class: type = SourceNextTokenCore

    @staticmethod
    def build_source(arguments: dict[str, Any]) -> TokenSource:
        """Return the source named by ``arguments``, removing the arguments it used."""
        raise NotImplementedError

    @classmethod
    def build_core(cls, num_envs: int, arguments: dict[str, Any]):
        """Return the batch core of ``num_envs`` rows for the environment ``arguments``."""
        arguments = dict(arguments)
        source = cls.build_source(arguments)
        return cls.core_class(source, num_envs, **arguments)

    def _build(self, arguments: dict[str, Any], render_mode: str | None) -> None:
        if render_mode is not None:
            check_choice("render_mode", render_mode, tuple(self.metadata["render_modes"]))
        self._attach_core(self.build_core(1, arguments), render_mode)
        self.source = self.core.source
        self.tokenizer = self.source.vocab


def _markov_from(arguments: dict[str, Any]) -> TokenSource:
    return markov_source(
        arguments.pop("n_symbols"),
        arguments.pop("order"),
        arguments.pop("concentration"),
        arguments["source_seed"],
    )


def _grammar_from(arguments: dict[str, Any]) -> TokenSource:
    return grammar_source(arguments.pop("grammar"))


class MarkovNextTokenEnv(SourceEnv):
    """Teacher-forced next-token prediction over a stream from a random order-k Markov chain.

    ## Description

    A seeded random Markov chain of order ``order`` over ``n_symbols`` symbols (see
    :class:`~lm_envs.sources.markov.MarkovSource`) produces one long stream per split. The
    agent reads the last ``context_length`` tokens and names the next one. The context then
    advances with the true token, so each step is a contextual-bandit decision. The
    Bayes-optimal accuracy and entropy rate of the chain are exact:
    ``env.unwrapped.source.optimum`` (``accuracy``, ``cross_entropy_nats``,
    ``bits_per_token``, ``perplexity``).

    ## Action space

    ``Discrete(n_symbols + 1)``: id 0 is ``<pad>`` and never valid, ids 1 .. n are the
    symbols. :meth:`action_masks` and ``info["action_mask"]`` mark the valid ids.

    ## Observation space

    ``Box(0, n_symbols, shape=(context_length,), dtype=int32)``: the tokens before the next
    one, left-padded with ``<pad>`` only within ``context_length`` tokens of the stream start.

    ## Rewards

    * ``reward="match"``: 1 if the action is the true next token, else 0.
    * ``reward="log_prob"``: log-probability (nats) of the action under the true chain,
      clipped below at -30 (``<pad>`` has probability 0).

    ## Starting state

    A uniformly drawn stream position with at least ``order`` tokens before it. The stream
    starts in a stationary state, so every step follows the chain's stationary law.

    ## Episode end

    * Termination: never (the chain has no end of text).
    * Truncation: ``episode_length`` steps were taken.

    ``info["target"]`` is the true token of the step just taken.

    ## Arguments

    * ``n_symbols`` (8), ``order`` (2), ``concentration`` (0.5, the Dirichlet parameter of
      each transition row), ``source_seed`` (0, picks the chain and its streams).
    * ``context_length`` (16, at least ``order``), ``episode_length`` (128), ``split``
      (``"train"``, ``"validation"``, ``"test"``: independent streams), ``reward``,
      ``stream_length`` (100000 tokens per split), ``render_mode`` (``None`` or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    reward_summary = (
        "match: 1 if the action is the true next token, else 0; "
        "log_prob: its log-prob (nats) under the true chain"
    )
    episode_end_summary = "terminated: never; truncated: after episode_length steps"
    build_source = staticmethod(_markov_from)

    def __init__(
        self,
        n_symbols: int = 8,
        order: int = 2,
        concentration: float = 0.5,
        source_seed: int = 0,
        context_length: int = 16,
        episode_length: int = 128,
        split: str = "train",
        reward: str = "match",
        stream_length: int = 100_000,
        render_mode: str | None = None,
    ) -> None:
        arguments = {
            "n_symbols": n_symbols,
            "order": order,
            "concentration": concentration,
            "source_seed": source_seed,
            "context_length": context_length,
            "episode_length": episode_length,
            "split": split,
            "reward": reward,
            "stream_length": stream_length,
        }
        self._build(arguments, render_mode)


class MarkovGenerateEnv(SourceEnv):
    """Free-running generation scored by the true probabilities of a random Markov chain.

    ## Description

    The chain of :class:`MarkovNextTokenEnv` scores what the agent writes. An episode starts
    from a prompt taken from the chain's stream. The agent then appends one token per step and
    the context advances with the agent's token. Transitions are deterministic given the
    token, so the best return from a prompt is computed exactly by backward induction and
    given as ``info["optimal_return"]`` at reset. The regret of an episode is that value
    minus its return.

    ## Action space

    ``Discrete(n_symbols + 1)``: id 0 is ``<pad>`` and never valid, ids 1 .. n are symbols.

    ## Observation space

    ``Box(0, n_symbols, shape=(context_length,), dtype=int32)``: the last ``context_length``
    tokens of (prompt, generated tokens), left-padded with ``<pad>``.

    ## Rewards

    ``log P(action | last order tokens)`` in nats under the true chain, clipped below at -30.
    ``info["log_prob"]`` repeats it.

    ## Starting state

    The ``prompt_length`` tokens before a uniformly drawn position of the split's stream.

    ## Episode end

    * Termination: never (the chain has no end of text).
    * Truncation: ``max_new_tokens`` tokens were generated. ``info["continuation"]`` (the
      generated symbols as text), ``info["distinct_1"]`` and ``info["distinct_2"]`` are set.

    ## Arguments

    * ``n_symbols`` (8), ``order`` (2), ``concentration`` (0.5), ``source_seed`` (0).
    * ``context_length`` (16), ``prompt_length`` (16, from ``order`` to ``context_length``),
      ``max_new_tokens`` (32), ``split`` (``"train"``), ``stream_length`` (100000),
      ``render_mode`` (``None`` or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    core_class = SourceGenerateCore
    reward_summary = "log-prob (nats) of the token under the true Markov chain"
    episode_end_summary = "terminated: never; truncated: after max_new_tokens tokens"
    build_source = staticmethod(_markov_from)

    def __init__(
        self,
        n_symbols: int = 8,
        order: int = 2,
        concentration: float = 0.5,
        source_seed: int = 0,
        context_length: int = 16,
        prompt_length: int = 16,
        max_new_tokens: int = 32,
        split: str = "train",
        stream_length: int = 100_000,
        render_mode: str | None = None,
    ) -> None:
        arguments = {
            "n_symbols": n_symbols,
            "order": order,
            "concentration": concentration,
            "source_seed": source_seed,
            "context_length": context_length,
            "prompt_length": prompt_length,
            "max_new_tokens": max_new_tokens,
            "split": split,
            "stream_length": stream_length,
        }
        self._build(arguments, render_mode)


class GrammarNextTokenEnv(SourceEnv):
    """Teacher-forced next-token prediction over sentences of a probabilistic grammar.

    ## Description

    A probabilistic context-free grammar with a finite language (see
    :class:`~lm_envs.sources.grammar.GrammarSource`; the default is a small English fragment
    with subject-verb number agreement across relative clauses) emits independent sentences,
    each followed by ``<eos>``. Each episode is one sentence read token by token; the context
    advances with the true token. The Bayes-optimal accuracy and entropy rate per token, found
    by enumerating the language, are in ``env.unwrapped.source.optimum``.

    ## Action space

    ``Discrete(V)``: id 0 is ``<pad>`` (never valid), id 1 is ``<eos>``, then the words.

    ## Observation space

    ``Box(0, V - 1, shape=(context_length,), dtype=int32)``: the tokens before the next one
    (earlier sentences included), left-padded with ``<pad>`` at the stream start.

    ## Rewards

    * ``reward="match"``: 1 if the action is the true next token, else 0.
    * ``reward="log_prob"``: log-probability (nats) of the action under the true grammar
      given the sentence so far, clipped below at -30.

    ## Starting state

    The first word of a uniformly drawn sentence of the split's stream.

    ## Episode end

    * Termination: the true next token was ``<eos>``, the sentence ended.
    * Truncation: ``episode_length`` steps were taken (longer than any sentence by default).

    ``info["target"]`` is the true token of the step just taken.

    ## Arguments

    * ``grammar`` (``None`` for the default, or a mapping ``nonterminal -> [(rhs, prob)]``
      with start symbol ``"S"``; it must not be recursive).
    * ``source_seed`` (0, picks the streams), ``context_length`` (16, at least the longest
      sentence), ``episode_length`` (64), ``split``, ``reward``, ``stream_length`` (100000),
      ``render_mode`` (``None`` or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    reward_summary = (
        "match: 1 if the action is the true next token, else 0; "
        "log_prob: its log-prob (nats) under the true grammar"
    )
    episode_end_summary = (
        "terminated: the sentence's <eos> reached; truncated: after episode_length steps"
    )
    build_source = staticmethod(_grammar_from)

    def __init__(
        self,
        grammar: GrammarRules | None = None,
        source_seed: int = 0,
        context_length: int = 16,
        episode_length: int = 64,
        split: str = "train",
        reward: str = "match",
        stream_length: int = 100_000,
        render_mode: str | None = None,
    ) -> None:
        arguments = {
            "grammar": grammar,
            "source_seed": source_seed,
            "context_length": context_length,
            "episode_length": episode_length,
            "split": split,
            "reward": reward,
            "stream_length": stream_length,
        }
        self._build(arguments, render_mode)


class GrammarGenerateEnv(SourceEnv):
    """Free-running generation of one sentence, scored by the true grammar.

    ## Description

    The agent writes a sentence after a prompt of earlier sentences from the grammar's stream
    (see :class:`GrammarNextTokenEnv`). Each token is rewarded with its log-probability under
    the grammar given the words written so far. A word that no sentence continues with gets
    probability 0, and every later token in that episode does too. The best return (the
    log-probability of the most probable sentence that fits in ``max_new_tokens``, or of the
    most probable prefix of that length when none fits) is ``info["optimal_return"]`` at reset.

    ## Action space

    ``Discrete(V)``: id 0 is ``<pad>`` (never valid), id 1 is ``<eos>`` (ends the sentence),
    then the words.

    ## Observation space

    ``Box(0, V - 1, shape=(context_length,), dtype=int32)``: the last ``context_length``
    tokens of (prompt, generated tokens), left-padded with ``<pad>``.

    ## Rewards

    ``log P(action | sentence so far)`` in nats, clipped below at -30.
    ``info["log_prob"]`` repeats it.

    ## Starting state

    The ``prompt_length`` tokens before a uniformly drawn sentence start of the split's
    stream. They end with ``<eos>`` or are all padding, so generation starts a new sentence.

    ## Episode end

    * Termination: the agent emitted ``<eos>``.
    * Truncation: ``max_new_tokens`` tokens were generated.

    At the end ``info["continuation"]`` (the words written), ``info["distinct_1"]`` and
    ``info["distinct_2"]`` are set.

    ## Arguments

    * ``grammar`` (``None`` for the default), ``source_seed`` (0).
    * ``context_length`` (16), ``prompt_length`` (16, at most ``context_length``),
      ``max_new_tokens`` (16), ``split`` (``"train"``), ``stream_length`` (100000),
      ``render_mode`` (``None`` or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    core_class = SourceGenerateCore
    reward_summary = (
        "log-prob (nats) of the token under the true grammar, given the sentence so far"
    )
    episode_end_summary = (
        "terminated: the agent emits <eos>; truncated: after max_new_tokens tokens"
    )
    build_source = staticmethod(_grammar_from)

    def __init__(
        self,
        grammar: GrammarRules | None = None,
        source_seed: int = 0,
        context_length: int = 16,
        prompt_length: int = 16,
        max_new_tokens: int = 16,
        split: str = "train",
        stream_length: int = 100_000,
        render_mode: str | None = None,
    ) -> None:
        arguments = {
            "grammar": grammar,
            "source_seed": source_seed,
            "context_length": context_length,
            "prompt_length": prompt_length,
            "max_new_tokens": max_new_tokens,
            "split": split,
            "stream_length": stream_length,
        }
        self._build(arguments, render_mode)
