"""``lm-envs-list``: print one row per registered lm_envs environment id.

Each row contains the id, the observation and action spaces of an instance built with the
registered defaults, the registered reward threshold, a one-line reward description and a
one-line episode-end description (termination vs truncation).

Convention for environment authors: give the single-environment class (the id's
``entry_point``) two class attributes, each one line of plain text::

    reward_summary = "match: 1 if the action is the true next token, else 0"
    episode_end_summary = "terminated: <eos> reached; truncated: after episode_length steps"

Without them the command falls back to the first paragraph of the ``## Rewards`` and
``## Episode end`` sections of the class docstring (the environment card), with the
reStructuredText markup removed.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import gymnasium as gym

from lm_envs.registration import ENVIRONMENTS, register_all

COLUMNS = ("id", "observation", "action", "threshold", "reward", "episode end")
FORMATS = ("table", "json")


@dataclass(frozen=True)
class EnvDescription:
    """One row of ``lm-envs-list``; ``error`` is set when the id failed to build."""

    id: str
    observation: str
    action: str
    threshold: str
    reward: str
    episode_end: str
    error: str | None = None


def card_section(doc: str | None, title: str) -> str:
    """Return the first paragraph of the ``## title`` section of ``doc`` on one line.

    Bullet items are joined with "; " without their final periods, double backticks are
    removed and whitespace is collapsed. Returns an empty string when the section is missing.
    """
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    heading = f"## {title}".lower()
    starts = [i for i, line in enumerate(lines) if line.strip().lower() == heading]
    if not starts:
        return ""
    items: list[str] = []
    for line in lines[starts[0] + 1 :]:
        stripped = line.strip()
        if stripped.startswith("## "):
            break
        if not stripped:
            if items:
                break
            continue
        if stripped.startswith("* ") or not items:
            items.append(stripped.removeprefix("* "))
        else:
            items[-1] += " " + stripped
    cleaned = [re.sub(r"\s+", " ", item.replace("``", "")).strip().rstrip(".") for item in items]
    return "; ".join(cleaned)


def _summary(env_class: type, attribute: str, section: str) -> str:
    value = getattr(env_class, attribute, None)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return card_section(env_class.__doc__, section) or "(not described)"


def describe_env(env_id: str) -> EnvDescription:
    """Build ``env_id`` with its registered defaults and describe its spaces, reward and end."""
    spec = gym.spec(env_id)
    threshold = "-" if spec.reward_threshold is None else f"{spec.reward_threshold:g}"
    try:
        env = gym.make(env_id, disable_env_checker=True)
    except Exception as error:  # One id that fails to build must not hide the others.
        message = f"{type(error).__name__}: {error}"
        return EnvDescription(env_id, "-", "-", threshold, "-", "-", error=message)
    try:
        env_class = type(env.unwrapped)
        return EnvDescription(
            id=env_id,
            observation=str(env.observation_space),
            action=str(env.action_space),
            threshold=threshold,
            reward=_summary(env_class, "reward_summary", "Rewards"),
            episode_end=_summary(env_class, "episode_end_summary", "Episode end"),
        )
    finally:
        env.close()


def format_table(descriptions: Sequence[EnvDescription]) -> str:
    """Return the descriptions as a plain-text table with aligned columns."""
    rows = [list(COLUMNS)]
    for item in descriptions:
        episode_end = item.episode_end if item.error is None else f"failed to build: {item.error}"
        rows.append(
            [item.id, item.observation, item.action, item.threshold, item.reward, episode_end]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lm-envs-list",
        description="List every registered lm_envs environment id with its spaces, reward "
        "threshold, reward and episode end.",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="output format: an aligned text table (default) or a JSON list of objects",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print the listing and return 0, or 1 when an id failed to build (its row shows the error)."""
    args = build_parser().parse_args(argv)
    register_all()
    descriptions = [describe_env(env_id) for env_id in ENVIRONMENTS]
    if args.format == "json":
        print(json.dumps([asdict(item) for item in descriptions], indent=2, ensure_ascii=False))
    else:
        print(format_table(descriptions))
    return 1 if any(item.error for item in descriptions) else 0


if __name__ == "__main__":
    sys.exit(main())
