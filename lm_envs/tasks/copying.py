"""Copying tasks: copy a sequence, copy it k times, undo a duplication of each symbol."""

from __future__ import annotations

import numpy as np

from lm_envs.tasks.base import SymbolSequenceTask
from lm_envs.tasks.env import ExactAnswerEnv
from lm_envs.validation import check_int


class CopyTask(SymbolSequenceTask):
    """Prompt: a symbol sequence. Answer: the same sequence."""

    def __init__(self, min_length: int, max_length: int, num_symbols: int) -> None:
        super().__init__(min_length, max_length, num_symbols)
        self.max_prompt_length = self.max_length
        self.max_answer_length = self.max_length

    def sample_prompt(self, rng: np.random.Generator) -> np.ndarray:
        return self.sample_symbols(rng)

    def solve(self, prompt: np.ndarray) -> np.ndarray:
        return np.asarray(prompt, dtype=np.int64).copy()


class RepeatCopyTask(SymbolSequenceTask):
    """Prompt: a symbol sequence. Answer: the sequence written ``num_repeats`` times."""

    def __init__(self, min_length: int, max_length: int, num_symbols: int, num_repeats: int):
        super().__init__(min_length, max_length, num_symbols)
        self.num_repeats = check_int("num_repeats", num_repeats, 1)
        self.max_prompt_length = self.max_length
        self.max_answer_length = self.max_length * self.num_repeats

    def sample_prompt(self, rng: np.random.Generator) -> np.ndarray:
        return self.sample_symbols(rng)

    def solve(self, prompt: np.ndarray) -> np.ndarray:
        return np.tile(np.asarray(prompt, dtype=np.int64), self.num_repeats)


class DuplicatedInputTask(SymbolSequenceTask):
    """Prompt: each symbol of a sequence written ``duplication`` times. Answer: the sequence.

    ``min_length`` and ``max_length`` bound the answer; prompts are ``duplication`` times longer.
    """

    def __init__(self, min_length: int, max_length: int, num_symbols: int, duplication: int):
        super().__init__(min_length, max_length, num_symbols)
        self.duplication = check_int("duplication", duplication, 2)
        self.max_prompt_length = self.max_length * self.duplication
        self.max_answer_length = self.max_length

    def sample_prompt(self, rng: np.random.Generator) -> np.ndarray:
        return np.repeat(self.sample_symbols(rng), self.duplication)

    def solve(self, prompt: np.ndarray) -> np.ndarray:
        return np.asarray(prompt, dtype=np.int64)[:: self.duplication].copy()


class LMCopyEnv(ExactAnswerEnv):
    """Copy a random symbol sequence.

    ## Description

    The prompt is a sequence of ``min_length`` to ``max_length`` symbols (length uniform, each
    symbol uniform over ``num_symbols`` letters). The environment appends the separator ``=``,
    then the agent writes the sequence again, one token per step, and ends it with ``<eos>``.
    Example episode: ``cab=cab<eos>``.

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

    env_id = "LMCopy-v0"

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
        task = CopyTask(min_length, max_length, num_symbols)
        super().__init__(task, context_length, reward, stop_on_error, render_mode)


class LMRepeatCopyEnv(ExactAnswerEnv):
    """Copy a random symbol sequence ``num_repeats`` times.

    ## Description

    The prompt is a sequence of ``min_length`` to ``max_length`` symbols (length uniform, each
    symbol uniform over ``num_symbols`` letters). After the separator ``=`` the agent writes
    the sequence ``num_repeats`` times in a row, then ``<eos>``. Example episode with
    ``num_repeats=2``: ``cab=cabcab<eos>``.

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
    * ``num_repeats`` (2): number of copies in the answer, >= 1.
    * ``context_length`` (None): window length. None means the minimum that fits the longest
      prompt, ``=`` and answer without its ``<eos>`` (``(1 + num_repeats) * max_length + 1``);
      smaller values raise ValueError.
    * ``reward`` (``"dense"`` or ``"sparse"``), ``stop_on_error`` (True): see above.
    * ``render_mode`` (None or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    env_id = "LMRepeatCopy-v0"

    def __init__(
        self,
        min_length: int = 2,
        max_length: int = 8,
        num_symbols: int = 8,
        num_repeats: int = 2,
        context_length: int | None = None,
        reward: str = "dense",
        stop_on_error: bool = True,
        render_mode: str | None = None,
    ) -> None:
        task = RepeatCopyTask(min_length, max_length, num_symbols, num_repeats)
        super().__init__(task, context_length, reward, stop_on_error, render_mode)


class LMDuplicatedInputEnv(ExactAnswerEnv):
    """Write once each symbol that the prompt writes ``duplication`` times.

    ## Description

    A sequence of ``min_length`` to ``max_length`` symbols is drawn (length uniform, each
    symbol uniform over ``num_symbols`` letters). The prompt writes each of its symbols
    ``duplication`` times in a row. After the separator ``=`` the agent writes the sequence
    with each symbol once, then ``<eos>``. Example episode with ``duplication=2``:
    ``ccaabb=cab<eos>``.

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

    * ``min_length`` (2), ``max_length`` (8): range of the answer length (the prompt is
      ``duplication`` times longer).
    * ``num_symbols`` (8): alphabet size, 2 to 52 (``a`` .. ``z``, ``A`` .. ``Z``).
    * ``duplication`` (2): how many times the prompt writes each symbol, >= 2.
    * ``context_length`` (None): window length. None means the minimum that fits the longest
      prompt, ``=`` and answer without its ``<eos>`` (``(duplication + 1) * max_length + 1``);
      smaller values raise ValueError.
    * ``reward`` (``"dense"`` or ``"sparse"``), ``stop_on_error`` (True): see above.
    * ``render_mode`` (None or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    env_id = "LMDuplicatedInput-v0"

    def __init__(
        self,
        min_length: int = 2,
        max_length: int = 8,
        num_symbols: int = 8,
        duplication: int = 2,
        context_length: int | None = None,
        reward: str = "dense",
        stop_on_error: bool = True,
        render_mode: str | None = None,
    ) -> None:
        task = DuplicatedInputTask(min_length, max_length, num_symbols, duplication)
        super().__init__(task, context_length, reward, stop_on_error, render_mode)
