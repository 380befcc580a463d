"""DQN hyperparameter presets per environment id, read from ``agents/presets/dqn.yaml``.

Each top-level key of the YAML file is a registered environment id, and its value maps
:class:`~agents.dqn_config.DQNConfig` field names to values. A comment beside each value that
differs from the DQNConfig default gives the reason. Typical use::

    from agents.presets import preset_config

    config = preset_config("LMNextToken-v0", total_steps=50_000)
    agent = DQN(env, config)
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml

from agents.dqn_config import DQNConfig
from lm_envs.errors import suggest

PRESET_FILE = Path(__file__).resolve().parent / "presets" / "dqn.yaml"


def _read_presets(path: Path) -> dict[str, dict]:
    """Parse and check the layout of a preset file (read on every call, so edits show)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"the preset file {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"the preset file {path} must map environment ids to settings, got "
            f"{type(data).__name__}."
        )
    for env_id, entry in data.items():
        if not isinstance(entry, dict):
            raise ValueError(
                f"preset {env_id!r} in {path} must map DQNConfig fields to values, got "
                f"{type(entry).__name__}."
            )
    return data


def _bare_id(env_id: object) -> str:
    """Return ``env_id`` without a ``module:`` prefix (``"lm_envs:LMNextToken-v0"``)."""
    if not isinstance(env_id, str):
        raise TypeError(
            f"env_id must be a string such as 'LMNextToken-v0', got {type(env_id).__name__}."
        )
    return env_id.rpartition(":")[2]


def preset_ids(path: str | Path = PRESET_FILE) -> tuple[str, ...]:
    """Return the environment ids that have a preset, in file order."""
    return tuple(_read_presets(Path(path)))


def load_preset(env_id: str, path: str | Path = PRESET_FILE) -> dict:
    """Return the preset of ``env_id`` as DQNConfig field values.

    Args:
        env_id: a registered id such as ``"LMNextToken-v0"``; a ``"lm_envs:"`` prefix is
            accepted.
        path: the preset file; the packaged ``agents/presets/dqn.yaml`` by default.

    Raises:
        TypeError: ``env_id`` is not a string, or a value has the wrong type.
        ValueError: the id has no preset (the message lists the ids that have one and
            suggests the closest), the entry names a field DQNConfig does not have, or a value
            is out of range.
    """
    path = Path(path)
    presets = _read_presets(path)
    bare = _bare_id(env_id)
    if bare not in presets:
        hint = suggest(bare, presets)
        raise ValueError(
            f"no DQN preset for environment id {env_id!r}.{hint} Presets exist for "
            f"{sorted(presets)}; for another id start from DQNConfig() and set gamma for the task."
        )
    entry = presets[bare]
    known = tuple(field.name for field in fields(DQNConfig))
    unknown = sorted(set(entry) - set(known))
    if unknown:
        hint = suggest(unknown[0], known)
        raise ValueError(
            f"preset {bare!r} in {path} sets {unknown}, which DQNConfig does not have.{hint}"
        )
    try:
        config = DQNConfig.from_dict(entry)
    except (TypeError, ValueError) as error:
        raise type(error)(f"preset {bare!r} in {path} is invalid: {error}") from None
    # The values as DQNConfig normalised them (ints as floats where a float is expected).
    return {name: getattr(config, name) for name in entry}


def preset_config(env_id: str, path: str | Path = PRESET_FILE, **overrides: object) -> DQNConfig:
    """Return the DQNConfig of ``env_id``'s preset with ``overrides`` applied on top.

    Overrides with a name DQNConfig does not have raise ValueError with a did-you-mean hint.
    """
    return DQNConfig.from_dict({**load_preset(env_id, path), **overrides})
