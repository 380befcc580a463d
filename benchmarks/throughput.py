"""Measure environment steps per second for every way of stepping LMNextToken-v0.

Implementations, all in one process and one run:

* ``single``: one ``gym.make`` environment stepped in a Python loop (num_envs = 1 only);
* ``sync``: Gymnasium's ``SyncVectorEnv`` over single environments;
* ``native``: the native batch (``vectorization_mode="vector_entry_point"``);
* ``sb3_dummy``: SB3's ``DummyVecEnv`` over single environments;
* ``sb3_native``: the native batch behind the SB3 adapter (``lm_envs.sb3.vec_env.LMVecEnv``).

Each cell steps for ``--seconds`` of wall time with random valid actions drawn in advance and
reports wall-clock steps per second and steps per CPU-second of this process (``process_time``),
which is the per-core rate for these single-threaded loops.

Usage::

    python -m benchmarks.throughput --output-dir benchmarks/results/throughput
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import lm_envs  # noqa: F401  (registers the ids)
from benchmarks.common import git_commit, machine_description, markdown_table, write_json

IMPLEMENTATIONS = ("single", "sync", "native", "sb3_dummy", "sb3_native")


def _make(impl: str, num_envs: int, env_kwargs: dict):
    """Return (step function taking an action batch, cleanup function)."""
    if impl == "single":
        env = gym.make("LMNextToken-v0", **env_kwargs)
        env.reset(seed=0)

        def step(actions):
            _, _, terminated, truncated, _ = env.step(int(actions[0]))
            if terminated or truncated:
                env.reset()

        return step, env.close
    if impl == "sync":
        env = gym.make_vec(
            "LMNextToken-v0", num_envs=num_envs, vectorization_mode="sync", **env_kwargs
        )
    elif impl == "native":
        env = gym.make_vec(
            "LMNextToken-v0",
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            **env_kwargs,
        )
    elif impl == "sb3_dummy":
        from stable_baselines3.common.vec_env import DummyVecEnv

        env = DummyVecEnv(
            [lambda: gym.make("LMNextToken-v0", **env_kwargs) for _ in range(num_envs)]
        )
        env.seed(0)
        env.reset()
        return (lambda actions: env.step(actions)), env.close
    elif impl == "sb3_native":
        from lm_envs.sb3.vec_env import make_sb3_env

        env = make_sb3_env("LMNextToken-v0", num_envs=num_envs, seed=0, **env_kwargs)
        env.reset()
        return (lambda actions: env.step(actions)), env.close
    else:
        raise ValueError(f"unknown implementation {impl!r}; choose from {list(IMPLEMENTATIONS)}.")
    env.reset(seed=0)
    return (lambda actions: env.step(actions)), env.close


def measure(impl: str, num_envs: int, context_length: int, seconds: float, vocab_size: int) -> dict:
    """Step one implementation for about ``seconds`` and return its rates."""
    env_kwargs = {"context_length": context_length, "episode_length": 128}
    step, close = _make(impl, num_envs, env_kwargs)

    rng = np.random.default_rng(0)
    action_bank = rng.integers(2, vocab_size, size=(64, num_envs))
    for i in range(3):  # warm-up
        step(action_bank[i])

    steps = 0
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    deadline = wall_start + seconds
    while True:
        for i in range(16):
            step(action_bank[(steps + i) % 64])
        steps += 16
        if time.perf_counter() >= deadline:
            break
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    close()

    env_steps = steps * num_envs
    return {
        "implementation": impl,
        "num_envs": num_envs,
        "context_length": context_length,
        "env_steps": env_steps,
        "wall_s": wall,
        "steps_per_second": env_steps / wall,
        "steps_per_cpu_second": env_steps / max(cpu, 1e-9),
        "microseconds_per_env_step": 1e6 * wall / env_steps,
    }


def summarize(results: list[dict]) -> dict:
    """Return the headline ratios at num_envs=1024, context_length=128 when measured."""
    by_key = {(r["implementation"], r["num_envs"], r["context_length"]): r for r in results}
    native = by_key.get(("native", 1024, 128))
    sync = by_key.get(("sync", 1024, 128))
    adapter = by_key.get(("sb3_native", 1024, 128))
    summary: dict[str, float] = {}
    if native and sync:
        summary["native_over_sync_1024x128"] = native["steps_per_second"] / sync["steps_per_second"]
    if native:
        summary["native_steps_per_cpu_second_1024x128"] = native["steps_per_cpu_second"]
    if native and adapter:
        summary["sb3_adapter_overhead_us_per_env_step_1024x128"] = (
            adapter["microseconds_per_env_step"] - native["microseconds_per_env_step"]
        )
    return summary


def plot(results: list[dict], path: Path) -> None:
    """Write a PNG of steps per second against num_envs, one panel per context length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({r["context_length"] for r in results})
    fig, axes = plt.subplots(1, len(lengths), figsize=(5 * len(lengths), 4), squeeze=False)
    for axis, length in zip(axes[0], lengths, strict=True):
        for impl in IMPLEMENTATIONS:
            rows = sorted(
                (
                    r
                    for r in results
                    if r["implementation"] == impl and r["context_length"] == length
                ),
                key=lambda r: r["num_envs"],
            )
            if rows:
                axis.plot(
                    [r["num_envs"] for r in rows],
                    [r["steps_per_second"] for r in rows],
                    marker="o",
                    label=impl,
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("num_envs")
        axis.set_ylabel("environment steps per second")
        axis.set_title(f"context_length={length}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--num-envs",
        type=int,
        nargs="+",
        default=[1, 16, 256, 1024, 4096],
        help="batch sizes to measure (1024 is where the headline ratios are taken)",
    )
    parser.add_argument(
        "--context-lengths",
        type=int,
        nargs="+",
        default=[32, 128, 1024],
        help="observation window lengths in tokens",
    )
    parser.add_argument(
        "--implementations",
        nargs="+",
        default=list(IMPLEMENTATIONS),
        choices=IMPLEMENTATIONS,
        help="which ways of stepping to measure",
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="wall-clock seconds per cell")
    parser.add_argument(
        "--max-python-envs",
        type=int,
        default=4096,
        help="skip sync and sb3_dummy above this many sub-environments",
    )
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results/throughput"))
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")

    vocab_size = gym.make("LMNextToken-v0").action_space.n
    results = []
    for length in args.context_lengths:
        for impl in args.implementations:
            sizes = [1] if impl == "single" else args.num_envs
            for num_envs in sizes:
                if impl in ("sync", "sb3_dummy") and num_envs > args.max_python_envs:
                    continue
                row = measure(impl, num_envs, length, args.seconds, vocab_size)
                results.append(row)
                print(
                    f"{impl:>10} num_envs={num_envs:>5} L={length:>5}: "
                    f"{row['steps_per_second']:>14,.0f} steps/s",
                    flush=True,
                )

    summary = summarize(results)
    payload = {
        "machine": machine_description(),
        "commit": git_commit(),
        "corpus": "pydoc",
        "tokenizer": "char",
        "summary": summary,
        "results": results,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.output_dir / "throughput.json", payload)
    headers = [
        "implementation",
        "num_envs",
        "context_length",
        "steps/s",
        "steps/CPU-s",
        "us/env-step",
    ]
    rows = [
        [
            r["implementation"],
            r["num_envs"],
            r["context_length"],
            r["steps_per_second"],
            r["steps_per_cpu_second"],
            r["microseconds_per_env_step"],
        ]
        for r in results
    ]
    table = markdown_table(headers, rows)
    summary_lines = "".join(f"- {key}: {value:.4g}\n" for key, value in summary.items())
    from lm_envs.cache import atomic_write_text

    atomic_write_text(args.output_dir / "throughput.md", summary_lines + "\n" + table)
    plot(results, args.output_dir / "throughput.png")
    print(summary_lines, end="")
    return payload


if __name__ == "__main__":
    main()
