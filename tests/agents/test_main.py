"""The lm-envs-train job: smoke runs with --quick, argument errors and the result writers."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents.report as report
from agents.baselines import SupervisedAgent
from agents.dqn import DQN
from agents.main import dqn_config, main, parse_args, supervised_config
from agents.networks import QNetwork
from agents.report import format_markdown, format_table, git_commit, write_results
from lm_envs.data import load_windows

REPOSITORY = Path(__file__).resolve().parents[2]
AGENT_NAMES = ["dqn", "supervised", "unigram", "ngram-3", "random"]
METRIC_KEYS = {
    "agent",
    "accuracy",
    "mean_reward",
    "bits_per_token",
    "perplexity",
    "tokens",
    "steps_per_second",
    "wall_time_s",
    "train_time_s",
}
RUN_KEYS = {"corpus", "tokenizer", "vocab_size", "split", "seed", "git_commit", "machine"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for index in range(24):
        text = "to be or not to be, 是否 🎭. " * (3 + index % 4)
        (folder / f"doc{index:02d}.txt").write_text(text, encoding="utf-8")
    return str(folder)


def quick_argv(corpus, output_dir, *extra):
    return [
        "--quick",
        "--corpus",
        corpus,
        "--output-dir",
        str(output_dir),
        "--no-progress",
        "--device",
        "cpu",
        "--total-steps",
        "256",
        "--eval-tokens",
        "100",
        *extra,
    ]


@pytest.fixture(scope="module")
def quick_run(corpus, tmp_path_factory):
    """Run the job once in-process; return its output folder and what it printed."""
    output_dir = tmp_path_factory.mktemp("run") / "out"
    stdout = io.StringIO()
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(stdout):
        code = main(quick_argv(corpus, output_dir, "--torch-threads", str(threads + 1)))
    assert torch.get_num_threads() == threads
    return code, output_dir, stdout.getvalue()


def test_quick_run_prints_table(quick_run):
    code, _, stdout = quick_run
    assert code == 0
    header = stdout.splitlines()[1].split()
    assert header[:3] == ["agent", "accuracy", "mean_reward"]
    assert "bits_per_token" in header
    assert "steps_per_second" in header
    table_agents = [line.split()[0] for line in stdout.splitlines() if line.split()]
    for name in AGENT_NAMES:
        assert name in table_agents, name


def test_quick_run_results_json(quick_run, corpus):
    _, output_dir, _ = quick_run
    results = json.loads((output_dir / "results.json").read_text(encoding="utf-8"))
    assert RUN_KEYS <= set(results["run"])
    assert results["run"]["corpus"] == corpus
    assert results["run"]["split"] == "validation"
    assert results["run"]["eval_tokens"] == 100
    assert results["run"]["machine"]["torch_device"] == "cpu"
    assert results["run"]["machine"]["cpu_count"] == os.cpu_count()
    assert [row["agent"] for row in results["agents"]] == AGENT_NAMES
    for row in results["agents"]:
        assert METRIC_KEYS <= set(row), row["agent"]
        assert 0.0 <= row["accuracy"] <= 1.0, row["agent"]
        assert row["tokens"] == 100, row["agent"]
    by_name = {row["agent"]: row for row in results["agents"]}
    assert by_name["dqn"]["config"]["gamma"] == 0.0
    assert by_name["supervised"]["config"]["total_examples"] == 256
    assert by_name["dqn"]["train_steps"] == 256
    assert by_name["supervised"]["train_steps"] == 256
    assert by_name["dqn"]["train_steps_per_second"] > 0
    valid_ids = results["run"]["vocab_size"] - 2  # the char tokenizer masks <pad> and <unk>
    assert by_name["random"]["bits_per_token"] == pytest.approx(np.log2(valid_ids))


def test_quick_run_markdown_and_checkpoints(quick_run, corpus):
    _, output_dir, _ = quick_run
    markdown = (output_dir / "results.md").read_text(encoding="utf-8")
    assert "| agent | accuracy |" in markdown
    assert f"- corpus: {corpus}" in markdown
    assert "| dqn |" in markdown
    assert (output_dir / "dqn" / "config.json").is_file()
    assert (output_dir / "logs" / "progress.csv").is_file()


def test_supervised_weights_saved_safely(quick_run):
    _, output_dir, _ = quick_run
    config = json.loads((output_dir / "supervised" / "config.json").read_text())
    state = torch.load(output_dir / "supervised" / "weights.pt", weights_only=True)
    vocab_size = state["head.weight"].shape[0]
    network = QNetwork(
        vocab_size,
        8,
        encoder=config["encoder"],
        dueling=config["dueling"],
        **config["encoder_kwargs"],
    )
    network.load_state_dict(state)


def test_supervised_config_matches_dqn_network(corpus):
    env = gym.make_vec(
        "LMNextToken-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        corpus=corpus,
        context_length=6,
    )
    args = parse_args(["--quick", "--encoder", "gru", "--context-length", "6"])
    config = dqn_config(args)
    dqn = DQN(env, config, device="cpu", seed=3)
    vocab_size = env.single_action_space.n
    mask = env.action_masks()[0]
    supervised = SupervisedAgent(
        vocab_size, 6, mask, supervised_config(config, 64), device="cpu", seed=3
    )
    # The same seed draws the same initial network in both learners.
    for name, tensor in dqn.q_network.state_dict().items():
        assert torch.equal(tensor, supervised.state_dict()[name]), name
    supervised.fit(load_windows(corpus, "char", None, "train", 6))
    dqn.q_network.load_state_dict(supervised.state_dict())
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(dqn.predict(obs, env.action_masks()), supervised.predict(obs))


def test_quick_run_subprocess(corpus, tmp_path):
    output_dir = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "agents.main", *quick_argv(corpus, output_dir)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LM_ENVS_CACHE": str(tmp_path / "cache")},
    )
    assert completed.returncode == 0, completed.stderr
    assert "supervised" in completed.stdout
    assert (output_dir / "results.json").is_file()
    assert (output_dir / "results.md").is_file()


def test_unknown_corpus_exits_2(tmp_path, capsys):
    code = main(["--corpus", "pydc", "--output-dir", str(tmp_path / "run"), "--quick"])
    assert code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("lm-envs-train: error: corpus 'pydc' is neither")
    assert "Did you mean 'pydoc'?" in stderr
    assert stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_unknown_corpus_subprocess_has_no_traceback(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "agents.main", "--corpus", "pydc", "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), "LM_ENVS_CACHE": str(tmp_path / "c")},
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.count("\n") == 1
    assert "Did you mean 'pydoc'?" in completed.stderr


def test_bpe_without_vocab_size_exits_2(tmp_path, capsys):
    assert main(["--tokenizer", "bpe", "--quick", "--output-dir", str(tmp_path)]) == 2
    assert "tokenizer='bpe' needs vocab_size" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--total-steps", "0"], "argument --total-steps: 0 is below 1; train for at least 1"),
        (["--num-envs", "many"], "argument --num-envs: invalid int value 'many'; use at least 1"),
        (["--context-length", "-3"], "argument --context-length: -3 is below 1"),
        (["--vocab-size", "2"], "argument --vocab-size: 2 is below 4"),
        (["--eval-tokens", "0"], "omit the option for the whole split"),
        (["--torch-threads", "0"], "argument --torch-threads: 0 is below 1"),
        (["--encoder", "lstm"], "argument --encoder: invalid choice: 'lstm'"),
        (
            ["--ngram-order", "10", "--context-length", "4"],
            "--ngram-order 10 reads 9 tokens of context but --context-length is 4",
        ),
        (["--device", "tpu"], "--device: device 'tpu' is not a torch device; use 'auto'"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_quick_defaults_yield_to_explicit_options():
    args = parse_args(["--quick", "--total-steps", "100", "--output-dir", "x"])
    assert args.total_steps == 100
    assert args.context_length == 8
    assert args.output_dir == Path("x")
    full = parse_args([])
    assert full.total_steps > args.total_steps
    assert full.eval_tokens is None
    assert full.output_dir.parent == Path("runs")


def test_format_table_aligns_and_shows_missing():
    rows = [
        {"agent": "unigram", "accuracy": 0.17781, "bits_per_token": None, "wall_time_s": 1.0},
        {"agent": "ngram-3", "accuracy": 0.4, "bits_per_token": 3.07123, "steps_per_second": 9e4},
    ]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == list(report.TABLE_COLUMNS)
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split()[:4] == ["unigram", "0.1778", "-", "-"]
    assert lines[3].split()[:5] == ["ngram-3", "0.4000", "-", "3.071", "90000"]
    assert len({len(line) for line in lines[:2]}) == 1


def test_markdown_lists_run_and_rows():
    results = {
        "run": {"corpus": "pydoc", "machine": {"cpu_count": 2, "torch_device": "cpu"}},
        "agents": [{"agent": "random", "accuracy": 0.01, "wall_time_s": 0.5}],
    }
    markdown = format_markdown(results)
    assert "- corpus: pydoc" in markdown
    assert "- machine: cpu_count=2, torch_device=cpu" in markdown
    assert "| random | 0.0100 | - | - | - | 0.50 | - |" in markdown


def test_write_results_rejects_nan_and_keeps_old_file(tmp_path):
    good = {"run": {"corpus": "pydoc"}, "agents": [{"agent": "random", "accuracy": 0.5}]}
    json_path, markdown_path = write_results(tmp_path, good)
    assert json.loads(json_path.read_text()) == good
    assert markdown_path.read_text().startswith("# lm-envs-train results")
    bad = {"run": {"corpus": "pydoc"}, "agents": [{"agent": "random", "accuracy": float("nan")}]}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_results(tmp_path, bad)
    assert json.loads(json_path.read_text()) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.md"]


def test_git_commit_outside_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "_REPOSITORY", tmp_path)
    assert git_commit() == {"commit": None, "dirty": None}


def test_git_commit_in_checkout():
    if not (REPOSITORY / ".git").exists():
        pytest.skip("the tests do not run from a git checkout")
    info = git_commit()
    assert len(info["commit"]) == 40
    assert isinstance(info["dirty"], bool)


def test_unknown_token_share_warns(tiny_corpus, capsys):
    from agents.main import warn_unknown_tokens
    from lm_envs.data import load_corpus_data, load_windows

    data = load_corpus_data(str(tiny_corpus), "char", 6)
    windows = load_windows(str(tiny_corpus), "char", 6, "validation", 1)
    share = warn_unknown_tokens(data.tokenizer, windows)
    assert share > 0.5
    assert "of validation tokens are <unk>" in capsys.readouterr().err


def test_unknown_token_share_silent_without_unk(tiny_corpus, capsys):
    from agents.main import warn_unknown_tokens
    from lm_envs.data import load_corpus_data, load_windows

    data = load_corpus_data(str(tiny_corpus), "byte", None)
    windows = load_windows(str(tiny_corpus), "byte", None, "validation", 1)
    assert warn_unknown_tokens(data.tokenizer, windows) == 0.0
    assert capsys.readouterr().err == ""
