"""Multi-digit addition: the prompt is ``a+b`` in decimal, the answer is the sum."""

from __future__ import annotations

import numpy as np

from lm_envs.tasks.base import SPECIAL_TOKENS, Task, TaskVocabulary
from lm_envs.tasks.env import ExactAnswerEnv
from lm_envs.validation import check_int

DIGIT_IDS = np.arange(len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + 10, dtype=np.int64)
PLUS_ID = len(SPECIAL_TOKENS) + 10
# Operands below 10**18 keep the sum below 2**63, so numpy draws them as int64.
MAX_DIGITS = 18


class AdditionTask(Task):
    """Prompt: two operands below ``10**num_digits``, most significant digit first, no leading
    zeros, joined by ``+``. Answer: their sum written the same way."""

    def __init__(self, num_digits: int) -> None:
        self.num_digits = check_int("num_digits", num_digits, 1, MAX_DIGITS)
        self.vocabulary = TaskVocabulary([str(d) for d in range(10)] + ["+"])
        self.answer_ids = DIGIT_IDS.copy()
        self.max_prompt_length = 2 * self.num_digits + 1
        self.max_answer_length = self.num_digits + 1

    def encode_number(self, value: int) -> np.ndarray:
        """Return the decimal digits of ``value`` as token ids."""
        return DIGIT_IDS[[int(d) for d in str(value)]]

    def decode_number(self, ids: np.ndarray) -> int:
        """Return the integer written by digit token ids."""
        digits = np.asarray(ids, dtype=np.int64) - DIGIT_IDS[0]
        if len(digits) == 0 or digits.min() < 0 or digits.max() > 9:
            raise ValueError(f"expected a non-empty run of digit token ids, got {list(ids)}.")
        return int("".join(str(d) for d in digits))

    def sample_prompt(self, rng: np.random.Generator) -> np.ndarray:
        high = 10**self.num_digits
        left, right = (int(x) for x in rng.integers(high, size=2))
        plus = np.array([PLUS_ID], dtype=np.int64)
        return np.concatenate([self.encode_number(left), plus, self.encode_number(right)])

    def solve(self, prompt: np.ndarray) -> np.ndarray:
        prompt = np.asarray(prompt, dtype=np.int64)
        plus_positions = np.flatnonzero(prompt == PLUS_ID)
        if len(plus_positions) != 1:
            raise ValueError(
                f"invalid addition prompt: it must contain exactly one '+', got ids {list(prompt)}."
            )
        split = plus_positions[0]
        total = self.decode_number(prompt[:split]) + self.decode_number(prompt[split + 1 :])
        return self.encode_number(total)


class LMAdditionEnv(ExactAnswerEnv):
    """Add two random decimal numbers.

    ## Description

    Two operands are drawn uniformly from ``[0, 10**num_digits)``. The prompt writes them in
    decimal, most significant digit first and without leading zeros, joined by ``+``. After
    the separator ``=`` the agent writes the sum the same way, then ``<eos>``. Example
    episode: ``57+468=525<eos>``.

    ## Action space

    ``Discrete(14)``: ``<pad>`` 0, ``<eos>`` 1, ``=`` 2, the digits ``0`` .. ``9`` (3 .. 12),
    ``+`` 13. :meth:`action_masks` and ``info["action_mask"]`` are True for the digits and
    ``<eos>``.

    ## Observation space

    ``Box(0, 13, shape=(context_length,), dtype=int32)``: the last ``context_length`` tokens of
    the prompt, ``=`` and the answer written so far, left-padded with ``<pad>``.

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

    * ``num_digits`` (3): operands are below ``10**num_digits``; 1 to 18.
    * ``context_length`` (None): window length. None means the minimum that fits the longest
      prompt, ``=`` and answer without its ``<eos>`` (``3 * num_digits + 3``); smaller values
      raise ValueError.
    * ``reward`` (``"dense"`` or ``"sparse"``), ``stop_on_error`` (True): see above.
    * ``render_mode`` (None or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    env_id = "LMAddition-v0"

    def __init__(
        self,
        num_digits: int = 3,
        context_length: int | None = None,
        reward: str = "dense",
        stop_on_error: bool = True,
        render_mode: str | None = None,
    ) -> None:
        task = AdditionTask(num_digits)
        super().__init__(task, context_length, reward, stop_on_error, render_mode)
