"""Vocabularies and problem generators for the exact-answer tasks.

A task turns a random generator into a prompt (a 1-D array of token ids) and solves a prompt
into its answer. Every task vocabulary starts with the same three tokens: ``<pad>`` (0, left
padding, never an action), ``<eos>`` (1, ends every answer) and the separator ``=`` (2, written
by the environment between prompt and answer).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from lm_envs.validation import check_int

PAD_ID = 0
EOS_ID = 1
SEP_ID = 2
SPECIAL_TOKENS = ("<pad>", "<eos>", "=")

# Symbols of the sequence tasks in token-id order, which is also the order LMSort-v0 sorts by.
SYMBOLS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_SYMBOLS = len(SYMBOLS)


class TaskVocabulary:
    """A small fixed vocabulary: the three special tokens followed by the task's own tokens."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens: tuple[str, ...] = SPECIAL_TOKENS + tuple(tokens)
        self.pad_id, self.eos_id, self.sep_id = PAD_ID, EOS_ID, SEP_ID

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        """Join the tokens of ``ids``; drop ``<pad>``, and ``<eos>`` if ``skip_special_tokens``.

        Ids outside the vocabulary decode as ``<?>`` instead of raising, so that a render of
        an out-of-range id shows the id as unknown.
        """
        pieces = []
        for token_id in np.asarray(ids, dtype=np.int64).reshape(-1):
            if token_id == PAD_ID or (skip_special_tokens and token_id == EOS_ID):
                continue
            in_range = 0 <= token_id < len(self.tokens)
            pieces.append(self.tokens[token_id] if in_range else "<?>")
        return "".join(pieces)


class Task(ABC):
    """A problem generator: samples prompts and computes their exact answers.

    Subclasses set ``vocabulary``, ``answer_ids`` (the ids an answer can contain, ``<eos>``
    excluded), ``max_prompt_length`` and ``max_answer_length`` (answer tokens without the
    ``<eos>``) in ``__init__``, after validating their arguments.
    """

    vocabulary: TaskVocabulary
    answer_ids: np.ndarray
    max_prompt_length: int
    max_answer_length: int

    @abstractmethod
    def sample_prompt(self, rng: np.random.Generator) -> np.ndarray:
        """Draw one prompt (int64 token ids, no separator) with ``rng``."""

    @abstractmethod
    def solve(self, prompt: np.ndarray) -> np.ndarray:
        """Return the answer to ``prompt`` as int64 token ids, without the final ``<eos>``."""

    @property
    def min_context_length(self) -> int:
        """The window that fits the longest prompt, the separator and answer before its last token.

        With this window every decision sees the whole prompt and everything written so far.
        """
        return self.max_prompt_length + 1 + self.max_answer_length

    def action_mask(self) -> np.ndarray:
        """Return a bool array of length V: True for the answer tokens and ``<eos>``."""
        mask = np.zeros(self.vocabulary.vocab_size, dtype=bool)
        mask[self.answer_ids] = True
        mask[EOS_ID] = True
        return mask


class SymbolSequenceTask(Task):
    """A task whose prompt is built from a random symbol sequence of a random length.

    The length is drawn uniformly from ``[min_length, max_length]``, then each symbol uniformly
    from the first ``num_symbols`` letters of ``a .. z A .. Z``.
    """

    def __init__(self, min_length: int, max_length: int, num_symbols: int) -> None:
        self.min_length = check_int("min_length", min_length, 1)
        self.max_length = check_int("max_length", max_length, 1)
        if self.max_length < self.min_length:
            raise ValueError(
                f"max_length={self.max_length} is smaller than min_length={self.min_length}; "
                "pass max_length >= min_length."
            )
        self.num_symbols = check_int("num_symbols", num_symbols, 2, MAX_SYMBOLS)
        self.vocabulary = TaskVocabulary(SYMBOLS[: self.num_symbols])
        self.first_symbol_id = len(SPECIAL_TOKENS)
        self.answer_ids = np.arange(
            self.first_symbol_id, self.first_symbol_id + self.num_symbols, dtype=np.int64
        )

    def sample_symbols(self, rng: np.random.Generator) -> np.ndarray:
        """Draw the random symbol sequence (int64 token ids) that a prompt is built from."""
        length = int(rng.integers(self.min_length, self.max_length + 1))
        return self.first_symbol_id + rng.integers(self.num_symbols, size=length, dtype=np.int64)
