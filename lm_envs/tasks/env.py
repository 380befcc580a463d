"""The single-environment base class of the exact-answer tasks."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lm_envs.data import OBS_DTYPE
from lm_envs.tasks.base import Task, TaskVocabulary
from lm_envs.tasks.episodes import REWARDS, AnswerBatch
from lm_envs.validation import check_action, check_choice, check_int

RENDER_MODES = ("ansi",)


@dataclass(frozen=True)
class TaskSettings:
    """Validated arguments common to every exact-answer environment."""

    task: Task
    context_length: int
    reward: str
    stop_on_error: bool
    render_mode: str | None


def make_settings(
    env_id: str,
    task: Task,
    context_length: int | None,
    reward: str,
    stop_on_error: bool,
    render_mode: str | None,
) -> TaskSettings:
    """Validate the arguments shared by all tasks; ``context_length=None`` means the minimum."""
    minimum = task.min_context_length
    if context_length is None:
        context_length = minimum
    context_length = check_int("context_length", context_length, 1)
    if context_length < minimum:
        raise ValueError(
            f"context_length={context_length} is too small for {env_id} with these arguments: "
            f"the prompt, the separator and the answer need up to {minimum} tokens. Pass "
            f"context_length >= {minimum}, or None for exactly {minimum}."
        )
    check_choice("reward", reward, REWARDS)
    if not isinstance(stop_on_error, (bool, np.bool_)):
        raise TypeError(
            f"stop_on_error must be a bool, got {type(stop_on_error).__name__} "
            f"({stop_on_error!r}); pass True or False."
        )
    if render_mode is not None:
        check_choice("render_mode", render_mode, RENDER_MODES)
    return TaskSettings(task, context_length, reward, bool(stop_on_error), render_mode)


def render_episode(
    vocabulary: TaskVocabulary, tokens: np.ndarray, last: tuple[int, int] | None
) -> str:
    """Return the decoded episode text with the last action marked as ``[[action]]``.

    ``tokens`` contains the prompt, the separator and the answer so far, last action included.
    """
    if last is None:
        return vocabulary.decode(tokens)
    action, target = last
    text = vocabulary.decode(tokens[:-1])
    written = vocabulary.decode([action], skip_special_tokens=False)
    expected = vocabulary.decode([target], skip_special_tokens=False)
    verdict = "correct" if action == target else f"wrong, expected {expected!r}"
    return f"{text}[[{written}]] ({verdict})"


class ExactAnswerEnv(gym.Env):
    """Base class of the exact-answer tasks: the agent writes the answer to a prompt.

    Subclasses build their :class:`~lm_envs.tasks.base.Task` from their own arguments, pass it
    to ``__init__`` and carry the environment card as their docstring.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}
    env_id = "an exact-answer task"

    # One-line descriptions read by the ``lm-envs-list`` command.
    reward_summary = (
        "dense: +1/answer_length per correct token, 1.0 for a perfect answer; "
        "sparse: 1.0 on the last step if the whole answer is correct"
    )
    episode_end_summary = (
        "terminated: answer and <eos> written, <eos> written early, or the first wrong token "
        "(stop_on_error=True); truncated: never"
    )

    def __init__(
        self,
        task: Task,
        context_length: int | None,
        reward: str,
        stop_on_error: bool,
        render_mode: str | None,
    ) -> None:
        self.settings = make_settings(
            self.env_id, task, context_length, reward, stop_on_error, render_mode
        )
        self.task = task
        self.vocabulary = task.vocabulary
        self.render_mode = render_mode
        vocab = self.vocabulary.vocab_size
        self.action_space = spaces.Discrete(vocab)
        self.observation_space = spaces.Box(
            0, vocab - 1, shape=(self.settings.context_length,), dtype=OBS_DTYPE
        )
        self._batch = AnswerBatch(
            task, 1, self.settings.context_length, reward, self.settings.stop_on_error
        )
        self._mask = task.action_mask()
        self._done = True
        self._started = False
        self._warned_after_done = False
        self._last: tuple[int, int] | None = None

    def action_masks(self) -> np.ndarray:
        """Return a bool array of length V: True for the answer tokens and ``<eos>``."""
        return self._mask.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._batch.start(0, self.np_random)
        self._done = False
        self._started = True
        self._last = None
        return self._batch.observe()[0], {"action_mask": self.action_masks()}

    def step(self, action):
        action = check_action(action, self.vocabulary.vocab_size)
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset(); call reset().")
        if self._done:
            if not self._warned_after_done:
                warnings.warn(
                    "step() called after the episode ended; call reset() first. The final "
                    "observation is returned again with reward 0.",
                    stacklevel=2,
                )
                self._warned_after_done = True
            return self._batch.observe()[0], 0.0, True, False, {"action_mask": self.action_masks()}

        rewards, terminated, targets, success = self._batch.step(np.array([action]))
        target = int(targets[0])
        self._last = (action, target)
        self._done = bool(terminated[0])
        info: dict[str, Any] = {"target": target, "action_mask": self.action_masks()}
        if self._done:
            info["is_success"] = bool(success[0])
        return self._batch.observe()[0], float(rewards[0]), self._done, False, info

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn('render() called without a render mode; pass render_mode="ansi".')
            return None
        if not self._started:
            return ""
        return render_episode(self.vocabulary, self._batch.episode_tokens(0), self._last)
