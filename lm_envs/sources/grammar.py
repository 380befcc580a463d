"""A probabilistic context-free grammar with a finite language, and its exact optimum.

The source emits independent sentences of the grammar, each followed by ``<eos>``. Because
the language is finite, every sentence and its probability can be enumerated, and the
enumeration gives the exact next-token conditionals as a prefix tree (trie) of sentences.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from lm_envs.sources.base import (
    EOS_TOKEN,
    PAD_TOKEN,
    SourceOptimum,
    SourceVocabulary,
    TokenSource,
)

# Rules: nonterminal -> alternatives (right-hand side as space-separated symbols, probability).
# Symbols that are not keys are words. Number agreement between the subject and its verb must
# be carried across an adjective or a relative clause, and "the" does not reveal the number.
DEFAULT_GRAMMAR: dict[str, list[tuple[str, float]]] = {
    "S": [("NP_SG VP_SG", 0.55), ("NP_PL VP_PL", 0.45)],
    "NP_SG": [("DET_SG N_SG", 0.5), ("DET_SG ADJ N_SG", 0.3), ("DET_SG N_SG REL_SG", 0.2)],
    "NP_PL": [("DET_PL N_PL", 0.5), ("DET_PL ADJ N_PL", 0.3), ("DET_PL N_PL REL_PL", 0.2)],
    "REL_SG": [("that VI_SG", 0.4), ("that VT_SG OBJ", 0.6)],
    "REL_PL": [("that VI_PL", 0.4), ("that VT_PL OBJ", 0.6)],
    "VP_SG": [("VI_SG", 0.35), ("VT_SG OBJ", 0.45), ("VI_SG PP", 0.2)],
    "VP_PL": [("VI_PL", 0.35), ("VT_PL OBJ", 0.45), ("VI_PL PP", 0.2)],
    "OBJ": [("DET_SG N_SG", 0.6), ("DET_PL N_PL", 0.4)],
    "PP": [("P OBJ", 1.0)],
    "DET_SG": [("the", 0.7), ("a", 0.3)],
    "DET_PL": [("the", 0.6), ("some", 0.4)],
    "N_SG": [("cat", 0.5), ("dog", 0.3), ("bird", 0.2)],
    "N_PL": [("cats", 0.5), ("dogs", 0.3), ("birds", 0.2)],
    "ADJ": [("small", 0.6), ("old", 0.4)],
    "VI_SG": [("sleeps", 0.6), ("runs", 0.4)],
    "VI_PL": [("sleep", 0.6), ("run", 0.4)],
    "VT_SG": [("sees", 0.7), ("chases", 0.3)],
    "VT_PL": [("see", 0.7), ("chase", 0.3)],
    "P": [("near", 0.5), ("with", 0.5)],
}
START_SYMBOL = "S"
MAX_SENTENCES = 200_000
MAX_TRIE_NODES = 500_000

Rules = dict[str, list[tuple[tuple[str, ...], float]]]


def parse_rules(grammar: Mapping[str, Sequence[tuple[str, float]]], start: str) -> Rules:
    """Check ``grammar`` and return it with each right-hand side split into symbols.

    Raises:
        TypeError: the grammar is not a mapping of alternatives ``(rhs, probability)``.
        ValueError: a probability is not positive, a nonterminal's probabilities do not sum
            to 1, the start symbol has no rules, or a word is ``<pad>`` or ``<eos>``.
    """
    if not isinstance(grammar, Mapping):
        raise TypeError(
            f"grammar must be a mapping nonterminal -> [(rhs, probability), ...], got "
            f"{type(grammar).__name__}."
        )
    rules: Rules = {}
    for symbol, alternatives in grammar.items():
        if not isinstance(symbol, str) or not symbol or symbol.split() != [symbol]:
            raise ValueError(f"nonterminal names must be non-empty words, got {symbol!r}.")
        if isinstance(alternatives, (str, bytes)) or not isinstance(alternatives, Sequence):
            raise TypeError(
                f"rules of {symbol!r} must be a list of (rhs, probability) pairs, got "
                f"{alternatives!r}."
            )
        parsed = []
        for alternative in alternatives:
            if (
                not isinstance(alternative, (tuple, list))
                or len(alternative) != 2
                or not isinstance(alternative[0], str)
                or isinstance(alternative[1], bool)
                or not isinstance(alternative[1], (int, float))
            ):
                raise TypeError(
                    f"each rule of {symbol!r} must be a (rhs string, probability) pair, got "
                    f"{alternative!r}."
                )
            rhs, probability = alternative
            if not math.isfinite(probability) or probability <= 0:
                raise ValueError(
                    f"rule {symbol} -> {rhs!r} has probability {probability!r}; use a number "
                    "> 0, or drop the rule."
                )
            parsed.append((tuple(rhs.split()), float(probability)))
        total = sum(p for _, p in parsed)
        if not parsed or abs(total - 1.0) > 1e-9:
            raise ValueError(
                f"rules of {symbol!r} have probabilities summing to {total!r}; they must sum to 1."
            )
        rules[symbol] = parsed
    if start not in rules:
        raise ValueError(f"grammar has no rules for the start symbol {start!r}.")
    for alternatives in rules.values():
        for rhs, _ in alternatives:
            for word in rhs:
                if word in (PAD_TOKEN, EOS_TOKEN):
                    raise ValueError(f"{word!r} is a special token and cannot be a word.")
    return rules


def enumerate_language(rules: Rules, start: str) -> dict[tuple[str, ...], float]:
    """Return every sentence derivable from ``start`` with its probability.

    The probabilities of different derivations of the same sentence are added.

    Raises:
        ValueError: the grammar is recursive, or it has more than ``MAX_SENTENCES`` sentences.
    """
    languages: dict[str, dict[tuple[str, ...], float]] = {}
    expanding: list[str] = []

    def check_size(language: dict) -> None:
        if len(language) > MAX_SENTENCES:
            raise ValueError(
                f"the grammar derives more than {MAX_SENTENCES} distinct word sequences; "
                "use fewer words or shorter rules."
            )

    def language_of(symbol: str) -> dict[tuple[str, ...], float]:
        if symbol not in rules:
            return {(symbol,): 1.0}
        if symbol in languages:
            return languages[symbol]
        if symbol in expanding:
            cycle = " -> ".join([*expanding[expanding.index(symbol) :], symbol])
            raise ValueError(
                f"the grammar is recursive ({cycle}); only grammars with a finite language "
                "can be enumerated exactly."
            )
        expanding.append(symbol)
        language: dict[tuple[str, ...], float] = {}
        for rhs, probability in rules[symbol]:
            partial: dict[tuple[str, ...], float] = {(): probability}
            for part in rhs:
                combined: dict[tuple[str, ...], float] = {}
                for prefix, p in partial.items():
                    for suffix, q in language_of(part).items():
                        combined[prefix + suffix] = combined.get(prefix + suffix, 0.0) + p * q
                check_size(combined)
                partial = combined
            for sentence, p in partial.items():
                language[sentence] = language.get(sentence, 0.0) + p
            check_size(language)
        expanding.pop()
        languages[symbol] = language
        return language

    return language_of(start)


def grammar_key(grammar: Mapping | None) -> str:
    """Return a JSON text that identifies ``grammar`` (``None`` means the default grammar)."""
    grammar = DEFAULT_GRAMMAR if grammar is None else grammar
    try:
        return json.dumps(
            [[symbol, [list(rule) for rule in rules]] for symbol, rules in grammar.items()],
            ensure_ascii=False,
        )
    except (AttributeError, TypeError) as error:
        raise TypeError(
            f"grammar must be a mapping nonterminal -> [(rhs, probability), ...]: {error}"
        ) from None


class GrammarSource(TokenSource):
    """Independent sentences of a finite probabilistic context-free grammar, each ended by ``<eos>``.

    Token ids: 0 is ``<pad>``, 1 is ``<eos>``, then the words in order of first appearance in
    the rules. The states are the nodes of the trie of all sentences (node 0 is the empty
    prefix), plus one dead state for prefixes no sentence has. ``<eos>`` returns to the empty
    prefix from any state.

    The optimum is exact by enumeration. The stream is a renewal process, so a per-token
    average over it is (expected sum over one sentence) / (expected tokens per sentence,
    ``E[len] + 1`` with the ``<eos>``):

    * Bayes-optimal accuracy = ``sum_h max_a P(h a) / (E[len] + 1)`` over all prefixes ``h``
      of a sentence, where ``P(h a)`` is the probability that a sentence starts with ``h``
      then ``a``, and ``a = <eos>`` means the sentence is exactly ``h``;
    * entropy rate = ``H(sentence) / (E[len] + 1)`` nats per token, because the
      conditional entropies of the tokens of one sentence add up to the sentence's entropy.

    A predictor reaches both when it reads the current sentence prefix, which a window of
    ``max_length`` tokens always shows (the prefix starts after the last ``<eos>`` or
    ``<pad>``).

    Args:
        grammar: rules as in :data:`DEFAULT_GRAMMAR` (the default when None). Words may be
            any text without spaces (any script, emoji).
        start: the start symbol.
        separator: text placed between decoded words.
    """

    def __init__(
        self,
        grammar: Mapping[str, Sequence[tuple[str, float]]] | None = None,
        start: str = START_SYMBOL,
        separator: str = " ",
    ) -> None:
        rules = parse_rules(DEFAULT_GRAMMAR if grammar is None else grammar, start)
        language = enumerate_language(rules, start)

        words: dict[str, int] = {}
        for alternatives in rules.values():
            for rhs, _ in alternatives:
                for symbol in rhs:
                    if symbol not in rules and symbol not in words:
                        words[symbol] = len(words) + 2
        self.vocab = SourceVocabulary((PAD_TOKEN, EOS_TOKEN, *words), eos_id=1, separator=separator)
        self.sentences = [np.array([words[w] for w in s], dtype=np.int64) for s in language]
        self.sentence_probs = np.array(list(language.values()), dtype=np.float64)
        self.sentence_probs /= self.sentence_probs.sum()
        self.max_length = max(len(s) for s in self.sentences)

        self._build_trie()
        self.start_state = 0
        self.memory = self.max_length + 1
        self.min_context_length = max(self.max_length, 1)
        self.min_prompt_length = 0

        lengths = np.array([len(s) + 1 for s in self.sentences], dtype=np.float64)
        self.mean_tokens = float(self.sentence_probs @ lengths)
        node_best = self.node_mass * self.probabilities[: len(self.node_mass)].max(axis=1)
        entropy = float(-(self.sentence_probs @ np.log(self.sentence_probs)))
        self.optimum = SourceOptimum(
            accuracy=float(node_best.sum() / self.mean_tokens),
            cross_entropy_nats=entropy / self.mean_tokens,
        )

    def _build_trie(self) -> None:
        children: dict[tuple[int, int], int] = {}
        mass = [0.0]
        end_mass = [0.0]
        for sentence, probability in zip(self.sentences, self.sentence_probs, strict=True):
            node = 0
            mass[0] += probability
            for token in sentence.tolist():
                child = children.get((node, token))
                if child is None:
                    child = len(mass)
                    if child >= MAX_TRIE_NODES:
                        raise ValueError(
                            f"the grammar's sentences have more than {MAX_TRIE_NODES} distinct "
                            "prefixes; use fewer words or shorter rules."
                        )
                    children[(node, token)] = child
                    mass.append(0.0)
                    end_mass.append(0.0)
                node = child
                mass[node] += probability
            end_mass[node] += probability

        num_nodes = len(mass)
        dead = num_nodes
        vocab_size = self.vocab.vocab_size
        eos = self.vocab.eos_id
        self.node_mass = np.array(mass)
        next_states = np.full((num_nodes + 1, vocab_size), dead, dtype=np.int64)
        next_states[:, eos] = 0
        next_states[0, self.vocab.pad_id] = 0  # left padding before the first sentence
        probabilities = np.zeros((num_nodes + 1, vocab_size), dtype=np.float64)
        probabilities[:num_nodes, eos] = np.array(end_mass) / self.node_mass
        if children:
            pairs = np.array(list(children), dtype=np.int64)
            child_ids = np.array(list(children.values()), dtype=np.int64)
            next_states[pairs[:, 0], pairs[:, 1]] = child_ids
            probabilities[pairs[:, 0], pairs[:, 1]] = (
                self.node_mass[child_ids] / self.node_mass[pairs[:, 0]]
            )
        self.next_states = next_states
        self.probabilities = probabilities
        self.dead_state = dead

    def sample(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Return whole sentences, each followed by ``<eos>``, totalling at least ``length`` ids."""
        eos = np.array([self.vocab.eos_id], dtype=np.int64)
        pieces: list[np.ndarray] = []
        total = 0
        while total < length:
            count = int(math.ceil((length - total) / self.mean_tokens * 1.1)) + 1
            for index in rng.choice(len(self.sentences), size=count, p=self.sentence_probs):
                pieces.append(self.sentences[index])
                pieces.append(eos)
                total += len(self.sentences[index]) + 1
                if total >= length:
                    break
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)

    def episode_starts(self, tokens: np.ndarray) -> np.ndarray:
        """Return the first position of every sentence in ``tokens``."""
        after_eos = np.flatnonzero(tokens == self.vocab.eos_id) + 1
        starts = np.concatenate([[0], after_eos]).astype(np.int64)
        return starts[starts < len(tokens)]
