"""Logger: stdout table, CSV with growing columns, JSON lines, TensorBoard, throttling."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from agents.logger import Logger


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_stdout_table():
    stream = io.StringIO()
    logger = Logger(outputs=("stdout",), stream=stream)
    logger.record("train/loss", 0.25)
    logger.record("rollout/ep_rew_mean", 3)
    assert logger.dump(100)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("---")
    assert lines[-1].startswith("---")
    assert lines[1].startswith("| step                |")
    assert "100" in lines[1]
    # Keys are sorted, so rollout/ comes before train/.
    assert "rollout/ep_rew_mean" in lines[2]
    assert "| 3" in lines[2]
    assert "train/loss" in lines[3]
    assert "0.25" in lines[3]
    assert logger.values == {}


def test_csv_grows_columns_and_keeps_rows(tmp_path):
    logger = Logger(outputs=("csv",), folder=tmp_path)
    logger.record("time/fps", 10.0)
    logger.dump(1)
    logger.record("time/fps", 20.0)
    logger.dump(2)
    logger.record("time/fps", 30.0)
    logger.record("train/loss", 0.5)
    logger.dump(3)
    rows = read_csv(tmp_path / "progress.csv")
    assert [row["step"] for row in rows] == ["1", "2", "3"]
    assert [row["time/fps"] for row in rows] == ["10.0", "20.0", "30.0"]
    assert [row["train/loss"] for row in rows] == ["", "", "0.5"]


def test_csv_continues_existing_file(tmp_path):
    first = Logger(outputs=("csv",), folder=tmp_path)
    first.record("a", 1.0)
    first.dump(1)
    second = Logger(outputs=("csv",), folder=tmp_path)
    second.record("a", 2.0)
    second.dump(2)
    second.record("b", 3.0)
    second.dump(3)
    rows = read_csv(tmp_path / "progress.csv")
    assert [(row["step"], row["a"], row["b"]) for row in rows] == [
        ("1", "1.0", ""),
        ("2", "2.0", ""),
        ("3", "", "3.0"),
    ]


def test_json_lines_with_unicode_and_nan(tmp_path):
    logger = Logger(outputs=("json",), folder=tmp_path)
    logger.record("eval/accuracy", 0.75)
    logger.record("eval/准确率 😀", math.nan)
    logger.dump(7)
    logger.record("eval/accuracy", 0.8)
    logger.dump(8)
    lines = (tmp_path / "progress.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0] == {"step": 7, "eval/accuracy": 0.75, "eval/准确率 😀": None}
    assert records[1] == {"step": 8, "eval/accuracy": 0.8}


def test_tensorboard_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Logger(outputs=("tensorboard",), folder=tmp_path) as logger:
        logger.record("train/loss", 0.5)
        logger.dump(10)
        logger.record("train/loss", 0.25)
        logger.dump(20)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Scalars("train/loss")
    assert [(event.step, event.value) for event in scalars] == [(10, 0.5), (20, 0.25)]


def test_throttle_keeps_latest_values(tmp_path):
    logger = Logger(outputs=("json",), folder=tmp_path, throttle_seconds=3600)
    logger.record("a", 1.0)
    assert logger.dump(1)
    logger.record("a", 2.0)
    assert not logger.dump(2)
    logger.record("a", 3.0)
    assert logger.dump(3, force=True)
    records = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert records == [{"step": 1, "a": 1.0}, {"step": 3, "a": 3.0}]
    assert not logger.dump(4, force=True)  # nothing recorded since


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"outputs": ("wandb",)}, ValueError, "unknown log output 'wandb'"),
        ({"outputs": "stdout"}, TypeError, "must be a tuple of names"),
        ({"outputs": ("csv",)}, ValueError, r"\['csv'\] write files; pass folder="),
        ({"throttle_seconds": -1}, ValueError, "throttle_seconds must be >= 0"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        Logger(**kwargs)


def test_record_rejects_bad_values():
    logger = Logger(outputs=())
    with pytest.raises(TypeError, match="log value of 'a' must be a real number"):
        logger.record("a", "high")
    with pytest.raises(TypeError, match="non-empty strings"):
        logger.record("", 1.0)
    with pytest.raises(TypeError, match="got bool"):
        logger.record("a", True)
