"""Validation accuracy against environment steps for the DQN variants on LMNextToken-v0.

Every variant starts from the ``LMNextToken-v0`` preset (``agents/presets/dqn.yaml``) and
changes one thing:

* ``dqn``: the preset, gamma 0 (each step is a contextual bandit decision);
* ``dueling``: dueling head;
* ``prioritized``: prioritized replay (alpha 0.6, beta 0.4 -> 1);
* ``soft-q``: soft Q-learning. With gamma 0 the soft target equals the reward, so what changes
  is the acting: Boltzmann sampling from softmax(Q / alpha) instead of epsilon-greedy;
* ``supervised-init``: Q-network and target network copied from a supervised next-token model
  of the same network, trained with the DQN's learning rate and batch size on
  ``--supervised-examples`` examples of the training split before the first environment step
  (those examples are not counted as environment steps);
* ``dqn-gamma0.5``, ``double``, ``n-step``: gamma 0.5. With gamma 0 the target is the reward
  alone, so Double DQN is exactly plain DQN and an n-step return is the one-step reward.
  Under teacher forcing the future rewards do not depend on the action, so gamma > 0 only adds
  an action-independent term to every target, estimated from noisy Q-values. ``dqn-gamma0.5``
  is plain DQN with that gamma, the baseline that Double DQN and 3-step returns are compared
  with.

Each (variant, seed) run trains for ``--total-steps`` environment steps and scores greedy
accuracy on a fixed random subset of ``--eval-tokens`` validation targets every
``--eval-interval`` steps, through the ``learn`` callback. The unigram model of the training
split is scored on the same subset as a reference. Runs go to ``--workers`` processes, each
with one torch thread. Results are written atomically into ``--output-dir``: ``results.json``
(every curve), ``results.md`` (a table) and ``accuracy.png`` (mean curve per variant with a
min/max band over the seeds).

Usage::

    python -m benchmarks.dqn_variants --corpus /path/to/tinyshakespeare.txt --tokenizer char \\
        --output-dir benchmarks/results/dqn_variants
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import shlex
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.baselines import UnigramAgent, resolve_device
from agents.dqn import DQN
from agents.init import pretrain_supervised
from agents.presets import preset_config
from benchmarks.common import git_commit, machine_description, markdown_table, write_json
from lm_envs.cache import atomic_write_bytes, atomic_write_text
from lm_envs.data import TokenWindows, load_corpus_data, load_windows

ENV_ID = "LMNextToken-v0"
EVAL_SPLIT = "validation"
# Seed of the validation subset: the same tokens for every variant and seed.
SUBSET_SEED = 12345
BOOTSTRAP_GAMMA = 0.5


@dataclass(frozen=True)
class Variant:
    """One line of the comparison: config overrides on top of the preset."""

    name: str
    description: str
    overrides: dict = field(default_factory=dict)
    supervised_init: bool = False


VARIANTS = (
    Variant("dqn", "preset: plain DQN, gamma 0"),
    Variant("dueling", "dueling head", {"dueling": True}),
    Variant("prioritized", "prioritized replay", {"prioritized_replay": True}),
    # With Q-values in [0, 1], alpha 0.1 (the default) acts almost uniformly at first: on
    # tinyshakespeare it reached 0.18 accuracy in 100k steps, alpha 0.02 reached 0.26 (seed 0).
    Variant(
        "soft-q",
        "soft Q-learning, alpha 0.02 (Boltzmann acting)",
        {"soft_q_learning": True, "soft_q_alpha": 0.02},
    ),
    Variant("supervised-init", "weights of a supervised model", supervised_init=True),
    Variant("dqn-gamma0.5", "plain DQN, gamma 0.5", {"gamma": BOOTSTRAP_GAMMA}),
    Variant("double", "Double DQN, gamma 0.5", {"gamma": BOOTSTRAP_GAMMA, "double_dqn": True}),
    Variant("n-step", "3-step returns, gamma 0.5", {"gamma": BOOTSTRAP_GAMMA, "n_step": 3}),
)
VARIANT_NAMES = tuple(variant.name for variant in VARIANTS)


def _int_at_least(minimum: int, what: str):
    """Return an argparse type that parses an int >= ``minimum``; ``what`` names the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}; pass an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{what} {value} is below {minimum}; pass an integer >= {minimum}"
            )
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dqn_variants",
        description="Validation accuracy against environment steps for DQN variants on "
        "LMNextToken-v0.",
    )

    data = parser.add_argument_group("data")
    data.add_argument(
        "--corpus",
        default="pydoc",
        help="'pydoc' (embedded), a UTF-8 text file or folder, or 'hf:NAME' (default: pydoc)",
    )
    data.add_argument(
        "--tokenizer", default="char", help="'char', 'byte', 'bpe' or a tokenizer.json path"
    )
    data.add_argument("--vocab-size", type=_int_at_least(4, "vocab size"), help="required for bpe")
    data.add_argument(
        "--context-length",
        type=_int_at_least(1, "context length"),
        default=16,
        help="tokens per window (default: 16)",
    )

    budget = parser.add_argument_group("training budget")
    budget.add_argument(
        "--num-envs",
        type=_int_at_least(1, "number of sub-environments"),
        default=16,
        help="sub-environments (default: 16)",
    )
    budget.add_argument(
        "--total-steps",
        type=_int_at_least(1, "step count"),
        default=100_000,
        help="environment steps per run (default: 100000)",
    )
    budget.add_argument(
        "--learning-starts",
        type=_int_at_least(0, "step count"),
        help="random-action steps before training (default: the preset's)",
    )
    budget.add_argument(
        "--supervised-examples",
        type=_int_at_least(1, "example count"),
        default=20_000,
        help="training examples of the supervised model behind supervised-init (default: 20000)",
    )

    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument(
        "--eval-interval",
        type=_int_at_least(1, "step count"),
        default=5_000,
        help="environment steps between evaluations (default: 5000)",
    )
    evaluation.add_argument(
        "--eval-tokens",
        type=_int_at_least(1, "token count"),
        default=5_000,
        help="validation targets in the fixed evaluation subset (default: 5000)",
    )

    grid = parser.add_argument_group("grid and output")
    grid.add_argument(
        "--seeds",
        type=_int_at_least(0, "seed"),
        nargs="+",
        default=[0, 1, 2],
        help="seeds (default: 0 1 2)",
    )
    grid.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANT_NAMES,
        default=list(VARIANT_NAMES),
        help="variants to run (default: all)",
    )
    grid.add_argument(
        "--device",
        default="auto",
        help="torch device of every run: 'auto' (CUDA when available), 'cpu' or 'cuda' "
        "(default: auto)",
    )
    grid.add_argument(
        "--workers",
        type=_int_at_least(1, "number of workers"),
        default=2,
        help="parallel processes, one torch thread each; 1 runs in this process (default: 2)",
    )
    grid.add_argument(
        "--output-dir",
        type=Path,
        default=Path("benchmarks/results/dqn_variants"),
        help="folder for results.json, results.md and accuracy.png",
    )
    return parser


# --------------------------------------------------------------------------------------------
# One run


def evaluation_subset(windows: TokenWindows, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (windows, true next tokens) of ``count`` seeded random targets, in stream order."""
    rng = np.random.default_rng(SUBSET_SEED)
    count = min(count, len(windows.targets))
    positions = np.sort(rng.choice(windows.targets, size=count, replace=False))
    return windows.windows(positions), windows.stream[positions].astype(np.int64)


def _accuracy(agent, obs: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    masks = np.broadcast_to(mask, (len(obs), len(mask)))
    return float(np.mean(agent.predict(obs, action_masks=masks) == truth))


def run_one(task: dict) -> dict:
    """Train one (variant, seed) and return its accuracy curve and timings.

    ``task`` contains ``variant`` (a name of :data:`VARIANTS`), ``seed`` and the data and budget
    arguments; it is a plain dict so that worker processes can receive it.
    """
    torch.set_num_threads(1)
    variant = next(v for v in VARIANTS if v.name == task["variant"])
    settings = {"total_steps": task["total_steps"], "eval_interval": task["eval_interval"]}
    if task["learning_starts"] is not None:
        settings["learning_starts"] = task["learning_starts"]
    config = preset_config(ENV_ID, log_outputs=(), **settings, **variant.overrides)
    data_args = (task["corpus"], task["tokenizer"], task["vocab_size"])
    tokenizer = load_corpus_data(*data_args).tokenizer
    mask = tokenizer.action_mask()
    validation = load_windows(*data_args, EVAL_SPLIT, task["context_length"])
    obs, truth = evaluation_subset(validation, task["eval_tokens"])
    env = gym.make_vec(
        ENV_ID,
        num_envs=task["num_envs"],
        vectorization_mode="vector_entry_point",
        corpus=task["corpus"],
        tokenizer=task["tokenizer"],
        vocab_size=task["vocab_size"],
        context_length=task["context_length"],
        split="train",
        reward="match",
    )
    with warnings.catch_warnings():
        # The gamma-0.5 variants are meant to bootstrap on a teacher-forced task.
        warnings.filterwarnings("ignore", message="gamma=", category=UserWarning)
        agent = DQN(env, config, device=task["device"], seed=task["seed"])

    supervised_time = 0.0
    if variant.supervised_init:
        start = time.perf_counter()
        train = load_windows(*data_args, "train", task["context_length"])
        pretrain_supervised(agent, train, mask, task["supervised_examples"])
        supervised_time = time.perf_counter() - start

    steps = [0]
    accuracy = [_accuracy(agent, obs, truth, mask)]
    eval_time = 0.0

    def record(trained: DQN) -> None:
        nonlocal eval_time
        start = time.perf_counter()
        steps.append(trained.num_timesteps)
        accuracy.append(_accuracy(trained, obs, truth, mask))
        eval_time += time.perf_counter() - start

    start = time.perf_counter()
    agent.learn(callback=record)
    learn_time = time.perf_counter() - start
    env.close()
    if steps[-1] != agent.num_timesteps:
        record(agent)
    train_time = learn_time - eval_time
    return {
        "variant": variant.name,
        "seed": task["seed"],
        "steps": steps,
        "accuracy": accuracy,
        "final_accuracy": accuracy[-1],
        "n_updates": agent.n_updates,
        "train_time_s": train_time,
        "steps_per_second": agent.num_timesteps / max(train_time, 1e-9),
        "supervised_time_s": supervised_time,
        "config": config.to_dict(),
    }


# --------------------------------------------------------------------------------------------
# Grid and summary


def run_grid(tasks: list[dict], workers: int) -> list[dict]:
    """Run every task, in this process (``workers == 1``) or in a spawn process pool."""
    results = []
    total = len(tasks)

    def report(result: dict) -> None:
        results.append(result)
        print(
            f"[{len(results)}/{total}] {result['variant']} seed {result['seed']}: final accuracy "
            f"{result['final_accuracy']:.4f}, {result['steps_per_second']:.0f} steps/s, "
            f"{result['train_time_s']:.1f} s",
            flush=True,
        )

    if workers == 1:
        for task in tasks:
            report(run_one(task))
        return results
    # Spawned workers start clean: no torch thread pool or open files inherited from here.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(run_one, task) for task in tasks]
        for future in as_completed(futures):
            report(future.result())
    return results


def _spread(values: list[float]) -> float:
    """Return the sample standard deviation, or 0.0 for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _at_fraction(run: dict, fraction: float) -> float:
    """Return the accuracy of the evaluation nearest to ``fraction`` of the run's steps."""
    steps = np.asarray(run["steps"])
    index = int(np.argmin(np.abs(steps - fraction * steps[-1])))
    return run["accuracy"][index]


def summarize(runs: list[dict]) -> dict:
    """Return mean, sample std, min and max of the final accuracy and the mean speed."""
    finals = [run["final_accuracy"] for run in runs]
    return {
        "seeds": [run["seed"] for run in runs],
        "final_accuracy_mean": float(np.mean(finals)),
        "final_accuracy_std": _spread(finals),
        "final_accuracy_min": float(np.min(finals)),
        "final_accuracy_max": float(np.max(finals)),
        "initial_accuracy_mean": float(np.mean([run["accuracy"][0] for run in runs])),
        "quarter_accuracy_mean": float(np.mean([_at_fraction(run, 0.25) for run in runs])),
        "half_accuracy_mean": float(np.mean([_at_fraction(run, 0.5) for run in runs])),
        "steps_per_second_mean": float(np.mean([run["steps_per_second"] for run in runs])),
        "supervised_time_s_mean": float(np.mean([run["supervised_time_s"] for run in runs])),
    }


def markdown_report(payload: dict) -> str:
    """Return the Markdown page: settings, the table and the unigram reference."""
    run = payload["run"]
    rows = []
    for name, entry in payload["variants"].items():
        summary = entry["summary"]
        rows.append(
            [
                name,
                entry["description"],
                f"{summary['final_accuracy_mean']:.4f} ± {summary['final_accuracy_std']:.4f}",
                f"{summary['final_accuracy_min']:.4f} - {summary['final_accuracy_max']:.4f}",
                f"{summary['initial_accuracy_mean']:.4f}",
                f"{summary['quarter_accuracy_mean']:.4f}",
                f"{summary['half_accuracy_mean']:.4f}",
                f"{summary['steps_per_second_mean']:.0f}",
            ]
        )
    table = markdown_table(
        [
            "variant",
            "change from the preset",
            "final accuracy (mean ± std)",
            "min - max",
            "step 0",
            "25% of steps",
            "50% of steps",
            "steps/s",
        ],
        rows,
    )
    machine = run["machine"]
    lines = [
        "# DQN variants on LMNextToken-v0",
        "",
        f"Command: `{run['command']}`",
        "",
        f"Corpus {run['corpus']!r}, tokenizer {run['tokenizer']!r} (V={run['vocab_size']}), "
        f"context_length {run['context_length']}, {run['num_envs']} sub-environments, "
        f"{run['total_steps']} environment steps per run, seeds {run['seeds']}. Accuracy is "
        f"greedy top-1 on a fixed random subset of {run['eval_tokens']} {run['eval_split']} "
        f"tokens, measured every {run['eval_interval']} steps; std is the sample standard "
        "deviation over seeds. The step-0, 25% and 50% columns are means over seeds. "
        "steps/s counts environment steps per second of training, evaluations excluded, one "
        f"torch thread per run, {run['workers']} runs at a time, device {run['device']}.",
        "",
        f"supervised-init trains on {run['supervised_examples']} examples first "
        "(not counted as environment steps). Unigram accuracy on the same subset: "
        f"{run['unigram_accuracy']:.4f}.",
        "",
        table,
        f"Machine: {machine.get('cpu')} ({machine.get('cpu_count')} CPUs), "
        f"{machine.get('platform')}, Python {machine.get('python')}, torch "
        f"{machine.get('torch')}. Commit {run['git_commit']}. Wall time of the whole grid: "
        f"{run['wall_time_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def plot_curves(payload: dict) -> bytes:
    """Return a PNG of the mean accuracy curve per variant with its min/max band."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5.5))
    for name, entry in payload["variants"].items():
        curves = np.array([run["accuracy"] for run in entry["runs"]])
        steps = entry["runs"][0]["steps"]
        (line,) = axes.plot(steps, curves.mean(axis=0), label=name)
        axes.fill_between(
            steps, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.15
        )
    run = payload["run"]
    axes.axhline(run["unigram_accuracy"], color="gray", linestyle="--", label="unigram")
    axes.set_xlabel("environment steps")
    axes.set_ylabel(f"validation accuracy ({run['eval_tokens']} tokens)")
    axes.set_title(
        f"DQN variants on LMNextToken-v0: {Path(str(run['corpus'])).name}, {run['tokenizer']}, "
        f"{len(run['seeds'])} seeds (mean, min-max band)"
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Run the grid and write the results; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(f"--device: {error}")
    command = shlex.join(
        ["python", "-m", "benchmarks.dqn_variants", *(sys.argv[1:] if argv is None else argv)]
    )
    start = time.perf_counter()

    # Load (and cache) the tokenizer and both splits once here, so workers only read the cache
    # and a bad corpus or tokenizer fails before any training.
    data_args = (args.corpus, args.tokenizer, args.vocab_size)
    data = load_corpus_data(*data_args)
    train = load_windows(*data_args, "train", args.context_length)
    validation = load_windows(*data_args, EVAL_SPLIT, args.context_length)
    tokenizer = data.tokenizer
    unigram = UnigramAgent(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.action_mask())
    obs, truth = evaluation_subset(validation, args.eval_tokens)
    unigram_accuracy = _accuracy(unigram.fit(train), obs, truth, tokenizer.action_mask())

    shared = {
        "corpus": args.corpus,
        "tokenizer": args.tokenizer,
        "vocab_size": args.vocab_size,
        "context_length": args.context_length,
        "num_envs": args.num_envs,
        "total_steps": args.total_steps,
        "learning_starts": args.learning_starts,
        "eval_interval": args.eval_interval,
        "eval_tokens": args.eval_tokens,
        "supervised_examples": args.supervised_examples,
        "device": str(device),
    }
    names = [name for name in VARIANT_NAMES if name in args.variants]
    tasks = [{**shared, "variant": name, "seed": seed} for name in names for seed in args.seeds]
    results = run_grid(tasks, args.workers)

    variants = {}
    for variant in VARIANTS:
        runs = [result for result in results if result["variant"] == variant.name]
        if not runs:
            continue
        variants[variant.name] = {
            "description": variant.description,
            "overrides": variant.overrides,
            "supervised_init": variant.supervised_init,
            "summary": summarize(runs),
            "runs": sorted(runs, key=lambda run: run["seed"]),
        }
    commit = git_commit()
    payload = {
        "run": {
            **shared,
            "command": command,
            "env_id": ENV_ID,
            "vocab_size": tokenizer.vocab_size,
            "eval_split": EVAL_SPLIT,
            "eval_tokens": len(truth),
            "seeds": args.seeds,
            "workers": args.workers,
            "unigram_accuracy": unigram_accuracy,
            "git_commit": commit,
            "machine": machine_description(),
            "wall_time_s": time.perf_counter() - start,
        },
        "variants": variants,
    }
    output = args.output_dir
    write_json(output / "results.json", payload)
    atomic_write_text(output / "results.md", markdown_report(payload))
    atomic_write_bytes(output / "accuracy.png", plot_curves(payload))
    print(markdown_report(payload))
    print(f"wrote {output / 'results.json'}, {output / 'results.md'}, {output / 'accuracy.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
