"""Numpy state of a batch of exact-answer episodes, shared by the single and batched envs.

The single environment is a batch of one, so both implementations score actions with the same
code and cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from lm_envs.data import OBS_DTYPE
from lm_envs.tasks.base import EOS_ID, PAD_ID, SEP_ID, Task

REWARDS = ("dense", "sparse")


class AnswerBatch:
    """Token histories, expected answers and scores of ``num_rows`` episodes.

    Each row of ``history`` starts with ``context_length`` pads, then contains the prompt, the
    separator and the tokens written so far. The observation is the last ``context_length``
    tokens of that. Answers are stored with their final ``<eos>``.
    """

    def __init__(
        self, task: Task, num_rows: int, context_length: int, reward: str, stop_on_error: bool
    ) -> None:
        self.task = task
        self.context_length = context_length
        self.dense = reward == "dense"
        self.stop_on_error = stop_on_error
        width = context_length + task.max_prompt_length + 1 + task.max_answer_length + 1
        self.history = np.full((num_rows, width), PAD_ID, dtype=OBS_DTYPE)
        self.lengths = np.full(num_rows, context_length, dtype=np.int64)
        self.prompt_lengths = np.zeros(num_rows, dtype=np.int64)
        # One pad column past the longest answer with its <eos>: a finished row's target is pad.
        self.answers = np.full((num_rows, task.max_answer_length + 2), PAD_ID, dtype=np.int64)
        self.answer_lengths = np.ones(num_rows, dtype=np.int64)
        self.positions = np.zeros(num_rows, dtype=np.int64)
        self.errors = np.zeros(num_rows, dtype=np.int64)
        self._rows = np.arange(num_rows)
        self._offsets = np.arange(context_length)

    def start(self, row: int, rng: np.random.Generator) -> None:
        """Start a new episode in ``row`` with a prompt drawn from ``rng``."""
        prompt = self.task.sample_prompt(rng)
        answer = self.task.solve(prompt)
        start = self.context_length
        self.history[row] = PAD_ID
        self.history[row, start : start + len(prompt)] = prompt
        self.history[row, start + len(prompt)] = SEP_ID
        self.lengths[row] = start + len(prompt) + 1
        self.prompt_lengths[row] = len(prompt)
        self.answers[row] = PAD_ID
        self.answers[row, : len(answer)] = answer
        self.answers[row, len(answer)] = EOS_ID
        self.answer_lengths[row] = len(answer) + 1
        self.positions[row] = 0
        self.errors[row] = 0

    def observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Return the (len(rows), context_length) int32 windows ending at each row's last token."""
        rows = self._rows if rows is None else rows
        starts = self.lengths[rows] - self.context_length
        return np.take_along_axis(
            self.history[rows], starts[:, None] + self._offsets[None, :], axis=1
        )

    def targets(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Return the correct next token of each row in ``rows`` (default: all rows).

        Rows whose answer is complete get ``<pad>``, which is never a valid action.
        """
        rows = self._rows if rows is None else rows
        return self.answers[rows, self.positions[rows]]

    def step(
        self, actions: np.ndarray, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Write ``actions[k]`` into row ``rows[k]`` (default: every row in order) and score it.

        Every stepped row must be inside an episode. Returns ``(rewards, terminated, targets,
        success)`` for the stepped rows: float64 rewards, then bool flags, int64 correct tokens
        and ``success`` marking the rows whose answer is complete and fully correct.
        """
        rows = self._rows if rows is None else rows
        targets = self.targets(rows)
        correct = actions == targets
        self.history[rows, self.lengths[rows]] = actions
        self.lengths[rows] += 1
        self.positions[rows] += 1
        self.errors[rows] += ~correct

        # The answer ends when all its tokens are written or the agent writes <eos>, and at
        # the first mistake when stop_on_error is set.
        answer_lengths = self.answer_lengths[rows]
        terminated = (self.positions[rows] >= answer_lengths) | (actions == EOS_ID)
        if self.stop_on_error:
            terminated |= ~correct
        success = terminated & (self.errors[rows] == 0)
        if self.dense:
            rewards = correct / answer_lengths
        else:
            rewards = success.astype(np.float64)
        return rewards, terminated, targets, success

    def episode_tokens(self, row: int) -> np.ndarray:
        """Return the prompt, the separator and the tokens written so far in ``row``."""
        return self.history[row, self.context_length : self.lengths[row]]
