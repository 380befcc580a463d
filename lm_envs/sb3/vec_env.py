"""Stable-Baselines3 ``VecEnv`` adapter over the native batched environments.

A native lm_envs batch steps every sub-environment in one numpy call and reports Gymnasium's
vector API: ``terminated`` and ``truncated`` arrays and one dict of batched infos. SB3 expects
``dones`` and a list of per-environment info dicts that carry the final observation. The
adapter translates between the two without stepping sub-environments one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

# Same-step autoreset's final observation and info: step_wait moves them into the infos of the
# finished sub-environments instead of splitting them like other keys.
_FINAL_KEYS = ("final_obs", "final_info")
# Per-environment attribute names that differ from the batch environment's.
_SINGLE_ATTRIBUTES = {
    "observation_space": "single_observation_space",
    "action_space": "single_action_space",
}


def split_infos(infos: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Convert Gymnasium's batched info dict into one dict per sub-environment.

    A key ``k`` whose mask ``infos["_k"]`` exists goes only to the sub-environments where the
    mask is True. Nested dicts are split the same way. 1-D arrays become Python scalars and
    rows of wider arrays stay numpy arrays. ``final_obs`` and ``final_info`` are left out.

    Args:
        infos: the info dict returned by a Gymnasium ``VectorEnv``.
        num_envs: number of sub-environments.

    Returns:
        A list of ``num_envs`` dicts.
    """
    per_env: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in infos.items():
        if key.startswith("_") or key in _FINAL_KEYS:
            continue
        mask = infos.get(f"_{key}")
        if mask is None:
            mask = np.ones(num_envs, dtype=bool)
        mask = np.asarray(mask, dtype=bool)
        indices = np.flatnonzero(mask).tolist()
        if isinstance(value, dict):
            nested = split_infos(value, num_envs)
            items: Sequence[Any] = [nested[i] for i in indices]
        elif isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype != object:
            items = value[mask].tolist()
        else:
            items = [value[i] for i in indices]
        targets = per_env if len(indices) == num_envs else [per_env[i] for i in indices]
        for info, item in zip(targets, items, strict=True):
            info[key] = item
    return per_env


def _find_attr(venv: VectorEnv, name: str) -> Any:
    """Return ``name`` from ``venv`` or the first vector wrapper below it that defines it."""
    env: Any = venv
    while True:
        if hasattr(env, name):
            return getattr(env, name)
        if not hasattr(env, "env"):
            raise AttributeError(f"{type(venv).__name__} has no attribute {name!r}.")
        env = env.env


class LMVecEnv(VecEnv):
    """Present a native lm_envs batch as a Stable-Baselines3 ``VecEnv``.

    The batch must restart finished sub-environments inside the step that ended them
    (``autoreset_mode="same_step"``), as SB3 expects. Each step returns ``dones = terminated |
    truncated`` and, for every done sub-environment, ``info["terminal_observation"]`` (the
    observation that ended the episode) and ``info["TimeLimit.truncated"]`` (True when a length
    limit cut the episode rather than the text ending), so SB3 bootstraps through truncation
    only. Other batched infos are copied into the per-environment dicts.

    A native batch is one object, not ``num_envs`` environments. ``get_attr`` and
    ``env_method`` therefore read or call the batch once: results with a leading axis of size
    ``num_envs`` are split per sub-environment, and any other result is repeated for each
    requested index. A ``SyncVectorEnv`` or ``AsyncVectorEnv`` has real sub-environments, so
    for those the calls go through its ``get_attr``, ``set_attr`` and ``call`` to each one.

    Args:
        venv: a Gymnasium ``VectorEnv`` from ``gym.make_vec(..., autoreset_mode="same_step")``
            (a native lm_envs batch or any vector env with that autoreset mode).

    Raises:
        TypeError: ``venv`` is not a Gymnasium ``VectorEnv``.
        ValueError: ``venv`` does not use same-step autoreset.
    """

    def __init__(self, venv: VectorEnv) -> None:
        if not isinstance(venv, VectorEnv):
            raise TypeError(
                f"LMVecEnv wraps a gymnasium.vector.VectorEnv, got {type(venv).__name__}; "
                'create one with gym.make_vec(env_id, num_envs, autoreset_mode="same_step").'
            )
        mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"LMVecEnv needs a vector env with same-step autoreset, got autoreset_mode="
                f"{getattr(mode, 'value', mode)!r}; create it with "
                'gym.make_vec(..., autoreset_mode="same_step") or use make_sb3_env.'
            )
        self.venv = venv
        # Gymnasium's Sync/AsyncVectorEnv reach each sub-environment through these methods.
        self._per_env = all(
            callable(getattr(venv, name, None)) for name in ("get_attr", "set_attr", "call")
        )
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ stepping

    def reset(self) -> VecEnvObs:
        """Reset every sub-environment with the seeds from :meth:`seed` and the options set."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options[0] if self._options[0] else None
        if any(opts != self._options[0] for opts in self._options):
            raise ValueError(
                "a vector env takes one options dict for all sub-environments, got different "
                "options per sub-environment; pass one dict to set_options()."
            )
        obs, infos = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = split_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without a pending step_async(actions).")
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        self._actions = None
        dones = np.logical_or(terminated, truncated)
        per_env = split_infos(infos, self.num_envs)

        # Same-step autoreset already returned each finished sub-environment's first new
        # observation; SB3 finds the one that ended the episode in the info dict.
        if dones.any():
            final_obs = infos["final_obs"]
            final_info = infos.get("final_info")
            final_per_env = split_infos(final_info, self.num_envs) if final_info else None
            for i in np.flatnonzero(dones).tolist():
                info = per_env[i]
                if final_per_env is not None:
                    self.reset_infos[i] = info
                    info = per_env[i] = final_per_env[i]
                info["terminal_observation"] = final_obs[i]
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(rewards, dtype=np.float32), dones, per_env

    def close(self) -> None:
        self.venv.close()

    # ------------------------------------------------------------------ action masks

    def action_masks(self) -> np.ndarray:
        """Return the valid-action mask of every sub-environment, a bool array (num_envs, V)."""
        if self._per_env:
            return np.stack(self.venv.call("action_masks")).astype(bool, copy=False)
        return np.asarray(_find_attr(self.venv, "action_masks")(), dtype=bool)

    # ------------------------------------------------------------------ attributes and methods

    def _split_result(self, result: Any, indices: list[int]) -> list[Any]:
        """Return one entry of ``result`` per index when it is batched, else ``result`` repeated."""
        batched = isinstance(result, (np.ndarray, list, tuple)) and len(result) == self.num_envs
        if batched and not (isinstance(result, np.ndarray) and result.ndim == 0):
            return [result[i] for i in indices]
        return [result for _ in indices]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Return the batch's attribute once per requested sub-environment.

        ``observation_space`` and ``action_space`` return the single-environment spaces.
        """
        if self._per_env:
            values = self.venv.get_attr(attr_name)
            return [values[i] for i in self._get_indices(indices)]
        value = _find_attr(self.venv, _SINGLE_ATTRIBUTES.get(attr_name, attr_name))
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the requested sub-environments.

        A native batch shares its attributes, so for it only ``indices=None`` (all) is allowed.
        """
        chosen = sorted(set(self._get_indices(indices)))
        if self._per_env:
            values = [value] * self.num_envs
            if chosen != list(range(self.num_envs)):
                values = list(self.venv.get_attr(attr_name))
                for i in chosen:
                    values[i] = value
            self.venv.set_attr(attr_name, values)
            return
        if chosen != list(range(self.num_envs)):
            raise ValueError(
                f"set_attr({attr_name!r}) on sub-environments {chosen} is not possible: a native "
                "batch shares its attributes, so set them for all (indices=None)."
            )
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        """Call a method of the batch once and return its result per requested sub-environment.

        ``env_method("action_masks")`` returns one (V,) mask row per sub-environment, which is
        what sb3-contrib's ``MaskablePPO`` stacks.
        """
        chosen = list(self._get_indices(indices))
        if method_name == "action_masks":
            return list(self.action_masks()[chosen])
        if method_name == "render":
            return self._split_result(self.venv.render(), chosen)
        # NOTE: a method with side effects (reset, for example) acts on every sub-environment
        # even when indices names a subset.
        if self._per_env:
            results = self.venv.call(method_name, *method_args, **method_kwargs)
            return [results[i] for i in chosen]
        result = _find_attr(self.venv, method_name)(*method_args, **method_kwargs)
        return self._split_result(result, chosen)

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Return whether the batch is wrapped in ``wrapper_class``, once per sub-environment.

        A native batch has no per-environment ``gym.Wrapper`` layers, so this checks the
        Gymnasium vector wrappers around the batch.
        """
        env: Any = self.venv
        wrapped = False
        while env is not None and not wrapped:
            wrapped = isinstance(env, wrapper_class)
            env = getattr(env, "env", None)
        return [wrapped for _ in self._get_indices(indices)]

    def render(self, mode: str | None = None) -> Any:
        """Return the batch's rendering; with ``render_mode="ansi"`` a tuple of one text per env."""
        if self.render_mode == "ansi" and mode in (None, "ansi"):
            return self.venv.render()
        return super().render(mode=mode)


def make_sb3_env(
    env_id: str, num_envs: int, seed: int | None = None, **env_kwargs: Any
) -> LMVecEnv:
    """Create the native batch of ``env_id`` with same-step autoreset and wrap it for SB3.

    Args:
        env_id: a registered id with a native batch, e.g. ``"LMNextToken-v0"``.
        num_envs: number of sub-environments.
        seed: if given, the first ``reset()`` seeds sub-environment i with ``seed + i``.
        **env_kwargs: arguments of the environment (corpus, context_length, ...).

    Returns:
        An :class:`LMVecEnv`; wrap it in ``VecMonitor`` to log episode returns.

    Raises:
        ValueError: ``env_id`` has no native batch, or its batch has no same-step autoreset.
    """
    spec = gym.spec(env_id)
    if spec.vector_entry_point is None:
        raise ValueError(
            f"{env_id!r} has no native batched implementation (vector_entry_point); wrap "
            "single environments with stable_baselines3's DummyVecEnv instead."
        )
    if "autoreset_mode" in env_kwargs:
        raise ValueError(
            "make_sb3_env sets autoreset_mode='same_step' itself; remove autoreset_mode from "
            "the arguments."
        )
    try:
        venv = gym.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            autoreset_mode="same_step",
            **env_kwargs,
        )
    except TypeError as error:
        if "autoreset_mode" not in str(error):
            raise
        raise ValueError(
            f"the native batch of {env_id!r} does not accept autoreset_mode, so it cannot "
            "restart sub-environments in the same step as SB3 needs; wrap single "
            "environments with stable_baselines3's DummyVecEnv instead."
        ) from error
    adapter = LMVecEnv(venv)
    if seed is not None:
        adapter.seed(seed)
    return adapter
