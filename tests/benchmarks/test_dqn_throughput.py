"""Smoke runs of benchmarks/dqn_throughput.py with a tiny budget on a corpus built by the test."""

from __future__ import annotations

import json

import pytest
import torch

from agents.networks import QNetwork
from benchmarks.dqn_throughput import AGENTS, Setting, main, summarize

TINY = [
    "--context-length",
    "4",
    "--num-envs",
    "2",
    "4",
    "--replay-ratios",
    "1.0",
    "--batch-size",
    "8",
    "--total-steps",
    "160",
    "--learning-starts",
    "48",
    "--buffer-size",
    "256",
    "--target-update-interval",
    "32",
    "--embed-dim",
    "4",
    "--hidden-dim",
    "8",
    "--device",
    "cpu",
]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    # main() sets the torch thread count; later tests get the old count back.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_grid_writes_results(tiny_corpus, tmp_path, capsys):
    output = tmp_path / "out"
    assert main(["--corpus", str(tiny_corpus), *TINY, "--output-dir", str(output)]) == 0

    payload = json.loads((output / "results.json").read_text(encoding="utf-8"))
    run = payload["run"]
    assert run["torch_threads"] == 1
    assert run["devices_used"] == ["cpu"]
    expected = QNetwork(run["vocab_size"], 4, embed_dim=4, hidden_dim=8)
    assert run["parameters"] == sum(p.numel() for p in expected.parameters())
    assert len(payload["results"]) == 2 * len(AGENTS)
    for row in payload["results"]:
        assert row["parameters"] == run["parameters"], row["agent"]
        assert row["timed_steps"] >= 160 - 48, row["agent"]
        assert row["steps_per_second"] > 0, row["agent"]
        assert row["steps_per_cpu_second"] > 0, row["agent"]

    assert [entry["num_envs"] for entry in payload["summary"]] == [2, 4]
    for entry in payload["summary"]:
        # Replay ratio 1 with batch 8: one update per 8 environment steps after learning_starts.
        assert entry["train_freq"] == 8 // entry["num_envs"]
        updates = [entry[agent]["n_updates"] for agent in AGENTS]
        assert max(updates) - min(updates) <= 1, entry["num_envs"]
        assert abs(updates[0] - (160 - 48) / 8) <= 1, entry["num_envs"]
        ratio = entry["custom"]["steps_per_second"] / entry["sb3_native"]["steps_per_second"]
        assert entry["custom_over_sb3_native_steps_per_second"] == pytest.approx(ratio)

    markdown = (output / "results.md").read_text(encoding="utf-8")
    assert "custom / SB3 native" in markdown
    assert "| 4 | 1 | 2 | 1 |" in markdown
    assert f"{run['parameters']} parameters" in markdown
    assert not list(output.glob(".*.tmp"))
    printed = capsys.readouterr().out
    assert f"parameters per Q-network: {run['parameters']}" in printed


def test_summary_takes_median_of_repeats():
    setting = {"num_envs": 2, "replay_ratio": 1.0, "batch_size": 8, "train_freq": 4}
    rows = [
        {
            **setting,
            "gradient_steps": 1,
            "agent": agent,
            "n_updates": 5,
            "steps_per_second": rate,
            "steps_per_cpu_second": 2 * rate,
        }
        for agent, rate in [
            ("custom", 10.0),
            ("custom", 30.0),
            ("custom", 20.0),
            ("sb3_native", 4.0),
            ("sb3_native", 6.0),
            ("sb3_native", 5.0),
        ]
    ]
    (entry,) = summarize(rows, list(AGENTS))
    assert entry["custom"]["steps_per_second"] == 20.0
    assert entry["sb3_native"]["steps_per_cpu_second"] == 10.0
    assert entry["custom_over_sb3_native_steps_per_second"] == pytest.approx(4.0)
    assert "sb3_dummy" not in entry
    assert "custom_over_sb3_dummy_steps_per_second" not in entry


@pytest.mark.parametrize(
    ("num_envs", "ratio", "train_freq", "gradient_steps"),
    [(16, 1.0, 16, 1), (16, 0.25, 64, 1), (256, 1.0, 1, 1), (256, 0.25, 4, 1), (256, 4.0, 1, 4)],
)
def test_setting_matches_replay_ratio(num_envs, ratio, train_freq, gradient_steps):
    setting = Setting.from_ratio(num_envs, ratio, 256)
    assert (setting.train_freq, setting.gradient_steps) == (train_freq, gradient_steps)
    updates_per_step = setting.gradient_steps * 256 / (setting.train_freq * num_envs)
    assert updates_per_step == pytest.approx(ratio)


def test_setting_rejects_fractional_updates():
    with pytest.raises(ValueError, match="needs 0.01875 updates per vector step"):
        Setting.from_ratio(16, 0.3, 256)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--total-steps", "100", "--learning-starts", "100"], "--learning-starts must be in"),
        (["--replay-ratios", "0"], "--replay-ratios must all be > 0"),
        (["--num-envs", "0"], "--num-envs must all be >= 1"),
        (["--repeats", "0"], "--repeats must be >= 1"),
        (["--gamma", "1.5"], "--gamma must be in [0, 1], got 1.5"),
        (["--learning-rate", "0"], "--learning-rate must be > 0"),
        (["--replay-ratios", "0.3"], "needs 0.01875 updates per vector step"),
        (["--agents", "sb3"], "invalid choice: 'sb3'"),
    ],
)
def test_bad_arguments_exit_with_message(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
