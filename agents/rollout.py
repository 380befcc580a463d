"""The DQN's side of a Gymnasium vector env: sizes, masks, autoreset and the running rollout."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

if TYPE_CHECKING:
    from agents.replay import ReplayBuffer


def as_vector_env(env: gym.Env | VectorEnv) -> VectorEnv:
    """Return ``env`` if it is a VectorEnv, else a one-environment SyncVectorEnv around it."""
    if isinstance(env, VectorEnv):
        return env
    if isinstance(env, gym.Env):
        return SyncVectorEnv([lambda: env])
    raise TypeError(
        f"env must be a gymnasium.Env or gymnasium.vector.VectorEnv, got {type(env).__name__}; "
        'create one with gym.make("LMNextToken-v0") or gym.make_vec(...).'
    )


def env_dimensions(env: VectorEnv) -> tuple[int, int]:
    """Return (V, L): the number of actions and the observation length of each sub-environment."""
    action_space = env.single_action_space
    observation_space = env.single_observation_space
    if not isinstance(action_space, spaces.Discrete) or action_space.start != 0:
        raise TypeError(
            f"the DQN needs a Discrete(V) action space starting at 0, got {action_space}."
        )
    if (
        not isinstance(observation_space, spaces.Box)
        or len(observation_space.shape) != 1
        or not np.issubdtype(observation_space.dtype, np.integer)
    ):
        raise TypeError(
            "the DQN needs observations that are 1-D integer token windows, Box(0, V - 1, "
            f"shape=(L,)), got {observation_space}."
        )
    return int(action_space.n), int(observation_space.shape[0])


def autoreset_mode(env: VectorEnv) -> AutoresetMode:
    """Return the env's autoreset mode (next-step when the metadata names none)."""
    mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        raise ValueError(
            f"autoreset mode {mode} is not supported; build the vector env with "
            "autoreset_mode next_step or same_step."
        )
    return mode


def env_id(env: VectorEnv) -> str | None:
    """Return the registered id of the env (or of its first sub-environment), if any."""
    for candidate in (env, getattr(env, "unwrapped", None)):
        spec = getattr(candidate, "spec", None)
        if spec is not None:
            return spec.id
    sub_envs = getattr(env, "envs", None)
    if sub_envs:
        spec = getattr(sub_envs[0], "spec", None)
        if spec is not None:
            return spec.id
    return None


def mask_reader(env: VectorEnv) -> Callable[[], np.ndarray] | None:
    """Return a function giving the (num_envs, V) bool action masks, or None (all valid).

    Tried in order: ``env.action_masks()``, the unwrapped env's ``action_masks()`` (a
    Gymnasium vector wrapper does not forward attributes), then ``env.call("action_masks")``
    stacked.
    """
    for candidate in (env, getattr(env, "unwrapped", env)):
        method = getattr(candidate, "action_masks", None)
        if callable(method):
            return lambda: np.asarray(method(), dtype=bool)
    try:
        env.call("action_masks")
    except (AttributeError, NotImplementedError):
        return None
    return lambda: np.stack(env.call("action_masks")).astype(bool, copy=False)


def check_masks(masks: np.ndarray, num_envs: int, vocab_size: int) -> np.ndarray:
    """Return ``masks`` as a (num_envs, V) bool array, or raise when a row has no valid action."""
    masks = np.asarray(masks, dtype=bool)
    if masks.shape != (num_envs, vocab_size):
        raise ValueError(
            f"action masks must have shape ({num_envs}, {vocab_size}), got {masks.shape}."
        )
    empty = np.flatnonzero(~masks.any(axis=1))
    if len(empty):
        raise ValueError(
            f"sub-environment {int(empty[0])} reports no valid action; every state needs at "
            "least one True entry in its action mask."
        )
    return masks


def final_observations(
    infos: dict, env_ids: np.ndarray, fallback_masks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the final observations and their masks of ``env_ids`` after a same-step autoreset.

    The masks come from ``infos["final_info"]["action_mask"]`` where the env reports them, else
    from ``fallback_masks`` (the masks after the reset).
    """
    if "final_obs" not in infos:
        raise ValueError(
            'a same-step autoreset env ended an episode without infos["final_obs"]; the '
            "DQN needs the true final observation to bootstrap a truncated episode."
        )
    final_obs = np.stack([np.asarray(infos["final_obs"][i]) for i in env_ids])
    masks = fallback_masks[env_ids]
    final_info = infos.get("final_info")
    if isinstance(final_info, dict) and "action_mask" in final_info:
        masks = np.asarray(final_info["action_mask"], dtype=bool)[env_ids]
    return final_obs, masks


class Rollout:
    """The agent's side of a running vector env: the observations it acts on next, their masks
    and each sub-environment's episode so far.

    :meth:`step` stores every vector step in a :class:`~agents.replay.ReplayBuffer` in the
    layout that buffer expects: one row per sub-environment and step, followed by a
    non-transition row holding the true final observation after each episode end.

    Args:
        env: the vector env (next-step or same-step autoreset).
        vocab_size: V, the width of the action masks.
    """

    # Arrays that a checkpoint needs to continue the rollout where it stopped.
    STATE_ARRAYS = ("obs", "masks", "prev_done", "episode_returns", "episode_lengths")

    def __init__(self, env: VectorEnv, vocab_size: int) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.vocab_size = vocab_size
        self.autoreset_mode = autoreset_mode(env)
        self._read_masks = mask_reader(env)
        self.obs: np.ndarray | None = None
        self.masks: np.ndarray | None = None
        self.prev_done: np.ndarray | None = None
        self.episode_returns: np.ndarray | None = None
        self.episode_lengths: np.ndarray | None = None

    @property
    def started(self) -> bool:
        """Whether the env was reset, so that :meth:`step` can run."""
        return self.obs is not None

    def read_masks(self) -> np.ndarray:
        """Return the env's current action masks (num_envs, V); all True if it has none."""
        if self._read_masks is None:
            return np.ones((self.num_envs, self.vocab_size), dtype=bool)
        return check_masks(self._read_masks(), self.num_envs, self.vocab_size)

    def reset(self, seed: int | None) -> None:
        """Reset every sub-environment (sub-env i gets ``seed + i`` on the native batch)."""
        obs, _ = self.env.reset(seed=seed)
        self.obs = np.asarray(obs)
        self.masks = self.read_masks()
        self.prev_done = np.zeros(self.num_envs, dtype=bool)
        self.episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        self.episode_lengths = np.zeros(self.num_envs, dtype=np.int64)

    def step(self, actions: np.ndarray, replay: ReplayBuffer) -> tuple[np.ndarray, np.ndarray]:
        """Step every sub-environment, store the step in ``replay`` and advance.

        Returns:
            The returns and lengths of the episodes that ended in this step.
        """
        obs, masks = self.obs, self.masks
        next_obs, rewards, terminated, truncated, infos = self.env.step(actions)
        rewards = np.asarray(rewards, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = terminated | truncated
        next_masks = self.read_masks()

        # Under next-step autoreset, the step after an episode end only resets that
        # sub-environment: it is stored as a non-transition row holding the final observation.
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            valid = ~self.prev_done
            self.prev_done = done
        else:
            valid = np.ones(self.num_envs, dtype=bool)
        replay.add(obs, actions, rewards, terminated, truncated, masks, valid)
        if self.autoreset_mode is AutoresetMode.SAME_STEP and done.any():
            ended = np.flatnonzero(done)
            final_obs, final_masks = final_observations(infos, ended, next_masks)
            no_action = np.zeros(len(ended), dtype=np.int64)
            no_reward = np.zeros(len(ended), dtype=np.float32)
            no = np.zeros(len(ended), dtype=bool)
            replay.add(final_obs, no_action, no_reward, no, no, final_masks, no, ended)

        self.episode_returns += np.where(valid, rewards, 0.0)
        self.episode_lengths += valid
        finished = done & valid
        finished_returns = self.episode_returns[finished].copy()
        finished_lengths = self.episode_lengths[finished].copy()
        self.episode_returns[done] = 0.0
        self.episode_lengths[done] = 0
        self.obs, self.masks = np.asarray(next_obs), next_masks
        return finished_returns, finished_lengths

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Return the arrays of :data:`STATE_ARRAYS` (the rollout must have started)."""
        return {name: getattr(self, name) for name in self.STATE_ARRAYS}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Continue from :meth:`state_arrays` output; the env must be in the matching state."""
        if arrays["obs"].shape[0] != self.num_envs:
            raise ValueError(
                f"the saved rollout has {arrays['obs'].shape[0]} sub-environments, this env has "
                f"{self.num_envs}; use an env with the saved num_envs."
            )
        self.obs = arrays["obs"]
        self.masks = arrays["masks"].astype(bool)
        self.prev_done = arrays["prev_done"].astype(bool)
        self.episode_returns = arrays["episode_returns"].astype(np.float64)
        self.episode_lengths = arrays["episode_lengths"].astype(np.int64)
