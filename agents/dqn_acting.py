"""Acting with a Q-network: greedy, epsilon-greedy and Boltzmann choices over valid actions.

:class:`ActingMixin` is the acting half of :class:`agents.dqn.DQN`. It expects these attributes
on the agent: ``config`` (a DQNConfig), ``device``, ``q_network``, ``rng`` (numpy Generator),
``torch_generator``, ``vocab_size``, ``context_length``, ``num_timesteps``,
``epsilon_schedule``, ``num_envs``, ``_amp_enabled``, ``_amp_dtype`` and ``_device_masks``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from agents.dqn_loss import masked_argmax
from agents.rollout import check_masks
from agents.schedules import per_env_epsilons, sample_valid_actions


class ActingMixin:
    """Greedy and exploratory action choice, ``q_values`` and ``predict``."""

    @property
    def exploration_rate(self) -> float:
        """The epsilon of the schedule at the current step."""
        return self.epsilon_schedule(self.num_timesteps)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self._amp_enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp_dtype)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """Copy a host array to the device (pinned and non-blocking on CUDA).

        NOTE: the tests run on CPU only, so the CUDA branches here, in ``_autocast`` and the
        GradScaler path of training have not been exercised by them.
        """
        if array.dtype.kind == "u" and array.dtype != np.uint8:
            # torch has only partial support for uint16 and uint32 tensors.
            array = array.astype(np.int64)
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:
            # torch.from_numpy warns on read-only arrays such as np.broadcast_to views.
            array = array.copy()
        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def _masks_on_device(self, masks: np.ndarray) -> torch.Tensor:
        # Masks rarely change between steps, so the last device copy is reused when equal.
        if self._device_masks is not None:
            host, device_masks = self._device_masks
            if host.shape == masks.shape and np.array_equal(host, masks):
                return device_masks
        device_masks = self._to_device(np.ascontiguousarray(masks, dtype=bool))
        self._device_masks = (masks.copy(), device_masks)
        return device_masks

    @torch.no_grad()
    def _q_on_device(self, obs: np.ndarray) -> torch.Tensor:
        with self._autocast():
            return self.q_network(self._to_device(obs)).float()

    def _greedy(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        q_values = self._q_on_device(obs)
        return masked_argmax(q_values, self._masks_on_device(masks)).cpu().numpy()

    def _boltzmann(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Sample from softmax(Q / soft_q_alpha) over valid actions (Gumbel-max trick)."""
        q_values = self._q_on_device(obs)
        logits = (q_values / self.config.soft_q_alpha).masked_fill(
            ~self._masks_on_device(masks), float("-inf")
        )
        uniform = torch.rand(
            logits.shape, generator=self.torch_generator, device=self.device
        ).clamp_(min=torch.finfo(torch.float32).tiny)
        gumbel = -torch.log(-torch.log(uniform))
        return (logits + gumbel).argmax(dim=1).cpu().numpy()

    def _explore(
        self, obs: np.ndarray, masks: np.ndarray, epsilon: float | np.ndarray
    ) -> np.ndarray:
        """Epsilon-greedy over valid actions; ``epsilon`` is a scalar or one value per row."""
        explore = self.rng.random(len(obs)) < epsilon
        if explore.all():
            actions = np.zeros(len(obs), dtype=np.int64)
        else:
            actions = self._greedy(obs, masks)
        if explore.any():
            actions[explore] = sample_valid_actions(masks[explore], self.rng)
        return actions

    def _act(self, obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        if self.num_timesteps < self.config.learning_starts:
            return sample_valid_actions(masks, self.rng)
        if self.config.soft_q_learning:
            return self._boltzmann(obs, masks)
        epsilon = self.exploration_rate
        if self.config.per_env_epsilon:
            epsilon = per_env_epsilons(epsilon, self.num_envs, self.config.per_env_epsilon_alpha)
        return self._explore(obs, masks, epsilon)

    def _check_obs(self, obs: np.ndarray) -> np.ndarray:
        array = np.asarray(obs)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.context_length:
            raise ValueError(
                f"obs must have shape (batch, {self.context_length}), got {np.shape(obs)}."
            )
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"obs must contain integer token ids, got dtype {array.dtype}.")
        if array.size and (array.min() < 0 or array.max() >= self.vocab_size):
            raise ValueError(
                f"obs contains token ids outside 0 .. {self.vocab_size - 1}; pass windows from "
                "an env with this agent's tokenizer."
            )
        return array

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Return the Q-values (B, V) float32 of a batch of windows (B, L), without masking.

        A single window (L,) is treated as a batch of one.
        """
        return self._q_on_device(self._check_obs(obs)).cpu().numpy()

    def predict(
        self,
        obs: np.ndarray,
        action_masks: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> np.ndarray:
        """Return one action per window, (B,) int64.

        Args:
            obs: windows (B, L); a single window (L,) is a batch of one.
            action_masks: bool (B, V) or (V,), True for valid actions; None allows every
                action.
            deterministic: the best valid action when True. Otherwise epsilon-greedy with the
                current exploration rate, or a Boltzmann sample under soft Q-learning.
        """
        obs = self._check_obs(obs)
        if action_masks is None:
            masks = np.ones((len(obs), self.vocab_size), dtype=bool)
        else:
            masks = np.asarray(action_masks, dtype=bool)
            if masks.ndim == 1:
                masks = np.broadcast_to(masks, (len(obs), self.vocab_size))
            masks = check_masks(masks, len(obs), self.vocab_size)
        if deterministic:
            return self._greedy(obs, masks)
        if self.config.soft_q_learning:
            return self._boltzmann(obs, masks)
        return self._explore(obs, masks, self.exploration_rate)
