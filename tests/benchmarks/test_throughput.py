from __future__ import annotations

import json

import pytest

from benchmarks import throughput


def test_tiny_grid_writes_results(tmp_path):
    payload = throughput.main(
        [
            "--num-envs",
            "1",
            "4",
            "--context-lengths",
            "8",
            "--seconds",
            "0.05",
            "--output-dir",
            str(tmp_path),
        ]
    )
    rows = payload["results"]
    implementations = {row["implementation"] for row in rows}
    assert implementations == set(throughput.IMPLEMENTATIONS)
    assert all(row["steps_per_second"] > 0 for row in rows)
    assert {row["num_envs"] for row in rows if row["implementation"] == "single"} == {1}
    stored = json.loads((tmp_path / "throughput.json").read_text())
    assert stored["results"] == json.loads(json.dumps(rows))
    assert "| implementation |" in (tmp_path / "throughput.md").read_text()
    assert (tmp_path / "throughput.png").stat().st_size > 0


def test_summary_ratios_from_rows():
    rows = [
        {
            "implementation": "native",
            "num_envs": 1024,
            "context_length": 128,
            "steps_per_second": 100.0,
            "steps_per_cpu_second": 120.0,
            "microseconds_per_env_step": 0.1,
        },
        {
            "implementation": "sync",
            "num_envs": 1024,
            "context_length": 128,
            "steps_per_second": 4.0,
            "steps_per_cpu_second": 4.0,
            "microseconds_per_env_step": 2.5,
        },
        {
            "implementation": "sb3_native",
            "num_envs": 1024,
            "context_length": 128,
            "steps_per_second": 50.0,
            "steps_per_cpu_second": 50.0,
            "microseconds_per_env_step": 0.3,
        },
    ]
    summary = throughput.summarize(rows)
    assert summary["native_over_sync_1024x128"] == 25.0
    assert summary["native_steps_per_cpu_second_1024x128"] == 120.0
    assert summary["sb3_adapter_overhead_us_per_env_step_1024x128"] == pytest.approx(0.2)


def test_seconds_must_be_positive(tmp_path):
    with pytest.raises(SystemExit):
        throughput.main(["--seconds", "0", "--output-dir", str(tmp_path)])
