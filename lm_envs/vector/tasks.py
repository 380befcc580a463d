"""Native batched exact-answer tasks: all sub-environments step in one numpy call."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lm_envs.data import OBS_DTYPE
from lm_envs.tasks.addition import LMAdditionEnv
from lm_envs.tasks.copying import LMCopyEnv, LMDuplicatedInputEnv, LMRepeatCopyEnv
from lm_envs.tasks.env import ExactAnswerEnv, render_episode
from lm_envs.tasks.episodes import AnswerBatch
from lm_envs.tasks.reordering import LMReverseEnv, LMSortEnv
from lm_envs.validation import check_actions, check_int, parse_autoreset_mode, sub_env_seeds


class ExactAnswerVectorEnv(VectorEnv):
    """``num_envs`` copies of an exact-answer environment stepped together.

    Subclasses name the single environment class in ``single_env_class``. Every keyword
    argument other than ``num_envs`` and ``autoreset_mode`` goes to that class, which
    validates it, so the batched and single environments accept the same arguments.

    Sub-environment ``i`` reset with ``seed + i`` follows exactly the trajectory of a single
    environment reset with that seed. Autoreset is next-step by default: the step after an
    episode ends ignores that sub-environment's action and returns the first observation of a
    new episode with reward 0 and neither flag set. ``infos["target"]`` contains the correct
    tokens (``_target`` marks the valid entries) and ``infos["is_success"]`` whether each
    finished answer was fully correct (``_is_success`` marks the rows that finished).

    With ``autoreset_mode="same_step"`` a finished sub-environment restarts inside the same
    step: the returned row is the new episode's first observation and ``infos["final_obs"]``
    (an int32 (num_envs, L) array, rows valid where ``_final_obs`` is True) contains the
    observation that ended the episode. Stable-Baselines3's VecEnv expects this mode.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}
    single_env_class: type[ExactAnswerEnv] = ExactAnswerEnv

    def __init__(
        self,
        num_envs: int = 1,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.autoreset_mode = parse_autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        # The single environment validates the arguments and builds the task; it is cheap
        # because a task is only a problem generator.
        template = self.single_env_class(**kwargs)
        self.settings = template.settings
        self.task = template.task
        self.vocabulary = template.vocabulary
        self.render_mode = self.settings.render_mode
        vocab = self.vocabulary.vocab_size
        self.single_action_space = spaces.Discrete(vocab)
        self.single_observation_space = spaces.Box(
            0, vocab - 1, shape=(self.settings.context_length,), dtype=OBS_DTYPE
        )
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

        self._batch = AnswerBatch(
            self.task,
            self.num_envs,
            self.settings.context_length,
            self.settings.reward,
            self.settings.stop_on_error,
        )
        self._mask = self.task.action_mask()
        self._rngs: list[np.random.Generator] = []
        self._needs_reset = np.ones(self.num_envs, dtype=bool)
        self._last_actions: np.ndarray | None = None
        self._last_targets: np.ndarray | None = None
        self._last_valid = np.zeros(self.num_envs, dtype=bool)

    def action_masks(self) -> np.ndarray:
        """Return a bool array (num_envs, V): True for the answer tokens and ``<eos>``."""
        return np.broadcast_to(self._mask, (self.num_envs, self._mask.size)).copy()

    def _start(self, indices: np.ndarray) -> None:
        for i in indices:
            self._batch.start(int(i), self._rngs[i])

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ):
        """Reset every sub-environment; ``seed`` is an int (sub-env i gets seed + i) or a list."""
        seeds = sub_env_seeds(seed, self.num_envs)
        if seed is not None or not self._rngs:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self._start(np.arange(self.num_envs))
        self._needs_reset[:] = False
        self._last_actions = None
        self._last_valid[:] = False
        return self._batch.observe(), {}

    def step(self, actions):
        actions = check_actions(actions, self.num_envs, self.vocabulary.vocab_size)
        autoreset = self._needs_reset
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        targets = np.zeros(self.num_envs, dtype=np.int64)
        success = np.zeros(self.num_envs, dtype=bool)

        if autoreset.any():
            # Sub-environments whose episode ended on the previous step start a new one and
            # ignore their action in this step.
            self._start(np.flatnonzero(autoreset))
            active = np.flatnonzero(~autoreset)
            step_rewards, step_terminated, step_targets, step_success = self._batch.step(
                actions[active], active
            )
            rewards[active] = step_rewards
            terminated[active] = step_terminated
            targets[active] = step_targets
            success[active] = step_success
        else:
            step_rewards, terminated, targets, success = self._batch.step(actions)
            rewards = step_rewards.astype(np.float32)

        truncated = np.zeros(self.num_envs, dtype=bool)
        self._last_actions, self._last_targets = actions, targets
        self._last_valid = ~autoreset
        infos: dict[str, Any] = {
            "target": targets,
            "_target": ~autoreset,
            "is_success": success,
            "_is_success": terminated.copy(),
        }

        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            # Finished sub-environments restart now; their last observation goes in the infos.
            if terminated.any():
                done_ids = np.flatnonzero(terminated)
                final_obs = np.zeros((self.num_envs, self.settings.context_length), dtype=OBS_DTYPE)
                final_obs[done_ids] = self._batch.observe(done_ids)
                infos["final_obs"] = final_obs
                infos["_final_obs"] = terminated.copy()
                self._start(done_ids)
                self._last_valid[done_ids] = False
            return self._batch.observe(), rewards, terminated, truncated, infos

        self._needs_reset = terminated.copy()
        return self._batch.observe(), rewards, terminated, truncated, infos

    def render(self) -> tuple[str, ...] | None:
        """Return each sub-environment's episode text, marking the last action where valid."""
        if self.render_mode is None:
            return None
        texts = []
        for i in range(self.num_envs):
            last = None
            if self._last_actions is not None and self._last_valid[i]:
                last = (int(self._last_actions[i]), int(self._last_targets[i]))
            texts.append(render_episode(self.vocabulary, self._batch.episode_tokens(i), last))
        return tuple(texts)


class LMCopyVectorEnv(ExactAnswerVectorEnv):
    """Batched ``LMCopy-v0``; takes the arguments of :class:`~lm_envs.tasks.LMCopyEnv`."""

    single_env_class = LMCopyEnv


class LMReverseVectorEnv(ExactAnswerVectorEnv):
    """Batched ``LMReverse-v0``; takes the arguments of :class:`~lm_envs.tasks.LMReverseEnv`."""

    single_env_class = LMReverseEnv


class LMRepeatCopyVectorEnv(ExactAnswerVectorEnv):
    """Batched ``LMRepeatCopy-v0``; takes the arguments of
    :class:`~lm_envs.tasks.LMRepeatCopyEnv`."""

    single_env_class = LMRepeatCopyEnv


class LMDuplicatedInputVectorEnv(ExactAnswerVectorEnv):
    """Batched ``LMDuplicatedInput-v0``; takes the arguments of
    :class:`~lm_envs.tasks.LMDuplicatedInputEnv`."""

    single_env_class = LMDuplicatedInputEnv


class LMAdditionVectorEnv(ExactAnswerVectorEnv):
    """Batched ``LMAddition-v0``; takes the arguments of :class:`~lm_envs.tasks.LMAdditionEnv`."""

    single_env_class = LMAdditionEnv


class LMSortVectorEnv(ExactAnswerVectorEnv):
    """Batched ``LMSort-v0``; takes the arguments of :class:`~lm_envs.tasks.LMSortEnv`."""

    single_env_class = LMSortEnv
