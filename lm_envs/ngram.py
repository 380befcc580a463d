"""An n-gram language model with Witten-Bell interpolation, fitted on token windows.

The model is the reference for ``reward="log_prob"`` and the n-gram baseline. It is a proper
distribution over the vocabulary for every context, including contexts never seen in training:

    p_0(w)     = (c(w) + 1) / (N + |W|)                  add-one unigram over W = all ids but pad
    p_j(w | h) = (c(h, w) + T(h) p_{j-1}(w | h')) / (c(h) + T(h))   if c(h) > 0, else p_{j-1}

where h is the last j tokens, h' its last j - 1 tokens, c counts training targets and T(h) is the
number of distinct tokens seen after h.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lm_envs.data import TokenWindows

_MAX_KEY = 2**62


@dataclass
class _OrderTable:
    """Counts for one context length j >= 1, sorted by context key."""

    context_keys: np.ndarray  # unique context keys, sorted
    context_counts: np.ndarray  # c(h)
    context_types: np.ndarray  # T(h)
    pair_starts: np.ndarray  # index of each context's first pair in pair_tokens
    pair_tokens: np.ndarray  # next tokens, grouped by context
    pair_counts: np.ndarray  # c(h, w)
    pair_keys: np.ndarray  # context_key * V + w, sorted


class NGramModel:
    """Interpolated n-gram model over ids ``0 .. vocab_size - 1``.

    Args:
        order: n, the number of tokens in an n-gram (1 = unigram).
        vocab_size: number of ids.
        pad_id: the pad id, which gets no probability.
    """

    def __init__(self, order: int, vocab_size: int, pad_id: int) -> None:
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be an int >= 1, got {order!r}.")
        if vocab_size**order > _MAX_KEY:
            max_order = int(np.floor(np.log(_MAX_KEY) / np.log(vocab_size)))
            raise ValueError(
                f"order={order} with vocab_size={vocab_size} overflows 64-bit n-gram keys; "
                f"use order <= {max_order}."
            )
        self.order = int(order)
        self.vocab_size = int(vocab_size)
        self.pad_id = int(pad_id)
        self.unigram = np.zeros(vocab_size, dtype=np.float64)
        self.tables: list[_OrderTable] = []

    def fit(self, windows: TokenWindows) -> NGramModel:
        """Count n-grams over every target of ``windows`` (contexts include left padding)."""
        if windows.context_length < self.order - 1:
            raise ValueError(
                f"order={self.order} needs context_length >= {self.order - 1}, "
                f"got {windows.context_length}."
            )
        stream = windows.stream.astype(np.int64)
        targets = windows.targets
        tokens = stream[targets]
        counts = np.bincount(tokens, minlength=self.vocab_size).astype(np.float64)
        support = np.ones(self.vocab_size, dtype=bool)
        support[self.pad_id] = False
        self.unigram = np.where(support, counts + 1.0, 0.0) / (counts.sum() + support.sum())

        self.tables = []
        context_keys = np.zeros(len(targets), dtype=np.int64)
        for j in range(1, self.order):
            context_keys = context_keys * self.vocab_size + stream[targets - j]
            self.tables.append(self._count(context_keys, tokens))
        return self

    def _count(self, context_keys: np.ndarray, tokens: np.ndarray) -> _OrderTable:
        pair_keys, pair_counts = np.unique(
            context_keys * self.vocab_size + tokens, return_counts=True
        )
        pair_context = pair_keys // self.vocab_size
        unique_contexts, pair_starts, types = np.unique(
            pair_context, return_index=True, return_counts=True
        )
        context_counts = np.add.reduceat(pair_counts, pair_starts)
        return _OrderTable(
            context_keys=unique_contexts,
            context_counts=context_counts.astype(np.float64),
            context_types=types.astype(np.float64),
            pair_starts=pair_starts,
            pair_tokens=(pair_keys % self.vocab_size).astype(np.int64),
            pair_counts=pair_counts.astype(np.float64),
            pair_keys=pair_keys,
        )

    def _context_keys(self, contexts: np.ndarray, j: int) -> np.ndarray:
        # Key of the last j tokens, most recent token as the least significant digit.
        keys = np.zeros(contexts.shape[0], dtype=np.int64)
        for i in range(1, j + 1):
            keys = keys * self.vocab_size + contexts[:, -i].astype(np.int64)
        return keys

    @staticmethod
    def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.searchsorted(sorted_keys, keys)
        index = np.minimum(index, len(sorted_keys) - 1)
        found = sorted_keys[index] == keys if len(sorted_keys) else np.zeros(len(keys), dtype=bool)
        return index, found

    def prob(self, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Return p(token | context) for each row; ``contexts`` is (B, >= order - 1)."""
        contexts = np.asarray(contexts)
        tokens = np.asarray(tokens, dtype=np.int64)
        self._check_contexts(contexts)
        probs = self.unigram[tokens]
        for j, table in enumerate(self.tables, start=1):
            keys = self._context_keys(contexts, j)
            ctx_index, ctx_found = self._lookup(table.context_keys, keys)
            pair_index, pair_found = self._lookup(table.pair_keys, keys * self.vocab_size + tokens)
            c_h = np.where(ctx_found, table.context_counts[ctx_index], 0.0)
            t_h = np.where(ctx_found, table.context_types[ctx_index], 0.0)
            c_hw = np.where(pair_found, table.pair_counts[pair_index], 0.0)
            interpolated = (c_hw + t_h * probs) / np.maximum(c_h + t_h, 1.0)
            probs = np.where(ctx_found, interpolated, probs)
        return probs

    def log_prob(self, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Return natural-log probabilities of ``tokens`` after ``contexts`` (-inf for pad)."""
        with np.errstate(divide="ignore"):
            return np.log(self.prob(contexts, tokens))

    def distribution(self, contexts: np.ndarray) -> np.ndarray:
        """Return the full next-token distribution, shape (B, vocab_size), rows summing to 1."""
        contexts = np.asarray(contexts)
        self._check_contexts(contexts)
        batch = contexts.shape[0]
        rows = np.broadcast_to(self.unigram, (batch, self.vocab_size)).copy()
        for j, table in enumerate(self.tables, start=1):
            keys = self._context_keys(contexts, j)
            ctx_index, ctx_found = self._lookup(table.context_keys, keys)
            found_rows = np.flatnonzero(ctx_found)
            if len(found_rows) == 0:
                continue
            index = ctx_index[found_rows]
            c_h = table.context_counts[index]
            t_h = table.context_types[index]
            rows[found_rows] *= (t_h / (c_h + t_h))[:, None]
            # Scatter c(h, w) / (c(h) + T(h)) for the pairs of each found context.
            n_pairs = table.context_types[index].astype(np.int64)
            row_ids = np.repeat(found_rows, n_pairs)
            starts = np.repeat(table.pair_starts[index], n_pairs)
            within = np.arange(len(row_ids)) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
            pair_ids = starts + within
            scale = np.repeat(1.0 / (c_h + t_h), n_pairs)
            rows[row_ids, table.pair_tokens[pair_ids]] += table.pair_counts[pair_ids] * scale
        return rows

    def _check_contexts(self, contexts: np.ndarray) -> None:
        if contexts.ndim != 2 or contexts.shape[1] < self.order - 1:
            raise ValueError(
                f"contexts must have shape (batch, >= {self.order - 1}), got {contexts.shape}."
            )


def fit_ngram(windows: TokenWindows, order: int, vocab_size: int) -> NGramModel:
    """Fit an :class:`NGramModel` of ``order`` on ``windows``."""
    return NGramModel(order, vocab_size, windows.pad_id).fit(windows)
