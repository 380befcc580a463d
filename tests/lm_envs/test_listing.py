"""The ``lm-envs-list`` command: every registered id, its spaces, reward and episode end."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec, registry

import lm_envs
from lm_envs.listing import EnvDescription, card_section, describe_env, format_table, main

CARD = """Toy environment.

    ## Rewards

    * ``reward="a"``: 1 per step.
    * ``reward="b"``: the log-probability,
      in nats.

    A paragraph that is not part of the summary.

    ## Episode end

    * Termination: never.
    * Truncation: after ``n`` steps.
    """


class DescribedByCard(gym.Env):
    __doc__ = CARD

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0, 4, shape=(3,), dtype=np.int32)
        self.action_space = gym.spaces.Discrete(5)


class BrokenEnv(gym.Env):
    def __init__(self) -> None:
        raise ValueError("corpus 'missing' not found")


def test_table_lists_every_registered_id(capsys):
    assert main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["id", "observation", "action", "threshold"]
    listed = [line.split()[0] for line in lines[1:]]
    assert listed == list(lm_envs.ENVIRONMENTS)


def test_table_row_for_copy(capsys):
    main([])
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("LMCopy"))
    assert "Box(0, 10, (17,), int32)" in row
    assert "Discrete(11)" in row
    assert "0.95" in row
    assert "dense: +1/answer_length" in row
    assert "truncated: never" in row


def test_json_describes_every_id(capsys):
    assert main(["--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [item["id"] for item in items] == list(lm_envs.ENVIRONMENTS)
    for item in items:
        assert item["error"] is None
        assert item["observation"].startswith("Box(")
        assert item["action"].startswith("Discrete(")
        assert item["reward"] != "(not described)"
        assert item["episode_end"] != "(not described)"


def test_describe_reads_spaces_from_instance():
    description = describe_env("LMAddition-v0")
    env = gym.make("LMAddition-v0")
    assert description.observation == str(env.observation_space)
    assert description.action == str(env.action_space)
    assert description.reward == env.unwrapped.reward_summary


def test_card_section_joins_first_paragraph():
    assert card_section(CARD, "Rewards") == (
        'reward="a": 1 per step; reward="b": the log-probability, in nats'
    )
    assert card_section(CARD, "Episode end") == "Termination: never; Truncation: after n steps"
    assert card_section(CARD, "Arguments") == ""
    assert card_section(None, "Rewards") == ""


def test_card_fallback_for_class_without_summaries(monkeypatch):
    env_id = "LMDescribedByCard-v0"
    monkeypatch.setitem(registry, env_id, EnvSpec(id=env_id, entry_point=DescribedByCard))
    description = describe_env(env_id)
    assert description.observation == "Box(0, 4, (3,), int32)"
    assert description.action == "Discrete(5)"
    assert description.threshold == "-"
    assert description.reward == 'reward="a": 1 per step; reward="b": the log-probability, in nats'
    assert description.episode_end == "Termination: never; Truncation: after n steps"


def test_broken_id_reported_without_hiding_others(monkeypatch, capsys):
    env_id = "LMBrokenForListing-v0"
    spec = EnvSpec(id=env_id, entry_point=f"{__name__}:BrokenEnv")
    monkeypatch.setitem(registry, env_id, spec)
    monkeypatch.setitem(lm_envs.ENVIRONMENTS, env_id, {"entry_point": spec.entry_point})
    assert main([]) == 1
    out = capsys.readouterr().out
    broken = next(line for line in out.splitlines() if line.startswith(env_id))
    assert "failed to build: ValueError: corpus 'missing' not found" in broken
    assert "LMCopy-v0" in out


def test_format_table_aligns_columns():
    rows = [
        EnvDescription("A-v0", "Box(0, 1, (2,), int32)", "Discrete(2)", "-", "r", "e"),
        EnvDescription("LongerName-v0", "Box(0, 1, (2,), int32)", "Discrete(2)", "1", "r", "e"),
    ]
    lines = format_table(rows).splitlines()
    assert len(lines) == 3
    assert len({line.index("Box") for line in lines[1:]}) == 1
    assert lines[1].index("Box") == lines[0].index("observation")


def test_unknown_format_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["--format", "csv"])
    assert "invalid choice: 'csv'" in capsys.readouterr().err


def test_module_runs_as_script():
    result = subprocess.run(
        [sys.executable, "-m", "lm_envs.listing", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {item["id"] for item in json.loads(result.stdout)} == set(lm_envs.ENVIRONMENTS)
