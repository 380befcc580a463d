"""Native batched LMNextToken-v0: all sub-environments step in one numpy call."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lm_envs.corpora import DEFAULT_CORPUS
from lm_envs.data import OBS_DTYPE
from lm_envs.envs.next_token import make_setup, render_step
from lm_envs.reference import clip_log_prob
from lm_envs.validation import (
    check_actions,
    check_choice,
    check_int,
    parse_autoreset_mode,
    sub_env_seeds,
)


class LMNextTokenVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`~lm_envs.envs.next_token.LMNextTokenEnv` stepped together.

    Sub-environment ``i`` reset with ``seed + i`` follows exactly the trajectory of a single
    environment reset with that seed. Autoreset is next-step: the step after an episode ends
    ignores that sub-environment's action, returns its first observation of a new episode with
    reward 0 and neither flag set. ``infos["target"]`` contains the true tokens (``_target`` marks
    the entries that are valid).

    With ``autoreset_mode="same_step"`` a finished sub-environment restarts inside the same
    step instead: the returned row is the new episode's first observation and
    ``infos["final_obs"]`` (an int32 (num_envs, L) array, rows valid where ``_final_obs`` is
    True) holds the observation that ended the episode. Stable-Baselines3's VecEnv expects
    this mode.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        corpus: str | os.PathLike = DEFAULT_CORPUS,
        tokenizer: str | os.PathLike = "char",
        vocab_size: int | None = None,
        context_length: int = 64,
        episode_length: int = 128,
        split: str = "train",
        reward: str = "match",
        reference_order: int = 3,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.autoreset_mode = parse_autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        if render_mode is not None:
            check_choice("render_mode", render_mode, tuple(self.metadata["render_modes"]))
        self.render_mode = render_mode
        self.setup = make_setup(
            corpus,
            tokenizer,
            vocab_size,
            context_length,
            episode_length,
            split,
            reward,
            reference_order,
        )
        self.tokenizer = self.setup.tokenizer
        vocab = self.setup.vocab_size
        self.single_action_space = spaces.Discrete(vocab)
        self.single_observation_space = spaces.Box(
            0, vocab - 1, shape=(self.setup.context_length,), dtype=OBS_DTYPE
        )
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

        # Rows of this view are the windows ending before each stream position (offset by L).
        self._window_view = np.lib.stride_tricks.sliding_window_view(
            self.setup.windows.stream, self.setup.context_length
        )
        self._rngs: list[np.random.Generator] = []
        self._positions = np.zeros(self.num_envs, dtype=np.int64)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.ones(self.num_envs, dtype=bool)
        self._last_actions: np.ndarray | None = None
        self._last_targets: np.ndarray | None = None

    def action_masks(self) -> np.ndarray:
        """Return a bool array (num_envs, V): True for token ids that are valid actions."""
        return np.broadcast_to(
            self.setup.action_mask, (self.num_envs, self.setup.vocab_size)
        ).copy()

    def _observe(self) -> np.ndarray:
        return self._window_view[self._positions - self.setup.context_length]

    def _reset_envs(self, indices: np.ndarray) -> None:
        targets = self.setup.windows.targets
        for i in indices:
            self._positions[i] = targets[self._rngs[i].integers(len(targets))]
        self._steps[indices] = 0

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ):
        """Reset every sub-environment; ``seed`` is an int (sub-env i gets seed + i) or a list."""
        seeds = sub_env_seeds(seed, self.num_envs)
        if seed is not None or not self._rngs:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self._reset_envs(np.arange(self.num_envs))
        self._needs_reset[:] = False
        self._last_actions = None
        return self._observe(), {}

    def step(self, actions):
        actions = check_actions(actions, self.num_envs, self.setup.vocab_size)
        stream = self.setup.windows.stream
        autoreset = self._needs_reset
        any_reset = bool(autoreset.any())
        if any_reset:
            # Sub-environments whose episode ended on the previous step start a new one and
            # ignore their action in this step.
            reset_ids = np.flatnonzero(autoreset)
            self._reset_envs(reset_ids)

        # Reward every sub-environment against the true next token.
        targets = stream[self._positions]
        if self.setup.reward == "match":
            rewards = (actions == targets).astype(np.float32)
        else:
            contexts = self._window_view[self._positions - self.setup.context_length]
            rewards = clip_log_prob(self.setup.reference.log_prob(contexts, actions)).astype(
                np.float32
            )

        # Advance the context with the true token; the text ends at <eos>.
        terminated = targets == self.setup.windows.eos_id
        self._positions += 1
        self._steps += 1
        truncated = ~terminated & (self._steps >= self.setup.episode_length)
        if any_reset:
            self._positions[reset_ids] -= 1
            self._steps[reset_ids] = 0
            rewards[reset_ids] = 0.0
            terminated[reset_ids] = False
            truncated[reset_ids] = False
        done = terminated | truncated
        self._last_actions, self._last_targets = actions, targets
        infos: dict[str, Any] = {"target": targets, "_target": ~autoreset}

        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            # Finished sub-environments restart now; their last observation goes in the infos.
            if done.any():
                done_ids = np.flatnonzero(done)
                final_obs = np.zeros((self.num_envs, self.setup.context_length), dtype=OBS_DTYPE)
                final_obs[done_ids] = self._window_view[
                    self._positions[done_ids] - self.setup.context_length
                ]
                infos["final_obs"] = final_obs
                infos["_final_obs"] = done
                self._reset_envs(done_ids)
            return self._observe(), rewards, terminated, truncated, infos

        self._needs_reset = done
        return self._observe(), rewards, terminated, truncated, infos

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode is None:
            return None
        context_length = self.setup.context_length
        texts = []
        for i in range(self.num_envs):
            if self._last_actions is None:
                window = self._window_view[self._positions[i] - context_length]
                texts.append(render_step(self.tokenizer, window, None, None))
            else:
                window = self._window_view[self._positions[i] - 1 - context_length]
                texts.append(
                    render_step(
                        self.tokenizer,
                        window,
                        int(self._last_actions[i]),
                        int(self._last_targets[i]),
                    )
                )
        return tuple(texts)
