"""Reordering tasks: reverse a sequence, sort a sequence."""

from __future__ import annotations

import numpy as np

from lm_envs.tasks.base import SymbolSequenceTask
from lm_envs.tasks.env import ExactAnswerEnv


class ReverseTask(SymbolSequenceTask):
    """Prompt: a symbol sequence. Answer: the sequence from last to first."""

    def __init__(self, min_length: int, max_length: int, num_symbols: int) -> None:
        super().__init__(min_length, max_length, num_symbols)
        self.max_prompt_length = self.max_length
        self.max_answer_length = self.max_length

    def sample_prompt(self, rng: np.random.Generator) -> np.ndarray:
        return self.sample_symbols(rng)

    def solve(self, prompt: np.ndarray) -> np.ndarray:
        return np.asarray(prompt, dtype=np.int64)[::-1].copy()


class SortTask(SymbolSequenceTask):
    """Prompt: a symbol sequence (repeats allowed). Answer: its symbols in token-id order."""

    def __init__(self, min_length: int, max_length: int, num_symbols: int) -> None:
        super().__init__(min_length, max_length, num_symbols)
        self.max_prompt_length = self.max_length
        self.max_answer_length = self.max_length

    def sample_prompt(self, rng: np.random.Generator) -> np.ndarray:
        return self.sample_symbols(rng)

    def solve(self, prompt: np.ndarray) -> np.ndarray:
        return np.sort(np.asarray(prompt, dtype=np.int64))


class LMReverseEnv(ExactAnswerEnv):
    """Write a random symbol sequence backwards.

    ## Description

    The prompt is a sequence of ``min_length`` to ``max_length`` symbols (length uniform, each
    symbol uniform over ``num_symbols`` letters). After the separator ``=`` the agent writes
    the sequence from its last symbol to its first, then ``<eos>``. Example episode:
    ``cab=bac<eos>``.

    ## Action space

    ``Discrete(3 + num_symbols)``: ``<pad>`` 0, ``<eos>`` 1, ``=`` 2, then the letters ``a``,
    ``b``, ... :meth:`action_masks` and ``info["action_mask"]`` are True for the letters and
    ``<eos>``.

    ## Observation space

    ``Box(0, V - 1, shape=(context_length,), dtype=int32)``: the last ``context_length`` tokens
    of the prompt, ``=`` and the answer written so far, left-padded with ``<pad>``.

    ## Rewards

    * ``reward="dense"`` (default): ``1 / answer_length`` per correct token, where
      ``answer_length`` counts the ``<eos>``, so a perfect answer scores 1.0.
    * ``reward="sparse"``: 1.0 on the last step if the whole answer is correct, else 0.

    ## Starting state

    A new prompt drawn with the environment's generator; the observation ends with ``=``.

    ## Episode end

    * Termination: the answer and its ``<eos>`` are written, the agent writes ``<eos>`` too
      early, or (with ``stop_on_error=True``) the agent writes its first wrong token.
    * Truncation: never, because an episode lasts at most ``answer_length`` steps.

    ``info["target"]`` is the correct token for the step just taken. On the last step
    ``info["is_success"]`` is True if the whole answer was correct.

    ## Arguments

    * ``min_length`` (2), ``max_length`` (8): range of the sequence length.
    * ``num_symbols`` (8): alphabet size, 2 to 52 (``a`` .. ``z``, ``A`` .. ``Z``).
    * ``context_length`` (None): window length. None means the minimum that fits the longest
      prompt, ``=`` and answer without its ``<eos>`` (``2 * max_length + 1``); smaller values
      raise ValueError.
    * ``reward`` (``"dense"`` or ``"sparse"``), ``stop_on_error`` (True): see above.
    * ``render_mode`` (None or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    env_id = "LMReverse-v0"

    def __init__(
        self,
        min_length: int = 2,
        max_length: int = 8,
        num_symbols: int = 8,
        context_length: int | None = None,
        reward: str = "dense",
        stop_on_error: bool = True,
        render_mode: str | None = None,
    ) -> None:
        task = ReverseTask(min_length, max_length, num_symbols)
        super().__init__(task, context_length, reward, stop_on_error, render_mode)


class LMSortEnv(ExactAnswerEnv):
    """Sort a random symbol sequence.

    ## Description

    The prompt is a sequence of ``min_length`` to ``max_length`` symbols (length uniform, each
    symbol uniform over ``num_symbols`` letters, so symbols may repeat). After the separator
    ``=`` the agent writes the same symbols in ascending token-id order (``a`` < ``b`` < ... <
    ``z`` < ``A`` < ... < ``Z``), repeats included, then ``<eos>``. Example episode:
    ``cabca=aabcc<eos>``.

    ## Action space

    ``Discrete(3 + num_symbols)``: ``<pad>`` 0, ``<eos>`` 1, ``=`` 2, then the letters ``a``,
    ``b``, ... :meth:`action_masks` and ``info["action_mask"]`` are True for the letters and
    ``<eos>``.

    ## Observation space

    ``Box(0, V - 1, shape=(context_length,), dtype=int32)``: the last ``context_length`` tokens
    of the prompt, ``=`` and the answer written so far, left-padded with ``<pad>``.

    ## Rewards

    * ``reward="dense"`` (default): ``1 / answer_length`` per correct token, where
      ``answer_length`` counts the ``<eos>``, so a perfect answer scores 1.0.
    * ``reward="sparse"``: 1.0 on the last step if the whole answer is correct, else 0.

    ## Starting state

    A new prompt drawn with the environment's generator; the observation ends with ``=``.

    ## Episode end

    * Termination: the answer and its ``<eos>`` are written, the agent writes ``<eos>`` too
      early, or (with ``stop_on_error=True``) the agent writes its first wrong token.
    * Truncation: never, because an episode lasts at most ``answer_length`` steps.

    ``info["target"]`` is the correct token for the step just taken. On the last step
    ``info["is_success"]`` is True if the whole answer was correct.

    ## Arguments

    * ``min_length`` (2), ``max_length`` (8): range of the sequence length.
    * ``num_symbols`` (8): alphabet size, 2 to 52 (``a`` .. ``z``, ``A`` .. ``Z``).
    * ``context_length`` (None): window length. None means the minimum that fits the longest
      prompt, ``=`` and answer without its ``<eos>`` (``2 * max_length + 1``); smaller values
      raise ValueError.
    * ``reward`` (``"dense"`` or ``"sparse"``), ``stop_on_error`` (True): see above.
    * ``render_mode`` (None or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    env_id = "LMSort-v0"

    def __init__(
        self,
        min_length: int = 2,
        max_length: int = 8,
        num_symbols: int = 8,
        context_length: int | None = None,
        reward: str = "dense",
        stop_on_error: bool = True,
        render_mode: str | None = None,
    ) -> None:
        task = SortTask(min_length, max_length, num_symbols)
        super().__init__(task, context_length, reward, stop_on_error, render_mode)
