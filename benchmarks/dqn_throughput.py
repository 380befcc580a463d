"""End-to-end DQN training throughput: the custom agent against Stable-Baselines3's DQN.

Each cell of the grid trains one agent on ``LMNextToken-v0`` and reports environment steps per
wall-clock second after ``learning_starts``: acting, stepping, storing, sampling and gradient
updates all count. The agents are:

* ``custom``: :class:`agents.dqn.DQN` on the native batch (``vector_entry_point``);
* ``sb3_native``: SB3's DQN on the native batch behind :func:`lm_envs.sb3.vec_env.make_sb3_env`;
* ``sb3_dummy``: SB3's DQN on ``DummyVecEnv`` over ``num_envs`` single environments.

Both sides get the same network and the same replay ratio. SB3's Q-network is
:class:`~lm_envs.sb3.extractors.TokenWindowExtractor` followed by one linear layer
(``net_arch=[]``), like :class:`agents.networks.QNetwork`; the run stops when the parameter
counts differ. The replay ratio is gradient updates x batch size per environment step, so a
setting fixes ``num_envs``, ``train_freq`` (in vector steps), ``gradient_steps`` and
``batch_size``. Buffer size, ``learning_starts``, target update interval, exploration schedule,
learning rate, Huber loss and gradient clipping are the same for every agent. Torch runs on ``--threads`` threads
(1 by default, a single-core comparison).

The two DQNs still differ in ways that change the work per step:

* with ``gamma=0`` (the default here, natural for this teacher-forced task) the custom agent
  skips the target network's forward pass, while SB3 always runs it;
* SB3's epsilon-greedy draws one coin per vector step, so with probability epsilon the whole
  batch acts randomly and no forward pass is run. The custom agent draws one coin per
  sub-environment and runs the forward pass unless every sub-environment explores;
* SB3's DQN ignores action masks, so it may pick the pad or unknown token.

Each cell also reports steps per CPU-second of the process, which moves less than the wall-clock
rate when other processes share the machine, and the load average before it started.
``--repeats`` runs the grid several times and the tables show medians. Results go atomically
into ``--output-dir``: ``results.json`` (every cell, the settings, the machine and the commit)
and ``results.md`` (tables with the ratio custom / SB3 per setting).

Usage::

    python -m benchmarks.dqn_throughput --output-dir benchmarks/results/dqn_throughput
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import torch
from stable_baselines3 import DQN as SB3DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.dqn import DQN, DQNConfig
from benchmarks.common import git_commit, machine_description, markdown_table, write_json
from lm_envs.cache import atomic_write_text
from lm_envs.sb3.extractors import TokenWindowExtractor
from lm_envs.sb3.vec_env import make_sb3_env

ENV_ID = "LMNextToken-v0"
AGENTS = ("custom", "sb3_native", "sb3_dummy")
MAX_GRAD_NORM = 10.0
TAU = 1.0


@dataclass(frozen=True)
class Setting:
    """One replay-ratio setting: ``gradient_steps * batch_size / (train_freq * num_envs)``."""

    num_envs: int
    replay_ratio: float
    batch_size: int
    train_freq: int  # vector steps between trainings
    gradient_steps: int  # updates per training

    @classmethod
    def from_ratio(cls, num_envs: int, replay_ratio: float, batch_size: int) -> Setting:
        """Pick the ``train_freq`` or ``gradient_steps`` that gives ``replay_ratio`` exactly.

        Raises:
            ValueError: the ratio needs a fractional number of updates per vector step.
        """
        updates_per_vector_step = replay_ratio * num_envs / batch_size
        if updates_per_vector_step >= 1:
            train_freq, gradient_steps = 1, round(updates_per_vector_step)
        else:
            train_freq, gradient_steps = round(1 / updates_per_vector_step), 1
        exact = gradient_steps * batch_size / (train_freq * num_envs)
        if abs(exact - replay_ratio) > 1e-9 * replay_ratio:
            raise ValueError(
                f"replay ratio {replay_ratio} with num_envs={num_envs} and batch_size="
                f"{batch_size} needs {updates_per_vector_step:g} updates per vector step; pick "
                "values where this is a whole number or the reciprocal of one."
            )
        return cls(num_envs, replay_ratio, batch_size, train_freq, gradient_steps)


@dataclass(frozen=True)
class Shared:
    """Settings that every agent of a cell gets unchanged. Steps are environment steps."""

    total_steps: int
    learning_starts: int
    buffer_size: int
    target_update_interval: int
    learning_rate: float
    gamma: float
    exploration_fraction: float
    exploration_initial_eps: float
    exploration_final_eps: float
    embed_dim: int
    hidden_dim: int


def parameter_count(module: torch.nn.Module) -> int:
    """Return the number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def run_custom(setting: Setting, shared: Shared, env_kwargs: dict, device: str, seed: int) -> dict:
    """Train the custom DQN for ``shared.total_steps`` and time the part after learning_starts."""
    env = gym.make_vec(
        ENV_ID,
        num_envs=setting.num_envs,
        vectorization_mode="vector_entry_point",
        **env_kwargs,
    )
    config = DQNConfig(
        total_steps=shared.total_steps,
        learning_starts=shared.learning_starts,
        encoder="mlp",
        embed_dim=shared.embed_dim,
        hidden_dim=shared.hidden_dim,
        learning_rate=shared.learning_rate,
        loss="huber",
        max_grad_norm=MAX_GRAD_NORM,
        batch_size=setting.batch_size,
        train_freq=setting.train_freq,
        gradient_steps=setting.gradient_steps,
        gamma=shared.gamma,
        target_update_interval=shared.target_update_interval,
        tau=TAU,
        buffer_size=shared.buffer_size,
        exploration_initial_eps=shared.exploration_initial_eps,
        exploration_final_eps=shared.exploration_final_eps,
        exploration_fraction=shared.exploration_fraction,
        log_outputs=(),
        log_interval=shared.total_steps,
        eval_interval=shared.total_steps,
    )
    with warnings.catch_warnings():
        # The gamma > 0 warning on a teacher-forced task concerns learning, not speed.
        warnings.filterwarnings("ignore", message="gamma=", category=UserWarning)
        agent = DQN(env, config, device=device, seed=seed)

    # The warm-up with random actions is not timed. The second learn() call continues the
    # same rollout, so the two calls train exactly as one call would.
    agent.learn(shared.learning_starts)
    start_steps = agent.num_timesteps
    start, start_cpu = time.perf_counter(), time.process_time()
    agent.learn(shared.total_steps - agent.num_timesteps)
    elapsed = time.perf_counter() - start
    elapsed_cpu = time.process_time() - start_cpu
    timed_steps = agent.num_timesteps - start_steps
    env.close()

    return {
        "parameters": parameter_count(agent.q_network),
        "timed_steps": timed_steps,
        "timed_seconds": elapsed,
        "timed_cpu_seconds": elapsed_cpu,
        "steps_per_second": timed_steps / elapsed,
        "steps_per_cpu_second": timed_steps / max(elapsed_cpu, 1e-9),
        "n_updates": agent.n_updates,
        "device": str(agent.device),
    }


class _ClockAfterLearningStarts(BaseCallback):
    """Record the time and step count of the first vector step at or past learning_starts."""

    def __init__(self, learning_starts: int) -> None:
        super().__init__()
        self.learning_starts = learning_starts
        self.start: float | None = None
        self.start_cpu = 0.0
        self.start_steps = 0

    def _on_step(self) -> bool:
        if self.start is None and self.num_timesteps >= self.learning_starts:
            self.start, self.start_cpu = time.perf_counter(), time.process_time()
            self.start_steps = self.num_timesteps
        return True


def run_sb3(
    setting: Setting,
    shared: Shared,
    env_kwargs: dict,
    device: str,
    seed: int,
    vectorization: str,
) -> dict:
    """Train SB3's DQN on the native adapter or DummyVecEnv and time it after learning_starts."""
    if vectorization == "native":
        env = make_sb3_env(ENV_ID, setting.num_envs, seed=seed, **env_kwargs)
    else:
        env = DummyVecEnv([lambda: gym.make(ENV_ID, **env_kwargs)] * setting.num_envs)
        env.seed(seed)

    model = SB3DQN(
        "MlpPolicy",
        env,
        learning_rate=shared.learning_rate,
        buffer_size=shared.buffer_size,
        learning_starts=shared.learning_starts,
        batch_size=setting.batch_size,
        tau=TAU,
        gamma=shared.gamma,
        train_freq=(setting.train_freq, "step"),
        gradient_steps=setting.gradient_steps,
        target_update_interval=shared.target_update_interval,
        exploration_fraction=shared.exploration_fraction,
        exploration_initial_eps=shared.exploration_initial_eps,
        exploration_final_eps=shared.exploration_final_eps,
        max_grad_norm=MAX_GRAD_NORM,
        policy_kwargs={
            "features_extractor_class": TokenWindowExtractor,
            "features_extractor_kwargs": {
                "encoder": "mlp",
                "embed_dim": shared.embed_dim,
                "hidden_dim": shared.hidden_dim,
            },
            "net_arch": [],
        },
        device=device,
        seed=seed,
        verbose=0,
    )

    clock = _ClockAfterLearningStarts(shared.learning_starts)
    # log_interval=None: SB3 writes no episode summaries, its cheapest setting.
    model.learn(shared.total_steps, callback=clock, log_interval=None)
    end, end_cpu = time.perf_counter(), time.process_time()
    env.close()
    if clock.start is None:
        raise RuntimeError(
            f"SB3 never reached learning_starts={shared.learning_starts} in "
            f"{shared.total_steps} steps. Raise --total-steps above --learning-starts."
        )
    timed_steps = model.num_timesteps - clock.start_steps
    elapsed = end - clock.start
    elapsed_cpu = end_cpu - clock.start_cpu

    return {
        "parameters": parameter_count(model.q_net),
        "timed_steps": timed_steps,
        "timed_seconds": elapsed,
        "timed_cpu_seconds": elapsed_cpu,
        "steps_per_second": timed_steps / elapsed,
        "steps_per_cpu_second": timed_steps / max(elapsed_cpu, 1e-9),
        "n_updates": int(model._n_updates),
        "device": str(model.device),
    }


def run_cell(
    agent: str, setting: Setting, shared: Shared, env_kwargs: dict, device: str, seed: int
) -> dict:
    """Run one (agent, setting) cell and return its row of results."""
    gc.collect()
    load_before = os.getloadavg()[0]
    wall_start = time.perf_counter()
    if agent == "custom":
        result = run_custom(setting, shared, env_kwargs, device, seed)
    else:
        vectorization = agent.removeprefix("sb3_")
        result = run_sb3(setting, shared, env_kwargs, device, seed, vectorization)
    return {
        "agent": agent,
        **asdict(setting),
        "total_steps": shared.total_steps,
        **result,
        "cell_seconds": time.perf_counter() - wall_start,
        "load_average_before": load_before,
    }


def summarize(results: list[dict], agents: list[str]) -> list[dict]:
    """Return one entry per setting: each agent's median rates and the ratios custom / SB3.

    Rates are medians over the repeats. ``n_updates`` of every agent is kept as a check that
    both sides took the same number of gradient updates.
    """
    settings: dict[tuple[int, float], dict] = {}
    for row in results:
        key = (row["num_envs"], row["replay_ratio"])
        entry = settings.setdefault(
            key,
            {
                name: row[name]
                for name in (
                    "num_envs",
                    "replay_ratio",
                    "batch_size",
                    "train_freq",
                    "gradient_steps",
                )
            },
        )
        entry.setdefault("runs", {}).setdefault(row["agent"], []).append(row)
    for entry in settings.values():
        runs = entry.pop("runs")
        for agent in agents:
            rows = runs.get(agent, [])
            if not rows:
                continue
            entry[agent] = {
                "steps_per_second": statistics.median(r["steps_per_second"] for r in rows),
                "steps_per_cpu_second": statistics.median(r["steps_per_cpu_second"] for r in rows),
                "n_updates": rows[0]["n_updates"],
            }
        if "custom" not in entry:
            continue
        for other in ("sb3_native", "sb3_dummy"):
            if other in entry:
                for rate in ("steps_per_second", "steps_per_cpu_second"):
                    entry[f"custom_over_{other}_{rate}"] = (
                        entry["custom"][rate] / entry[other][rate]
                    )
    return list(settings.values())


def _rate_table(summary: list[dict], rate: str) -> str:
    headers = [
        "num_envs",
        "replay ratio",
        "train_freq",
        "gradient_steps",
        "custom",
        "SB3 native",
        "SB3 DummyVecEnv",
        "custom / SB3 native",
        "custom / SB3 DummyVecEnv",
        "updates (custom, native, dummy)",
    ]
    rows = []
    for entry in summary:
        agents = [entry.get(name) for name in AGENTS]
        rows.append(
            [
                entry["num_envs"],
                entry["replay_ratio"],
                entry["train_freq"],
                entry["gradient_steps"],
                *[None if a is None else round(a[rate]) for a in agents],
                entry.get(f"custom_over_sb3_native_{rate}"),
                entry.get(f"custom_over_sb3_dummy_{rate}"),
                ", ".join("-" if a is None else str(a["n_updates"]) for a in agents),
            ]
        )
    return markdown_table(headers, rows)


def markdown_report(payload: dict) -> str:
    """Return the Markdown page: command, machine, settings and the two tables of rates."""
    machine = payload["machine"]
    run = payload["run"]
    shared = run["shared"]
    lines = [
        "# DQN training throughput: custom agent vs Stable-Baselines3 DQN",
        "",
        f"Command: `{run['command']}` (whole run {run['wall_seconds']:.0f} s).",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']}, "
        f"torch threads {run['torch_threads']}, device {', '.join(run['devices_used'])}, commit "
        f"{payload['commit']}. Load average (1 min) before the cells: "
        f"{min(run['load_averages']):.1f} to {max(run['load_averages']):.1f}.",
        "",
        f"Task: {ENV_ID}, corpus {run['corpus']}, tokenizer {run['tokenizer']}, "
        f"V={run['vocab_size']}, L={run['context_length']}. Q-network on both sides: MLP "
        f"encoder (embed_dim {shared['embed_dim']}, hidden_dim {shared['hidden_dim']}) and "
        f"a linear head, {run['parameters']} parameters.",
        "",
        f"Shared: batch {run['batch_size']}, total_steps {shared['total_steps']}, "
        f"learning_starts {shared['learning_starts']}, buffer {shared['buffer_size']}, target "
        f"update every {shared['target_update_interval']} steps, gamma {shared['gamma']}, "
        f"epsilon {shared['exploration_initial_eps']} -> {shared['exploration_final_eps']} "
        f"over {shared['exploration_fraction']} of total_steps, Adam lr "
        f"{shared['learning_rate']}, Huber loss, max_grad_norm {run['max_grad_norm']}. Median of "
        f"{run['repeats']} run(s) per cell.",
        "",
        "## Environment steps per wall-clock second after learning_starts",
        "",
        _rate_table(payload["summary"], "steps_per_second"),
        "## Environment steps per CPU-second of the process (less sensitive to other load)",
        "",
        _rate_table(payload["summary"], "steps_per_cpu_second"),
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 256])
    parser.add_argument(
        "--replay-ratios",
        type=float,
        nargs="+",
        default=[1.0, 0.25],
        help="gradient updates x batch size per environment step",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--total-steps",
        type=int,
        default=81_920,
        help="environment steps per cell, learning_starts included",
    )
    parser.add_argument("--learning-starts", type=int, default=4_096)
    parser.add_argument("--buffer-size", type=int, default=65_536)
    parser.add_argument("--target-update-interval", type=int, default=8_192)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument(
        "--gamma",
        type=float,
        default=0.0,
        help="discount. 0 suits the teacher-forced task, and with it the custom agent skips "
        "the target network's forward pass, which SB3 still runs",
    )
    parser.add_argument("--exploration-fraction", type=float, default=0.1)
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--corpus", default="pydoc", help="corpus spec of LMNextToken-v0")
    parser.add_argument("--tokenizer", default="char")
    parser.add_argument("--context-length", type=int, default=64)
    parser.add_argument("--device", default="auto", help='"auto" (CUDA when present) or "cpu"')
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of the whole grid (the tables show the median of each cell)",
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("benchmarks/results/dqn_throughput")
    )
    return parser


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[Setting]:
    for name in (
        "batch_size",
        "total_steps",
        "buffer_size",
        "target_update_interval",
        "threads",
        "repeats",
        "embed_dim",
        "hidden_dim",
        "context_length",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if any(n < 1 for n in args.num_envs):
        parser.error(f"--num-envs must all be >= 1, got {args.num_envs}")
    if any(r <= 0 for r in args.replay_ratios):
        parser.error(f"--replay-ratios must all be > 0, got {args.replay_ratios}")
    if not 0 <= args.learning_starts < args.total_steps:
        parser.error(
            f"--learning-starts must be in [0, --total-steps), got {args.learning_starts} with "
            f"--total-steps {args.total_steps}, because the timed part starts at learning_starts"
        )
    for name in ("gamma", "exploration_fraction"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(args, name)}")
    if not args.learning_rate > 0:
        parser.error(f"--learning-rate must be > 0, got {args.learning_rate}")
    settings = []
    for num_envs in args.num_envs:
        for ratio in args.replay_ratios:
            try:
                settings.append(Setting.from_ratio(num_envs, ratio, args.batch_size))
            except ValueError as error:
                parser.error(str(error))
    return settings


def main(argv: list[str] | None = None) -> int:
    """Run the grid, print each cell and write results.json and results.md. Return 0."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = _check_args(parser, args)
    command = shlex.join(
        ["python", "-m", "benchmarks.dqn_throughput", *(sys.argv[1:] if argv is None else argv)]
    )
    torch.set_num_threads(args.threads)
    shared = Shared(
        total_steps=args.total_steps,
        learning_starts=args.learning_starts,
        buffer_size=args.buffer_size,
        target_update_interval=args.target_update_interval,
        learning_rate=args.learning_rate,
        gamma=args.gamma,
        exploration_fraction=args.exploration_fraction,
        exploration_initial_eps=1.0,
        exploration_final_eps=0.05,
        embed_dim=args.embed_dim,
        hidden_dim=args.hidden_dim,
    )
    env_kwargs = {
        "corpus": args.corpus,
        "tokenizer": args.tokenizer,
        "context_length": args.context_length,
    }
    vocab_size = int(gym.make(ENV_ID, **env_kwargs).action_space.n)

    wall_start = time.perf_counter()
    results = []
    for repeat in range(args.repeats):
        for setting in settings:
            for agent in args.agents:
                row = run_cell(agent, setting, shared, env_kwargs, args.device, args.seed)
                row["repeat"] = repeat
                results.append(row)
                print(
                    f"{agent:>10} num_envs={setting.num_envs:<4} ratio={setting.replay_ratio:<5g} "
                    f"train_freq={setting.train_freq:<3} parameters={row['parameters']} "
                    f"updates={row['n_updates']:<5}: {row['steps_per_second']:>9,.0f} steps/s, "
                    f"{row['steps_per_cpu_second']:>9,.0f} steps/CPU-s",
                    flush=True,
                )
    counts = sorted({row["parameters"] for row in results})
    if len(counts) != 1:
        raise RuntimeError(
            f"the Q-networks have different parameter counts {counts}, but the comparison "
            "needs the same network on both sides. Check the policy_kwargs of run_sb3."
        )
    print(f"parameters per Q-network: {counts[0]} (every agent)")

    payload = {
        "machine": machine_description(),
        "commit": git_commit(),
        "run": {
            "command": command,
            "env_id": ENV_ID,
            "corpus": args.corpus,
            "tokenizer": args.tokenizer,
            "vocab_size": vocab_size,
            "context_length": args.context_length,
            "device": args.device,
            "devices_used": sorted({row["device"] for row in results}),
            "torch_threads": torch.get_num_threads(),
            "seed": args.seed,
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "parameters": counts[0],
            "shared": asdict(shared),
            "max_grad_norm": MAX_GRAD_NORM,
            "tau": TAU,
            "load_averages": [row["load_average_before"] for row in results],
            "wall_seconds": time.perf_counter() - wall_start,
        },
        "summary": summarize(results, args.agents),
        "results": results,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.output_dir / "results.json", payload)
    atomic_write_text(args.output_dir / "results.md", markdown_report(payload))
    print(f"wrote {args.output_dir / 'results.json'} and {args.output_dir / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
