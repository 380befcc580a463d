"""DQN on LMNextToken-v0 in one file, written top to bottom for reading.

This is the textbook algorithm without the extras of :mod:`agents.dqn` (no Double DQN, dueling
head, n-step returns, prioritized replay or soft Q-learning). It uses the same network, the
same random streams in the same order and the same update, so with the settings of
:func:`library_config` it ends with the same Q-network weights as ``agents.dqn.DQN``.
``tests/agents/test_reference_dqn.py`` checks that on a fixed seed.

Run it::

    python -m agents.reference_dqn --total-timesteps 50000 --corpus pydoc

The random streams, shared with ``agents.dqn.DQN``:

* ``torch.manual_seed(seed)`` right before the Q-network is built draws its initial weights;
* ``np.random.SeedSequence(seed).spawn(3)`` gives three generators. The action generator draws
  the epsilon coin flips, then the random valid actions, each step. The replay generator draws
  the columns, then the rows, of a whole batch at a time. The third seeds Boltzmann sampling,
  which plain DQN does not use;
* ``envs.reset(seed=seed)`` once; sub-environment i is then seeded ``seed + i``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field, fields

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.baselines import resolve_device
from agents.dqn_config import DQNConfig
from agents.networks import QNetwork
from lm_envs.data import load_windows
from lm_envs.validation import check_int


def arg(default: object, help_text: str):
    """Return a dataclass field whose help text becomes the command-line help."""
    return field(default=default, metadata={"help": help_text})


@dataclass
class Args:
    """Settings of the reference DQN; every field is also a command-line option."""

    seed: int = arg(0, "seeds the network, exploration, replay sampling and the envs")
    corpus: str = arg("pydoc", "'pydoc', a UTF-8 text file or folder, or 'hf:NAME'")
    tokenizer: str = arg("char", "'char', 'byte', 'bpe' or a tokenizer.json path")
    context_length: int = arg(16, "tokens in each observation window")
    episode_length: int = arg(128, "steps before an episode is truncated")
    num_envs: int = arg(16, "sub-environments stepped together")
    total_timesteps: int = arg(50_000, "environment steps, summed over the sub-environments")
    learning_rate: float = arg(1e-3, "Adam step size")
    buffer_size: int = arg(100_000, "replay capacity in environment steps")
    gamma: float = arg(0.0, "discount; 0 because the next window does not depend on the action")
    tau: float = arg(1.0, "target update rate; 1 copies the online weights")
    target_network_frequency: int = arg(2_000, "environment steps between target updates")
    batch_size: int = arg(128, "transitions per gradient step")
    start_e: float = arg(1.0, "epsilon at the first step")
    end_e: float = arg(0.01, "epsilon after the exploration phase")
    exploration_fraction: float = arg(0.1, "share of total_timesteps spent lowering epsilon")
    learning_starts: int = arg(2_000, "environment steps of random actions before training")
    train_frequency: int = arg(1, "vector steps between gradient steps")
    max_grad_norm: float = arg(10.0, "gradients are clipped to this global L2 norm")
    embed_dim: int = arg(16, "embedding size per token")
    hidden_dim: int = arg(128, "width of the hidden layer")
    log_interval: int = arg(10_000, "environment steps between printed statistics")
    eval_tokens: int = arg(5_000, "validation tokens scored at the end")
    device: str = arg("auto", "'auto' (CUDA when available), 'cpu' or 'cuda'")
    torch_threads: int = arg(1, "CPU threads of torch; a network this small runs fastest on one")

    def __post_init__(self) -> None:
        for name in ("num_envs", "total_timesteps", "batch_size", "train_frequency"):
            check_int(name, getattr(self, name), 1)
        for name in ("target_network_frequency", "log_interval", "eval_tokens", "embed_dim"):
            check_int(name, getattr(self, name), 1)
        check_int("hidden_dim", self.hidden_dim, 1)
        check_int("torch_threads", self.torch_threads, 1)
        check_int("learning_starts", self.learning_starts, 0)
        # Each sub-environment needs two rows: a step and the row holding its next observation.
        check_int("buffer_size", self.buffer_size, 2 * self.num_envs)
        for name in ("gamma", "start_e", "end_e", "exploration_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        for name in ("tau", "learning_rate", "max_grad_norm"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        if self.tau > 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}.")


def library_config(args: Args) -> DQNConfig:
    """Return the ``agents.dqn.DQN`` settings that this script reproduces exactly."""
    return DQNConfig(
        total_steps=args.total_timesteps,
        learning_starts=args.learning_starts,
        encoder="mlp",
        embed_dim=args.embed_dim,
        hidden_dim=args.hidden_dim,
        num_layers=1,
        optimizer="adam",
        learning_rate=args.learning_rate,
        loss="huber",
        max_grad_norm=args.max_grad_norm,
        batch_size=args.batch_size,
        train_freq=args.train_frequency,
        gradient_steps=1,
        gamma=args.gamma,
        n_step=1,
        target_update_interval=args.target_network_frequency,
        tau=args.tau,
        buffer_size=args.buffer_size,
        exploration_initial_eps=args.start_e,
        exploration_final_eps=args.end_e,
        exploration_fraction=args.exploration_fraction,
        log_outputs=(),
    )


def linear_schedule(start: float, end: float, fraction: float, total: int, step: int) -> float:
    """Return epsilon after ``step`` steps: ``start`` moving linearly to ``end`` over
    ``fraction * total`` steps, then ``end``."""
    if fraction == 0.0:
        return end
    progress = min(step / total, 1.0)
    return start + (end - start) * min(progress / fraction, 1.0)


def random_valid_actions(valid_ids: np.ndarray, count: int, rng: np.random.Generator):
    """Draw ``count`` actions uniformly among ``valid_ids``."""
    picks = np.floor(rng.random(count) * len(valid_ids)).astype(np.int64)
    return valid_ids[picks]


class ReplayBuffer:
    """Each sub-environment's steps in order, in its own column of a ring of rows.

    Row t of a column contains the observation of step t, the action taken in it, the reward and
    whether the episode terminated. The next observation of step t is row t + 1, so a step
    becomes a transition once the following row is written. Under next-step autoreset, the
    step after an episode ends only resets that sub-environment: its row contains the episode's
    final observation and is marked ``valid=False``, so it is never sampled as a transition.
    """

    def __init__(self, capacity: int, num_envs: int, context_length: int, rng) -> None:
        self.rows = math.ceil(capacity / num_envs)
        self.num_envs = num_envs
        self.rng = rng
        self.obs = np.zeros((self.rows, num_envs, context_length), dtype=np.int64)
        self.actions = np.zeros((self.rows, num_envs), dtype=np.int64)
        self.rewards = np.zeros((self.rows, num_envs), dtype=np.float32)
        self.terminated = np.zeros((self.rows, num_envs), dtype=bool)
        self.valid = np.zeros((self.rows, num_envs), dtype=bool)
        self.count = 0  # rows written to every column so far

    def add(self, obs, actions, rewards, terminated, valid) -> None:
        slot = self.count % self.rows
        self.obs[slot] = obs
        self.actions[slot] = actions
        self.rewards[slot] = rewards
        self.terminated[slot] = terminated
        self.valid[slot] = valid
        self.count += 1

    def _complete(self, env_ids: np.ndarray, slots: np.ndarray) -> np.ndarray:
        # The newest row has no next observation yet.
        newest = (self.count - 1) % self.rows
        return self.valid[slots, env_ids] & (slots != newest)

    def can_sample(self) -> bool:
        filled = min(self.count, self.rows)
        slots, env_ids = np.nonzero(self.valid[:filled])
        return bool(self._complete(env_ids, slots).any())

    def sample(self, batch_size: int):
        """Draw ``batch_size`` complete transitions uniformly, with replacement.

        A (column, row) pair is drawn uniformly among the filled rows. Pairs that are not
        complete transitions are drawn again, which keeps the draw uniform over the complete
        ones.

        NOTE: agents.replay.ReplayBuffer gives up redrawing after 64 rounds and lists every
        complete row instead. The two agree unless some batch entry is rejected 64 times in a
        row, which needs a buffer made almost entirely of incomplete rows.
        """
        filled = min(self.count, self.rows)
        env_ids = np.zeros(batch_size, dtype=np.int64)
        slots = np.zeros(batch_size, dtype=np.int64)
        missing = np.arange(batch_size)
        while len(missing):
            drawn_envs = self.rng.integers(self.num_envs, size=len(missing))
            drawn_slots = self.rng.integers(filled, size=len(missing))
            ok = self._complete(drawn_envs, drawn_slots)
            env_ids[missing[ok]] = drawn_envs[ok]
            slots[missing[ok]] = drawn_slots[ok]
            missing = missing[~ok]
        next_slots = (slots + 1) % self.rows
        return (
            self.obs[slots, env_ids],
            self.actions[slots, env_ids],
            self.rewards[slots, env_ids],
            self.obs[next_slots, env_ids],
            self.terminated[slots, env_ids],
        )


def train(args: Args) -> QNetwork:
    """Train DQN with ``args``, print statistics and validation accuracy; return the Q-network."""
    device = resolve_device(args.device)
    torch.set_num_threads(args.torch_threads)
    envs = gym.make_vec(
        "LMNextToken-v0",
        num_envs=args.num_envs,
        vectorization_mode="vector_entry_point",
        corpus=args.corpus,
        tokenizer=args.tokenizer,
        context_length=args.context_length,
        episode_length=args.episode_length,
        split="train",
        reward="match",
    )
    vocab_size = int(envs.single_action_space.n)
    # LMNextToken-v0 has the same action mask in every state (pad and unk are never valid).
    action_mask = envs.unwrapped.action_masks()[0]
    valid_ids = np.flatnonzero(action_mask)
    invalid = torch.as_tensor(~action_mask, device=device)

    torch.manual_seed(args.seed)
    q_network = QNetwork(
        vocab_size, args.context_length, embed_dim=args.embed_dim, hidden_dim=args.hidden_dim
    ).to(device)
    target_network = QNetwork(
        vocab_size, args.context_length, embed_dim=args.embed_dim, hidden_dim=args.hidden_dim
    ).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate)
    action_seed, replay_seed, _ = np.random.SeedSequence(args.seed).spawn(3)
    action_rng = np.random.default_rng(action_seed)
    rb = ReplayBuffer(
        args.buffer_size, args.num_envs, args.context_length, np.random.default_rng(replay_seed)
    )

    obs, _ = envs.reset(seed=args.seed)
    previous_done = np.zeros(args.num_envs, dtype=bool)
    global_step = 0
    iteration = 0
    losses: list[float] = []
    rewards_seen: list[float] = []
    start_time = time.perf_counter()
    while global_step < args.total_timesteps:
        # Select actions: random before learning_starts, then epsilon-greedy over valid ids.
        if global_step < args.learning_starts:
            actions = random_valid_actions(valid_ids, args.num_envs, action_rng)
        else:
            epsilon = linear_schedule(
                args.start_e,
                args.end_e,
                args.exploration_fraction,
                args.total_timesteps,
                global_step,
            )
            explore = action_rng.random(args.num_envs) < epsilon
            with torch.no_grad():
                q_values = q_network(torch.as_tensor(obs, device=device))
            actions = q_values.masked_fill(invalid, float("-inf")).argmax(dim=1).cpu().numpy()
            actions[explore] = random_valid_actions(valid_ids, int(explore.sum()), action_rng)

        # Step every sub-environment.
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)

        # Store. A sub-environment whose episode ended at the previous step was only reset.
        rb.add(obs, actions, rewards, terminated, valid=~previous_done)
        rewards_seen.extend(rewards[~previous_done].tolist())
        previous_done = terminated | truncated
        obs = next_obs
        previous_step = global_step
        global_step += args.num_envs
        iteration += 1

        if (
            global_step >= args.learning_starts
            and iteration % args.train_frequency == 0
            and rb.can_sample()
        ):
            # Sample a batch of transitions.
            batch_obs, batch_actions, batch_rewards, batch_next_obs, batch_terminated = (
                torch.as_tensor(array, device=device) for array in rb.sample(args.batch_size)
            )

            # Compute the target without gradients; invalid actions never supply the max. A
            # terminated step has no next value, but a truncated one bootstraps from the final
            # observation stored in the row after it.
            with torch.no_grad():
                next_q = target_network(batch_next_obs).masked_fill(invalid, float("-inf"))
                next_value = next_q.max(dim=1).values
                td_target = batch_rewards + args.gamma * next_value * (~batch_terminated)

            # Loss on Q(s, a) of the action taken: gather picks one column per row.
            q_taken = q_network(batch_obs).gather(1, batch_actions[:, None]).squeeze(1)
            loss = F.smooth_l1_loss(q_taken, td_target)

            # Optimizer step.
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
            optimizer.step()
            losses.append(loss.item())

        # Target sync each time global_step passes a multiple of target_network_frequency.
        if global_step // args.target_network_frequency > (
            previous_step // args.target_network_frequency
        ):
            with torch.no_grad():
                for target_param, param in zip(
                    target_network.parameters(), q_network.parameters(), strict=True
                ):
                    target_param.lerp_(param, args.tau)

        if global_step // args.log_interval > previous_step // args.log_interval:
            steps_per_second = global_step / (time.perf_counter() - start_time)
            mean_loss = float(np.mean(losses)) if losses else float("nan")
            print(
                f"global_step={global_step} mean_reward={np.mean(rewards_seen):.4f} "
                f"loss={mean_loss:.5f} steps_per_second={steps_per_second:.0f}",
                flush=True,
            )
            losses.clear()
            rewards_seen.clear()
    envs.close()

    # Greedy accuracy on the first eval_tokens targets of the validation split.
    validation = load_windows(args.corpus, args.tokenizer, None, "validation", args.context_length)
    positions = validation.targets[: args.eval_tokens]
    with torch.no_grad():
        q_values = q_network(torch.as_tensor(validation.windows(positions), device=device))
    predictions = q_values.masked_fill(invalid, float("-inf")).argmax(dim=1).cpu().numpy()
    accuracy = float(np.mean(predictions == validation.stream[positions]))
    print(f"validation accuracy={accuracy:.4f} over {len(positions)} tokens", flush=True)
    return q_network


def parse_args(argv: list[str] | None = None) -> Args:
    """Build :class:`Args` from the command line; each field is an option of the same name."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.reference_dqn",
        description="Train the single-file reference DQN on LMNextToken-v0.",
    )
    for option in fields(Args):
        parser.add_argument(
            "--" + option.name.replace("_", "-"),
            type=type(option.default),
            default=option.default,
            help=f"{option.metadata['help']} (default: {option.default})",
        )
    return Args(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    """Run the script with command-line arguments ``argv``; return the exit status 0."""
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
