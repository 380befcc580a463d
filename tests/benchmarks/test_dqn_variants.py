"""Smoke runs of benchmarks/dqn_variants.py with a tiny budget on a corpus built by the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.dqn_variants import VARIANT_NAMES, build_parser, evaluation_subset, main
from lm_envs.data import load_windows

TINY = [
    "--context-length",
    "4",
    "--num-envs",
    "4",
    "--total-steps",
    "160",
    "--eval-interval",
    "80",
    "--eval-tokens",
    "60",
    "--supervised-examples",
    "64",
    "--learning-starts",
    "40",
]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    # Runs in this process set one torch thread; later tests get the old count back.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_every_variant_writes_results(tiny_corpus, tmp_path, capsys):
    output = tmp_path / "out"
    argv = ["--corpus", str(tiny_corpus), *TINY, "--seeds", "0", "1", "--workers", "1"]
    assert main([*argv, "--output-dir", str(output)]) == 0

    payload = json.loads((output / "results.json").read_text(encoding="utf-8"))
    assert list(payload["variants"]) == list(VARIANT_NAMES)
    assert payload["run"]["eval_tokens"] == 60
    assert payload["run"]["seeds"] == [0, 1]
    assert 0.0 <= payload["run"]["unigram_accuracy"] <= 1.0
    for name, entry in payload["variants"].items():
        assert len(entry["runs"]) == 2, name
        for run in entry["runs"]:
            assert run["steps"] == [0, 80, 160], name
            assert len(run["accuracy"]) == 3, name
            assert all(0.0 <= value <= 1.0 for value in run["accuracy"]), name
            assert run["n_updates"] > 0, name
            assert run["steps_per_second"] > 0, name
        finals = [run["final_accuracy"] for run in entry["runs"]]
        assert entry["summary"]["final_accuracy_mean"] == pytest.approx(np.mean(finals))
        assert entry["summary"]["final_accuracy_std"] == pytest.approx(np.std(finals, ddof=1))

    variants = payload["variants"]
    assert variants["double"]["runs"][0]["config"]["double_dqn"] is True
    assert variants["double"]["runs"][0]["config"]["gamma"] == 0.5
    assert variants["n-step"]["runs"][0]["config"]["n_step"] == 3
    assert variants["dqn"]["runs"][0]["config"]["gamma"] == 0.0
    assert variants["supervised-init"]["runs"][0]["supervised_time_s"] > 0.0
    assert variants["dqn"]["runs"][0]["supervised_time_s"] == 0.0

    markdown = (output / "results.md").read_text(encoding="utf-8")
    for name in VARIANT_NAMES:
        assert f"| {name} |" in markdown
    assert "Unigram accuracy on the same subset" in markdown
    png = (output / "accuracy.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert not list(output.glob(".*.tmp"))
    assert "[16/16]" in capsys.readouterr().out


def test_same_seed_gives_same_curve(tiny_corpus, tmp_path):
    curves = []
    for run in range(2):
        output = tmp_path / f"run{run}"
        argv = ["--corpus", str(tiny_corpus), *TINY, "--seeds", "3", "--variants", "dqn"]
        main([*argv, "--workers", "1", "--output-dir", str(output)])
        payload = json.loads((output / "results.json").read_text(encoding="utf-8"))
        curves.append(payload["variants"]["dqn"]["runs"][0]["accuracy"])
    assert curves[0] == curves[1]


def test_worker_processes_match_serial_run(tiny_corpus, tmp_path):
    accuracies = {}
    for workers in (1, 2):
        output = tmp_path / f"workers{workers}"
        argv = ["--corpus", str(tiny_corpus), *TINY, "--seeds", "0", "1", "--variants", "dueling"]
        main([*argv, "--workers", str(workers), "--output-dir", str(output)])
        payload = json.loads((output / "results.json").read_text(encoding="utf-8"))
        accuracies[workers] = [run["accuracy"] for run in payload["variants"]["dueling"]["runs"]]
    assert accuracies[1] == accuracies[2]


def test_bad_device_rejected(tiny_corpus, capsys):
    with pytest.raises(SystemExit):
        main(["--corpus", str(tiny_corpus), "--device", "nonsense"])
    assert "--device: device 'nonsense' is not a torch device" in capsys.readouterr().err


def test_evaluation_subset_fixed_and_sorted(tiny_corpus):
    windows = load_windows(str(tiny_corpus), "char", None, "validation", 4)
    obs, truth = evaluation_subset(windows, 50)
    again_obs, again_truth = evaluation_subset(windows, 50)
    assert obs.shape == (50, 4)
    assert np.array_equal(obs, again_obs)
    assert np.array_equal(truth, again_truth)
    everything_obs, _ = evaluation_subset(windows, 10**9)
    assert len(everything_obs) == len(windows.targets)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "-1"], "seed -1 is below 0"),
        (["--total-steps", "0"], "step count 0 is below 1"),
        (["--learning-starts", "x"], "invalid step count 'x'"),
        (["--variants", "doubel"], "invalid choice: 'doubel'"),
    ],
)
def test_parser_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert message in capsys.readouterr().err
