"""DQN for token-window environments: one agent acting on a batch of environments, CPU or CUDA.

The loop of :meth:`DQN.learn` reads like the textbook. It acts epsilon-greedily on every
sub-environment at once, steps, and stores the step in replay. Every ``train_freq`` vector steps
it samples n-step transitions, computes the Bellman target without gradients and takes a
gradient step, and it syncs the target network on its own interval. Each standard improvement is a switch of
:class:`~agents.dqn_config.DQNConfig` (Double DQN, dueling heads, n-step returns, prioritized
replay, soft Q-learning, per-environment epsilons).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from tqdm.auto import tqdm

from agents.baselines import resolve_device
from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.dqn_acting import ActingMixin
from agents.dqn_config import DQNConfig
from agents.dqn_loss import polyak_update, td_loss, td_target
from agents.logger import Logger
from agents.networks import QNetwork
from agents.replay import ReplayBuffer
from agents.rollout import Rollout, as_vector_env, env_dimensions, env_id
from agents.schedules import LinearSchedule
from lm_envs.validation import check_int

__all__ = ["DQN", "DQNConfig"]

# Episodes averaged into rollout/ep_rew_mean and rollout/ep_len_mean.
EPISODE_WINDOW = 100

Callback = Callable[["DQN"], "bool | None"]


class DQN(ActingMixin):
    """Deep Q-learning over a Gymnasium vector environment of token windows.

    Args:
        env: a ``gymnasium.vector.VectorEnv`` (for example the native batch from
            ``gym.make_vec(..., vectorization_mode="vector_entry_point")``) or a single
            ``gym.Env``, which is wrapped in a one-environment ``SyncVectorEnv``. Observations
            must be ``Box`` integer windows (L,) and actions ``Discrete(V)``.
        config: all settings; ``DQNConfig()`` when None.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or a torch device.
        seed: seeds the network weights (drawn on the CPU, the same on every device), the
            exploration and replay generators, and the first ``env.reset``. None draws fresh
            entropy.
        logger: where training statistics go; by default a :class:`~agents.logger.Logger`
            built from ``config.log_outputs`` and ``config.log_folder``.

    Attributes:
        q_network, target_network: :class:`~agents.networks.QNetwork` modules on ``device``.
        num_timesteps: environment steps taken so far (each vector step adds ``num_envs``).
        n_updates: gradient steps taken so far.
    """

    def __init__(
        self,
        env: gym.Env | VectorEnv,
        config: DQNConfig | None = None,
        device: str | torch.device = "auto",
        seed: int | None = 0,
        logger: Logger | None = None,
    ) -> None:
        vector_env = as_vector_env(env)
        vocab_size, context_length = env_dimensions(vector_env)
        self._build(config, vocab_size, context_length, device, seed, logger)
        self.set_env(vector_env)

    def _build(
        self,
        config: DQNConfig | None,
        vocab_size: int,
        context_length: int,
        device: str | torch.device,
        seed: int | None,
        logger: Logger | None,
    ) -> None:
        """Create everything that does not depend on an environment."""
        if config is None:
            config = DQNConfig()
        if not isinstance(config, DQNConfig):
            raise TypeError(f"config must be a DQNConfig, got {type(config).__name__}.")
        if seed is not None:
            seed = check_int("seed", seed, 0)
        self.config = config
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.device = resolve_device(device)
        self.seed = seed

        # Independent streams for exploration, replay sampling and Boltzmann sampling.
        explore_seed, replay_seed, torch_seed = np.random.SeedSequence(seed).spawn(3)
        self.rng = np.random.default_rng(explore_seed)
        self.replay_rng = np.random.default_rng(replay_seed)
        self.torch_generator = torch.Generator(device=self.device)
        self.torch_generator.manual_seed(int(torch_seed.generate_state(1)[0]))
        # The weights are drawn on the CPU under a forked generator: the same seed gives the
        # same network on every device (and as agents.baselines.SupervisedAgent with the same
        # network settings), and the caller's torch random state is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed if seed is not None else int(torch_seed.generate_state(2)[1]))
            network = QNetwork(vocab_size, context_length, **config.network_kwargs)
        self.q_network = network.to(self.device)
        self.target_network = copy.deepcopy(self.q_network).requires_grad_(False)
        if config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.q_network.parameters(), lr=config.learning_rate)
        else:
            self.optimizer = torch.optim.RMSprop(
                self.q_network.parameters(), lr=config.learning_rate
            )
        # The compiled module shares its parameters with q_network; checkpoints save q_network.
        self._train_network = torch.compile(self.q_network) if config.compile else self.q_network
        self._amp_enabled = config.amp and self.device.type == "cuda"
        if config.amp and not self._amp_enabled:
            warnings.warn(
                "amp=True has no effect on the CPU; training runs in float32.", stacklevel=3
            )
        amp_dtype = torch.bfloat16 if config.amp_dtype == "bfloat16" else torch.float16
        self._amp_dtype = amp_dtype
        self._scaler = (
            torch.amp.GradScaler("cuda")
            if self._amp_enabled and amp_dtype == torch.float16
            else None
        )
        self.epsilon_schedule = LinearSchedule(
            config.exploration_initial_eps,
            config.exploration_final_eps,
            config.exploration_fraction,
            config.total_steps,
        )
        self.beta_schedule = LinearSchedule(
            config.priority_beta_start, 1.0, 1.0, config.total_steps
        )
        self.logger = (
            logger
            if logger is not None
            else Logger(outputs=config.log_outputs, folder=config.log_folder)
        )

        self.env: VectorEnv | None = None
        self.replay: ReplayBuffer | None = None
        self.num_envs = 0
        self.num_timesteps = 0
        self.n_updates = 0
        self.n_vector_steps = 0
        self.env_resets = 0
        self.next_event = {
            "target": config.target_update_interval,
            "log": config.log_interval,
            "eval": config.eval_interval,
            "checkpoint": config.checkpoint_interval,
        }
        self.finished_returns: deque[float] = deque(maxlen=EPISODE_WINDOW)
        self.finished_lengths: deque[int] = deque(maxlen=EPISODE_WINDOW)
        self.rollout: Rollout | None = None
        self._device_masks: tuple[np.ndarray, torch.Tensor] | None = None
        self._mask_table: tuple[int, torch.Tensor] | None = None
        self._reset_train_stats()
        self._last_log_step = -1
        self._nonfinite_updates = torch.zeros((), dtype=torch.int64, device=self.device)

    # ----------------------------------------------------------------------------------------
    # Environment

    def set_env(self, env: gym.Env | VectorEnv) -> None:
        """Attach an environment with the same V and L; the next :meth:`learn` resets it.

        A new replay buffer is built when none exists or the number of sub-environments
        changed. Otherwise the stored steps are kept, and the steps whose n-step window is
        still open are dropped at the next reset.
        """
        env = as_vector_env(env)
        dimensions = env_dimensions(env)
        if dimensions != (self.vocab_size, self.context_length):
            raise ValueError(
                f"the env has V={dimensions[0]}, L={dimensions[1]}; this agent was built for "
                f"V={self.vocab_size}, L={self.context_length}. Use an env with the same "
                "tokenizer and context_length."
            )
        self.env = env
        self.num_envs = env.num_envs
        self.rollout = Rollout(env, self.vocab_size)
        identifier = env_id(env)
        if (
            self.config.gamma > 0
            and identifier is not None
            and identifier.startswith("LMNextToken")
        ):
            warnings.warn(
                f"gamma={self.config.gamma} on {identifier}: the task is teacher-forced, so the "
                "next state does not depend on the action and discounted future values only add "
                "noise; set gamma=0.",
                stacklevel=3,
            )
        if self.replay is None or self.replay.num_envs != self.num_envs:
            config = self.config
            self.replay = ReplayBuffer(
                config.buffer_size,
                self.num_envs,
                self.context_length,
                self.vocab_size,
                n_step=config.n_step,
                gamma=config.gamma,
                prioritized=config.prioritized_replay,
                alpha=config.priority_alpha,
                priority_eps=config.priority_eps,
                rng=self.replay_rng,
            )
            self._mask_table = None

    def _reset_env(self) -> None:
        """Reset every sub-environment; the first reset of a seeded agent uses ``seed``."""
        if self.env_resets == 0 and self.seed is not None:
            reset_seed = self.seed
        else:
            reset_seed = int(self.rng.integers(2**31 - 1))
        self.rollout.reset(reset_seed)
        self.env_resets += 1
        # Steps stored before this reset whose n-step window is still open cannot finish.
        self.replay.cut()

    # ----------------------------------------------------------------------------------------
    # Learning

    def learn(
        self,
        total_steps: int | None = None,
        progress_bar: bool = False,
        callback: Callback | None = None,
    ) -> DQN:
        """Train for ``total_steps`` more environment steps and return the agent.

        Training runs whole vector steps, so it may take up to ``num_envs - 1`` steps more.

        Args:
            total_steps: steps to add; None trains until ``config.total_steps`` is reached.
            progress_bar: show a tqdm bar.
            callback: called as ``callback(agent)`` every ``config.eval_interval`` steps;
                returning False stops training.

        The first call resets the env (with ``seed`` on a fresh seeded agent); later calls
        continue the same episodes. Raises RuntimeError when the loss or the Q-values stop
        being finite (see :meth:`check_finite`).
        """
        if self.rollout is None:
            raise ValueError(
                "this agent has no environment; pass env= to DQN.load or call set_env(env)."
            )
        if total_steps is None:
            steps = self.config.total_steps - self.num_timesteps
            if steps <= 0:
                return self
        else:
            steps = check_int("total_steps", total_steps, 1)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(agent), got {callback!r}.")
        if not self.rollout.started:
            self._reset_env()

        end = self.num_timesteps + steps
        start_time = time.perf_counter()
        start_steps = self.num_timesteps
        config = self.config
        with tqdm(total=steps, disable=not progress_bar, unit="step") as bar:
            while self.num_timesteps < end:
                self._collect_step()
                bar.update(self.num_envs)

                if (
                    self.num_timesteps >= config.learning_starts
                    and self.n_vector_steps % config.train_freq == 0
                    and self.replay.num_sampleable() > 0
                ):
                    for _ in range(config.gradient_steps):
                        self._train_step()
                if self._due("target", config.target_update_interval):
                    polyak_update(self.q_network, self.target_network, config.tau)

                if self._due("log", config.log_interval):
                    self._log(start_steps, start_time)
                if callback is not None and self._due("eval", config.eval_interval):
                    self.check_finite()
                    if callback(self) is False:
                        break
                if config.checkpoint_folder is not None and self._due(
                    "checkpoint", config.checkpoint_interval
                ):
                    self.save(config.checkpoint_folder, config.checkpoint_include_replay)
        self.check_finite()
        if self._last_log_step != self.num_timesteps:
            self._log(start_steps, start_time)
        return self

    def _due(self, event: str, interval: int) -> bool:
        """Return whether ``event`` is due and, if so, schedule its next occurrence."""
        if self.num_timesteps < self.next_event[event]:
            return False
        self.next_event[event] = (self.num_timesteps // interval + 1) * interval
        return True

    def _collect_step(self) -> None:
        """Act on every sub-environment, step, and store the step in replay."""
        actions = self._act(self.rollout.obs, self.rollout.masks)
        returns, lengths = self.rollout.step(actions, self.replay)
        self.finished_returns.extend(returns.tolist())
        self.finished_lengths.extend(lengths.tolist())
        self.num_timesteps += self.num_envs
        self.n_vector_steps += 1

    def _mask_table_on_device(self) -> torch.Tensor:
        table = self.replay.mask_table
        if self._mask_table is None or self._mask_table[0] != len(table):
            self._mask_table = (len(table), self._to_device(table))
        return self._mask_table[1]

    def _train_step(self) -> None:
        """Take one gradient step on a sampled batch of n-step transitions."""
        config = self.config
        batch = self.replay.sample(config.batch_size, beta=self.beta_schedule(self.num_timesteps))
        obs = self._to_device(batch.obs)
        actions = self._to_device(batch.actions)
        returns = self._to_device(batch.returns)
        weights = self._to_device(batch.weights)

        with self._autocast():
            q_all = self._train_network(obs)
        # gather picks Q(s, a) of the action taken: (B, V) -> (B,).
        q_taken = q_all.float().gather(1, actions[:, None]).squeeze(1)
        if config.gamma == 0.0:
            # Every discount is 0, so the next-state values would be multiplied away.
            targets = returns
        else:
            next_obs = self._to_device(batch.next_obs)
            discounts = self._to_device(batch.discounts)
            next_masks = self._mask_table_on_device()[self._to_device(batch.next_mask_ids)]
            with torch.no_grad():
                with self._autocast():
                    next_q_target = self.target_network(next_obs)
                    next_q_online = self.q_network(next_obs) if config.double_dqn else None
                targets = td_target(
                    returns,
                    discounts,
                    next_q_target,
                    next_masks,
                    next_q_online=next_q_online,
                    soft_alpha=config.soft_q_alpha if config.soft_q_learning else None,
                )
        loss, td_errors = td_loss(q_taken, targets, weights, config.loss)

        self.optimizer.zero_grad(set_to_none=True)
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
            self._scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.q_network.parameters(), config.max_grad_norm)
        if self._scaler is not None:
            self._scaler.step(self.optimizer)
            self._scaler.update()
        else:
            self.optimizer.step()

        if self.replay.prioritized:
            # NOTE: the sum tree lives on the host, so prioritized replay syncs with the device
            # here once per update.
            self.replay.update_priorities(batch.indices, td_errors.detach().abs().cpu().numpy())
        # Statistics stay on the device until they are logged: no host sync per update.
        detached_loss = loss.detach()
        self._loss_sum += detached_loss
        self._q_sum += q_taken.detach().mean()
        self._stat_updates += 1
        finite = torch.isfinite(detached_loss) & torch.isfinite(q_all.detach()).all()
        self._nonfinite_updates += (~finite).long()
        self.n_updates += 1

    def _reset_train_stats(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._q_sum = torch.zeros((), device=self.device)
        self._stat_updates = 0

    def check_finite(self) -> None:
        """Raise RuntimeError if any update so far had a NaN or infinite loss or Q-value.

        Training calls this before every log, callback and checkpoint, so a checkpoint is never
        written from non-finite weights and the last one written stays the last good one.
        """
        bad = int(self._nonfinite_updates.item())
        if bad == 0:
            return
        folder = self.config.checkpoint_folder
        where = (
            f"the last good checkpoint is in {folder}"
            if folder is not None and Path(folder).is_dir()
            else "no checkpoint was written"
        )
        raise RuntimeError(
            f"training stopped at step {self.num_timesteps}: {bad} of {self.n_updates} updates "
            f"had a NaN or infinite loss or Q-value; {where}. Check the rewards for NaN/inf, "
            "lower learning_rate or set max_grad_norm."
        )

    def _log(self, start_steps: int, start_time: float) -> None:
        self.check_finite()
        logger = self.logger
        elapsed = max(time.perf_counter() - start_time, 1e-9)
        logger.record("time/total_timesteps", self.num_timesteps)
        logger.record("time/fps", (self.num_timesteps - start_steps) / elapsed)
        logger.record("rollout/exploration_rate", self.exploration_rate)
        if self.finished_returns:
            logger.record("rollout/ep_rew_mean", float(np.mean(self.finished_returns)))
            logger.record("rollout/ep_len_mean", float(np.mean(self.finished_lengths)))
        logger.record("train/n_updates", self.n_updates)
        if self._stat_updates:
            # The one host read of the loss statistics since the last log.
            logger.record("train/loss", float(self._loss_sum) / self._stat_updates)
            logger.record("train/q_mean", float(self._q_sum) / self._stat_updates)
        self._reset_train_stats()
        self._last_log_step = self.num_timesteps
        logger.dump(self.num_timesteps)

    # ----------------------------------------------------------------------------------------
    # Checkpoints

    def save(self, path: str | Path, include_replay: bool = False) -> Path:
        """Write a checkpoint folder atomically (see :mod:`agents.checkpoint`); return its path.

        Raises RuntimeError instead of saving when training produced non-finite values.
        """
        self.check_finite()
        return save_checkpoint(self, path, include_replay=include_replay)

    @classmethod
    def load(
        cls,
        path: str | Path,
        env: gym.Env | VectorEnv | None = None,
        device: str | torch.device = "auto",
        resume_rollout: bool = False,
    ) -> DQN:
        """Load a checkpoint without unpickling arbitrary objects.

        Args:
            path: a folder written by :meth:`save`.
            env: the environment to train on; None gives an agent that can only predict.
            device: where to put the networks.
            resume_rollout: continue from the observations the saved agent was about to act
                on, instead of resetting ``env``. The caller must then hand over an env in the
                state it had at save time (for ``LMNextToken-v0``: re-created with the same
                arguments, reset with the agent's seed and stepped as many vector steps as the
                saved agent took). With this, the replay buffer saved alongside and the same
                device, training continues exactly as an uninterrupted run.
        """
        return load_checkpoint(cls, path, env=env, device=device, resume_rollout=resume_rollout)
