"""A seeded random Markov chain of order k over a small alphabet, with its exact optimum."""

from __future__ import annotations

import bisect
import string

import numpy as np

from lm_envs.sources.base import PAD_TOKEN, SourceOptimum, SourceVocabulary, TokenSource
from lm_envs.validation import check_int

# Transition probabilities are floored here before renormalizing, so that every order-k state
# reaches every other one and the stationary distribution is unique (log 1e-9 = -20.7 nats).
MIN_TRANSITION_PROB = 1e-9
# Table entries ((order + 1) * n_symbols**order states x vocabulary) allowed, ~100 MB at most.
MAX_TABLE_ENTRIES = 2**22
# Above this many order-k states the stationary distribution is found by power iteration.
MAX_DENSE_STATES = 2048
MAX_SYMBOLS = 4096
_SYMBOL_NAMES = string.ascii_lowercase + string.ascii_uppercase + string.digits


def symbol_names(n_symbols: int) -> tuple[str, ...]:
    """Return display names: letters and digits first, then ``<s62>``, ``<s63>``, ..."""
    return tuple(
        _SYMBOL_NAMES[i] if i < len(_SYMBOL_NAMES) else f"<s{i}>" for i in range(n_symbols)
    )


def check_concentration(value: object) -> float:
    """Return the Dirichlet ``concentration`` as a float, or raise naming the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"concentration must be a number, got {type(value).__name__} ({value!r}).")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"concentration must be a finite number > 0, got {value!r}.")
    return float(value)


def stationary_distribution(transitions: np.ndarray, n_symbols: int) -> np.ndarray:
    """Return the stationary distribution of the order-k state chain.

    State ``s`` packs the last k symbols, oldest most significant; after symbol ``a`` the state
    is ``(s mod n**(k-1)) * n + a``. ``transitions`` is (n**k, n) with strictly positive rows,
    so the chain is irreducible and aperiodic and the distribution is unique.
    """
    num_states = transitions.shape[0]
    suffixes = num_states // n_symbols
    if num_states <= MAX_DENSE_STATES:
        # Solve pi (T - I) = 0 with sum(pi) = 1 as one dense linear system.
        matrix = np.zeros((num_states, num_states))
        sources = np.repeat(np.arange(num_states), n_symbols)
        targets = (np.arange(num_states) % suffixes)[:, None] * n_symbols + np.arange(n_symbols)
        np.add.at(matrix, (sources, targets.reshape(-1)), transitions.reshape(-1))
        system = matrix.T - np.eye(num_states)
        system[-1] = 1.0
        rhs = np.zeros(num_states)
        rhs[-1] = 1.0
        pi = np.linalg.solve(system, rhs)
    else:
        pi = np.full(num_states, 1.0 / num_states)
        for _ in range(200_000):
            mass = (pi[:, None] * transitions).reshape(n_symbols, suffixes, n_symbols)
            updated = mass.sum(axis=0).reshape(num_states)
            change = np.abs(updated - pi).sum()
            pi = updated
            if change < 1e-14:
                break
        else:
            raise ValueError(
                "the stationary distribution did not converge in 200000 power iterations; "
                "raise concentration or lower order so the chain mixes faster."
            )
    pi = np.maximum(pi, 0.0)
    return pi / pi.sum()


class MarkovSource(TokenSource):
    """A random Markov chain of order k over ``n_symbols`` symbols (ids 1 .. n; 0 is ``<pad>``).

    The next symbol depends on the last ``order`` symbols. Each of the ``n**k`` transition rows
    is drawn from a symmetric Dirichlet with parameter ``concentration`` (small values give
    nearly deterministic rows, large values nearly uniform ones), floored at 1e-9 and
    renormalized. The table is drawn from ``seed`` alone, so a configuration names one chain.

    The optimum is exact: with ``pi`` the stationary distribution of the order-k state chain
    (a linear solve, or power iteration for more than 2048 states) and ``P(a | s)`` the rows,

    * Bayes-optimal accuracy = ``sum_s pi(s) max_a P(a | s)``;
    * entropy rate = ``-sum_s pi(s) sum_a P(a | s) log P(a | s)`` nats per token,

    and a predictor that reads the last ``order`` symbols attains both. Streams start in a state
    drawn from ``pi``, so every position of a sampled stream has the stationary law.

    The state machine of :class:`TokenSource` adds a count of known symbols: state
    ``c * n**k + key`` has seen ``c <= k`` symbols since the last ``<pad>``, and only ``c = k``
    states have a next-token distribution.
    """

    def __init__(
        self, n_symbols: int = 8, order: int = 2, concentration: float = 0.5, seed: int = 0
    ) -> None:
        n = check_int("n_symbols", n_symbols, 2, MAX_SYMBOLS)
        k = check_int("order", order, 1)
        seed = check_int("seed", seed, 0)
        concentration = check_concentration(concentration)
        entries = (k + 1) * n**k * (n + 1)
        if entries > MAX_TABLE_ENTRIES:
            raise ValueError(
                f"n_symbols={n} with order={k} needs {entries} table entries, more than "
                f"{MAX_TABLE_ENTRIES}; lower n_symbols or order."
            )
        self.n_symbols = n
        self.order = k
        self.concentration = float(concentration)
        self.seed = seed

        rng = np.random.default_rng([seed, 0])
        transitions = rng.dirichlet(np.full(n, self.concentration), size=n**k)
        transitions = np.maximum(transitions, MIN_TRANSITION_PROB)
        self.transitions = transitions / transitions.sum(axis=1, keepdims=True)
        self.stationary = stationary_distribution(self.transitions, n)

        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(self.transitions > 0, self.transitions * np.log(self.transitions), 0)
        self.optimum = SourceOptimum(
            accuracy=float(self.stationary @ self.transitions.max(axis=1)),
            cross_entropy_nats=float(-(self.stationary @ plogp.sum(axis=1))),
        )
        self.vocab = SourceVocabulary((PAD_TOKEN, *symbol_names(n)), eos_id=None)
        self.next_states, self.probabilities = self._tables()
        self.start_state = 0
        self.memory = k
        self.min_context_length = k
        self.min_prompt_length = k

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        n, k = self.n_symbols, self.order
        num_keys = n**k
        states = np.arange((k + 1) * num_keys)
        counts, keys = np.divmod(states, num_keys)
        next_states = np.zeros((len(states), n + 1), dtype=np.int64)
        symbols = np.arange(n)
        next_keys = (keys[:, None] * n + symbols) % num_keys
        next_counts = np.minimum(counts + 1, k)[:, None]
        # Column 0 is <pad>: it sends every state back to "no symbol known" (state 0).
        next_states[:, 1:] = next_counts * num_keys + next_keys
        probabilities = np.zeros((len(states), n + 1), dtype=np.float64)
        probabilities[k * num_keys :, 1:] = self.transitions
        return next_states, probabilities

    def sample(self, length: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``length`` ids of the chain started in a stationary state."""
        n, k = self.n_symbols, self.order
        num_keys = n**k
        key = int(rng.choice(num_keys, p=self.stationary))
        first = [(key // n ** (k - 1 - i)) % n for i in range(k)]
        symbols = np.empty(max(length, k), dtype=np.int64)
        symbols[:k] = first
        cumulative = np.cumsum(self.transitions, axis=1)
        cumulative[:, -1] = 1.0
        uniforms = rng.random(len(symbols)).tolist()
        # Inverse-CDF sampling one symbol at a time: each draw depends on the previous ones.
        for t in range(k, len(symbols)):
            symbol = bisect.bisect_right(cumulative[key], uniforms[t])
            symbols[t] = symbol
            key = (key * n + symbol) % num_keys
        return (symbols[:length] + 1).astype(np.int64)

    def episode_starts(self, tokens: np.ndarray) -> np.ndarray:
        """Return every position with at least ``order`` symbols before it."""
        return np.arange(self.order, len(tokens), dtype=np.int64)
