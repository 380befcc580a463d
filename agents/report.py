"""Result writers for agent comparisons: a console table, results.json and results.md.

A results dict has two keys: ``"run"`` (corpus, tokenizer, vocab size, split, seed, commit,
machine and the settings of the run) and ``"agents"`` (one metrics dict per agent, each with an
``"agent"`` name and the metric names of :func:`agents.evaluate.evaluate`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from lm_envs.cache import atomic_write_text

TABLE_COLUMNS = (
    "agent",
    "accuracy",
    "mean_reward",
    "bits_per_token",
    "steps_per_second",
    "wall_time_s",
    "train_time_s",
)
# Decimal places per numeric column; other numbers get 4.
_DECIMALS = {"steps_per_second": 0, "wall_time_s": 2, "train_time_s": 2, "bits_per_token": 3}
_REPOSITORY = Path(__file__).resolve().parent.parent


def _git(*args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(
            ["git", "-C", str(_REPOSITORY), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> dict[str, Any]:
    """Return ``{"commit": sha or None, "dirty": bool or None}`` of the source checkout.

    Both are None when the package is not installed from a git checkout or git is missing.
    """
    head = _git("rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return {"commit": None, "dirty": None}
    # diff-index only reads the index, unlike git status, which may rewrite it.
    diff = _git("diff-index", "--quiet", "HEAD", "--")
    dirty = None if diff is None or diff.returncode not in (0, 1) else diff.returncode == 1
    return {"commit": head.stdout.strip(), "dirty": dirty}


def machine_description(device: str | torch.device) -> dict[str, Any]:
    """Return the platform, Python and torch versions, CPU count and torch device of this run."""
    device = torch.device(device)
    description = {
        "platform": platform.platform(),
        "architecture": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_device": str(device),
    }
    if device.type == "cuda":
        description["gpu"] = torch.cuda.get_device_name(device)
    return description


def _format_value(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) and column not in _DECIMALS:
        return str(value)
    return f"{value:.{_DECIMALS.get(column, 4)}f}"


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...] = TABLE_COLUMNS) -> str:
    """Return ``rows`` as a fixed-width text table; missing or None values print as ``-``."""
    cells = [list(columns)]
    for row in rows:
        cells.append([_format_value(column, row.get(column)) for column in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for index, line in enumerate(cells):
        # Names align left, numbers right.
        parts = [line[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_markdown(results: dict[str, Any], columns: tuple[str, ...] = TABLE_COLUMNS) -> str:
    """Return a Markdown page: the run description as a list, then the metrics table."""
    run = results["run"]
    lines = ["# lm-envs-train results", ""]
    for key, value in run.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"- {key}: {_format_value(key, value)}")
    lines += ["", "| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---" if c == "agent" else "---:" for c in columns) + "|")
    for row in results["agents"]:
        values = [_format_value(column, row.get(column)) for column in columns]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def write_results(folder: str | os.PathLike, results: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``folder`` atomically; return both paths."""
    folder = Path(folder)
    json_path = folder / "results.json"
    markdown_path = folder / "results.md"
    # allow_nan=False makes a NaN metric fail here rather than produce invalid JSON.
    atomic_write_text(
        json_path, json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    )
    atomic_write_text(markdown_path, format_markdown(results))
    return json_path, markdown_path
