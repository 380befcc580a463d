"""``lm-envs-train``: train DQN on LMNextToken-v0 and compare it with the baselines.

The job trains the custom DQN on the training split (native batched environment, reward
"match", discount 0). The supervised baseline then trains on as many (window, next token)
examples as the DQN took environment steps, and the unigram and n-gram baselines are fitted.
Every agent is scored on the validation split; the job prints a table and writes results.json
and results.md.

Example::

    lm-envs-train --corpus pydoc --tokenizer char --output-dir runs/pydoc
"""

from __future__ import annotations

import argparse
import io
import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.baselines import (
    NGramAgent,
    RandomAgent,
    SupervisedAgent,
    SupervisedConfig,
    UnigramAgent,
    resolve_device,
)
from agents.dqn import DQN, DQNConfig
from agents.evaluate import evaluate
from agents.presets import load_preset, preset_config
from agents.report import format_table, git_commit, machine_description, write_results
from lm_envs.cache import atomic_write_bytes, atomic_write_text
from lm_envs.data import TokenWindows, load_corpus_data, load_windows
from lm_envs.sb3.encoders import ENCODER_KINDS
from lm_envs.tokenizer import LMTokenizer

PROGRAM = "lm-envs-train"
EVALUATION_SPLIT = "validation"

# Defaults of a full run, and the smaller ones --quick substitutes for options left unset.
DEFAULTS = {
    "context_length": 32,
    "total_steps": 800_000,
    "num_envs": 64,
    "eval_tokens": None,
    "embed_dim": 16,
    "hidden_dim": 128,
}
QUICK_DEFAULTS = {
    "context_length": 8,
    "total_steps": 2_048,
    "num_envs": 16,
    "eval_tokens": 2_000,
    "embed_dim": 16,
    "hidden_dim": 64,
}


def _int_at_least(minimum: int, fix: str):
    """Return an argparse type that parses an int >= ``minimum``; ``fix`` ends the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value {text!r}; {fix}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}; {fix}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``lm-envs-train``."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="Train DQN on LMNextToken-v0 and compare it with random, unigram, n-gram "
        "and supervised baselines on the validation split.",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--corpus",
        default="pydoc",
        help="'pydoc' (embedded), a UTF-8 .txt file or folder, or 'hf:NAME' (default: pydoc)",
    )
    data.add_argument(
        "--tokenizer",
        default="char",
        help="'char', 'byte', 'bpe' or a tokenizer.json path (default: char)",
    )
    data.add_argument(
        "--vocab-size",
        type=_int_at_least(4, "use at least 4 ids (bpe needs at least 259)"),
        help="vocabulary size: required for bpe, an upper bound for char",
    )
    data.add_argument(
        "--context-length",
        type=_int_at_least(1, "use a window of at least 1 token"),
        help=f"tokens per observation window (default: {DEFAULTS['context_length']}, "
        f"--quick: {QUICK_DEFAULTS['context_length']})",
    )

    training = parser.add_argument_group("training")
    training.add_argument(
        "--total-steps",
        type=_int_at_least(1, "train for at least 1 environment step"),
        help="DQN environment steps summed over all sub-environments; the supervised baseline "
        f"trains on as many examples (default: {DEFAULTS['total_steps']}, "
        f"--quick: {QUICK_DEFAULTS['total_steps']})",
    )
    training.add_argument(
        "--num-envs",
        type=_int_at_least(1, "use at least 1 sub-environment"),
        help=f"sub-environments of the batched environment (default: {DEFAULTS['num_envs']}, "
        f"--quick: {QUICK_DEFAULTS['num_envs']})",
    )
    training.add_argument(
        "--seed",
        type=_int_at_least(0, "use a non-negative seed"),
        default=0,
        help="seeds the networks, exploration, environment resets and example order (default: 0)",
    )
    training.add_argument(
        "--device",
        default="auto",
        help="torch device for DQN and the supervised baseline: 'auto' (CUDA when available), "
        "'cpu' or 'cuda' (default: auto)",
    )
    training.add_argument(
        "--torch-threads",
        type=_int_at_least(1, "use at least 1 thread"),
        default=1,
        help="CPU threads of torch's intra-op pool (default: 1, because the job's small "
        "networks train faster on one thread than on two busy cores)",
    )
    training.add_argument(
        "--encoder",
        choices=ENCODER_KINDS,
        default="mlp",
        help="window encoder of the shared network (default: mlp)",
    )
    training.add_argument(
        "--ngram-order",
        type=_int_at_least(1, "use order 1 (unigram) or more"),
        default=3,
        help="order of the n-gram baseline (default: 3)",
    )

    evaluation = parser.add_argument_group("evaluation and output")
    evaluation.add_argument(
        "--eval-tokens",
        type=_int_at_least(1, "score at least 1 token, or omit the option for the whole split"),
        help="score the first N validation tokens (default: the whole split, "
        f"--quick: {QUICK_DEFAULTS['eval_tokens']})",
    )
    evaluation.add_argument(
        "--output-dir",
        type=Path,
        help="folder for results.json, results.md and checkpoints (default: runs/<timestamp>)",
    )
    evaluation.add_argument(
        "--no-progress", action="store_true", help="hide the training progress bars"
    )
    evaluation.add_argument(
        "--quick",
        action="store_true",
        help="a tiny budget and network for smoke tests; explicit options still apply",
    )

    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` and fill unset options from the full or the --quick defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.ngram_order - 1 > args.context_length:
        parser.error(
            f"--ngram-order {args.ngram_order} reads {args.ngram_order - 1} tokens of context but "
            f"--context-length is {args.context_length}; lower --ngram-order or raise "
            "--context-length."
        )
    try:
        args.torch_device = resolve_device(args.device)
    except ValueError as error:
        parser.error(f"--device: {error}")
    if args.output_dir is None:
        args.output_dir = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    return args


def dqn_config(args: argparse.Namespace) -> DQNConfig:
    """Return the DQN settings of the job: the LMNextToken-v0 preset plus the job's options.

    LMNextToken-v0 is a contextual bandit, so the preset's discount is 0 and Q(s, a) regresses
    the probability that token a is correct after window s. Learning rate, batch size and final
    epsilon come from agents/presets/dqn.yaml; budget, network size and encoder from the
    command line.
    """
    preset = load_preset("LMNextToken-v0")
    return preset_config(
        "LMNextToken-v0",
        total_steps=args.total_steps,
        # A tenth of a small budget, so that --quick runs still take gradient steps.
        learning_starts=min(preset["learning_starts"], args.total_steps // 10),
        encoder=args.encoder,
        embed_dim=args.embed_dim,
        hidden_dim=args.hidden_dim,
        log_outputs=("csv",),
        log_folder=str(args.output_dir / "logs"),
    )


def supervised_config(config: DQNConfig, total_examples: int) -> SupervisedConfig:
    """Return the supervised settings: the DQN's network, optimizer step size and batch size."""
    encoder_kwargs = dict(config.network_kwargs)
    encoder = encoder_kwargs.pop("encoder")
    dueling = encoder_kwargs.pop("dueling")
    return SupervisedConfig(
        total_examples=total_examples,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        max_grad_norm=config.max_grad_norm,
        encoder=encoder,
        dueling=dueling,
        encoder_kwargs=encoder_kwargs,
    )


def _save_supervised(agent: SupervisedAgent, folder: Path) -> None:
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    atomic_write_bytes(folder / "supervised" / "weights.pt", buffer.getvalue())
    atomic_write_text(
        folder / "supervised" / "config.json", json.dumps(agent.config_dict(), indent=2) + "\n"
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


@dataclass
class JobData:
    """The tokenizer, training data and environment of a job, loaded before any training."""

    tokenizer: LMTokenizer
    train: TokenWindows
    env: gym.vector.VectorEnv
    dqn_config: DQNConfig
    ngram: NGramAgent


@dataclass
class TrainedAgent:
    """One agent of the comparison, its training time and its settings for the report."""

    name: str
    agent: Any
    train_time_s: float
    config: dict[str, Any] | None = None
    train_steps: int | None = None  # environment steps (DQN) or training examples (supervised)


# Share of <unk> targets in the validation split above which the job warns.
UNKNOWN_TOKEN_WARNING = 0.01


def warn_unknown_tokens(tokenizer: LMTokenizer, windows: TokenWindows) -> float:
    """Warn on stderr when many validation targets are ``<unk>``; return their share.

    No agent can emit ``<unk>``, so every such target counts as a miss for all of them.
    """
    if tokenizer.unk_id is None or len(windows.targets) == 0:
        return 0.0
    share = float(np.mean(windows.stream[windows.targets] == tokenizer.unk_id))
    if share > UNKNOWN_TOKEN_WARNING:
        print(
            f"{PROGRAM}: warning: {share:.1%} of validation tokens are <unk>, which no agent "
            "can predict; raise --vocab-size or leave it unset to keep every training character.",
            file=sys.stderr,
        )
    return share


def prepare(args: argparse.Namespace) -> JobData:
    """Load the corpus, tokenizer and training environment named by ``args``.

    Raises:
        ValueError, TypeError: a corpus, tokenizer or vocabulary argument is invalid.
    """
    data = load_corpus_data(args.corpus, args.tokenizer, args.vocab_size)
    train = load_windows(args.corpus, args.tokenizer, args.vocab_size, "train", args.context_length)
    tokenizer = data.tokenizer
    ngram = NGramAgent(
        args.ngram_order, tokenizer.vocab_size, tokenizer.pad_id, tokenizer.action_mask()
    )
    env = gym.make_vec(
        "LMNextToken-v0",
        num_envs=args.num_envs,
        vectorization_mode="vector_entry_point",
        corpus=args.corpus,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        context_length=args.context_length,
        split="train",
        reward="match",
    )
    # The validation split must exist with at least one token before any time goes to training.
    validation = load_windows(args.corpus, args.tokenizer, args.vocab_size, EVALUATION_SPLIT, 1)
    warn_unknown_tokens(tokenizer, validation)
    return JobData(tokenizer, train, env, dqn_config(args), ngram)


def train_agents(args: argparse.Namespace, job: JobData) -> list[TrainedAgent]:
    """Train DQN and the supervised baseline, fit the count baselines; save both networks."""
    tokenizer = job.tokenizer
    mask = tokenizer.action_mask()
    progress = not args.no_progress

    start = time.perf_counter()
    dqn = DQN(job.env, job.dqn_config, device=args.torch_device, seed=args.seed)
    dqn.learn(total_steps=args.total_steps, progress_bar=progress)
    dqn_time = time.perf_counter() - start
    job.env.close()
    dqn.save(args.output_dir / "dqn")

    # The supervised baseline gets one example per environment step the DQN took.
    start = time.perf_counter()
    supervised = SupervisedAgent(
        tokenizer.vocab_size,
        args.context_length,
        mask,
        supervised_config(job.dqn_config, int(dqn.num_timesteps)),
        device=args.torch_device,
        seed=args.seed,
    )
    supervised.fit(job.train, progress_bar=progress)
    supervised_time = time.perf_counter() - start
    _save_supervised(supervised, args.output_dir)

    start = time.perf_counter()
    unigram = UnigramAgent(tokenizer.vocab_size, tokenizer.pad_id, mask, seed=args.seed)
    unigram.fit(job.train)
    unigram_time = time.perf_counter() - start
    start = time.perf_counter()
    job.ngram.fit(job.train)
    ngram_time = time.perf_counter() - start

    return [
        TrainedAgent("dqn", dqn, dqn_time, job.dqn_config.to_dict(), int(dqn.num_timesteps)),
        TrainedAgent(
            "supervised",
            supervised,
            supervised_time,
            supervised.config_dict(),
            supervised.num_examples,
        ),
        TrainedAgent("unigram", unigram, unigram_time),
        TrainedAgent(f"ngram-{args.ngram_order}", job.ngram, ngram_time),
        TrainedAgent("random", RandomAgent(mask, seed=args.seed), 0.0),
    ]


def run(args: argparse.Namespace, job: JobData, command: str) -> dict[str, Any]:
    """Train and score every agent; return the results dict (see :mod:`agents.report`)."""
    job_start = time.perf_counter()
    print(
        f"{PROGRAM}: corpus={args.corpus!r} tokenizer={args.tokenizer!r} "
        f"vocab_size={job.tokenizer.vocab_size} context_length={args.context_length} "
        f"total_steps={args.total_steps} num_envs={args.num_envs} device={args.torch_device}",
        flush=True,
    )
    rows = []
    for entry in train_agents(args, job):
        metrics = evaluate(
            entry.agent,
            args.corpus,
            args.tokenizer,
            args.vocab_size,
            args.context_length,
            split=EVALUATION_SPLIT,
            max_tokens=args.eval_tokens,
        )
        row = {"agent": entry.name, **metrics, "train_time_s": entry.train_time_s}
        if entry.train_steps is not None:
            row["train_steps"] = entry.train_steps
            row["train_steps_per_second"] = entry.train_steps / max(entry.train_time_s, 1e-9)
        if entry.config is not None:
            row["config"] = entry.config
        rows.append(row)

    commit = git_commit()
    run_info = {
        "command": command,
        "corpus": args.corpus,
        "tokenizer": args.tokenizer,
        "vocab_size": job.tokenizer.vocab_size,
        "split": EVALUATION_SPLIT,
        "seed": args.seed,
        "context_length": args.context_length,
        "total_steps": args.total_steps,
        "num_envs": args.num_envs,
        "torch_threads": args.torch_threads,
        "encoder": args.encoder,
        "ngram_order": args.ngram_order,
        "eval_tokens": rows[0]["tokens"],
        "git_commit": commit["commit"],
        "git_dirty": commit["dirty"],
        "machine": machine_description(args.torch_device),
        "total_wall_time_s": time.perf_counter() - job_start,
    }
    return {"run": run_info, "agents": rows}


def main(argv: list[str] | None = None) -> int:
    """Run the job; return 0, or 2 after a one-line error for bad data arguments."""
    args = parse_args(argv)
    command_args = sys.argv[1:] if argv is None else argv
    command = shlex.join([PROGRAM, *command_args])
    try:
        job = prepare(args)
    except (ValueError, TypeError) as error:
        # lm_envs names the bad corpus, tokenizer or vocabulary value and the fix in its
        # message. Print it as argparse prints a bad option, without a traceback.
        print(f"{PROGRAM}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.torch_threads)
    try:
        results = run(args, job, command)
    finally:
        torch.set_num_threads(previous_threads)
    print(format_table(results["agents"]))
    json_path, markdown_path = write_results(args.output_dir, results)
    print(f"wrote {json_path} and {markdown_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
