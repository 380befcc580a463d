"""DQN presets: every entry builds a valid config, and bad ids, keys and files are rejected."""

from __future__ import annotations

import re

import pytest

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.dqn_config import DQNConfig
from agents.presets import PRESET_FILE, load_preset, preset_config, preset_ids
from lm_envs.registration import ENVIRONMENTS

REQUIRED = ("LMNextToken-v0", "LMCopy-v0", "MarkovNextToken-v0", "LMGenerate-v0")


def test_preset_file_is_packaged_beside_module():
    assert PRESET_FILE.is_file()
    assert PRESET_FILE.parent.name == "presets"


@pytest.mark.parametrize("env_id", REQUIRED)
def test_required_ids_have_presets(env_id):
    assert env_id in preset_ids()


@pytest.mark.parametrize("env_id", preset_ids())
def test_every_preset_builds_config(env_id):
    assert env_id in ENVIRONMENTS
    values = load_preset(env_id)
    config = DQNConfig(**values)
    for name, value in values.items():
        assert getattr(config, name) == value, name


def test_every_changed_value_has_reason():
    """Each setting line in the file carries a comment, except the shared budget lines."""
    silent = []
    for line in PRESET_FILE.read_text(encoding="utf-8").splitlines():
        if re.match(r"^  [a-z_]+: ", line) and "#" not in line:
            silent.append(line.strip())
    assert silent == []


def test_teacher_forced_presets_use_gamma_zero():
    assert load_preset("LMNextToken-v0")["gamma"] == 0.0
    assert load_preset("MarkovNextToken-v0")["gamma"] == 0.0


def test_load_preset_returns_fresh_dict():
    first = load_preset("LMNextToken-v0")
    first["gamma"] = 0.9
    assert load_preset("LMNextToken-v0")["gamma"] == 0.0


def test_module_prefix_accepted():
    assert load_preset("lm_envs:LMNextToken-v0") == load_preset("LMNextToken-v0")


def test_unknown_id_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'LMNextToken-v0'") as error:
        load_preset("LMNextTokn-v0")
    assert "Presets exist for" in str(error.value)


def test_id_without_preset_lists_ids():
    with pytest.raises(ValueError, match=r"no DQN preset for environment id 'Nothing-v9'\. "):
        load_preset("Nothing-v9")


def test_non_string_id_rejected():
    with pytest.raises(TypeError, match="env_id must be a string"):
        load_preset(3)


def test_preset_config_applies_overrides():
    config = preset_config("LMNextToken-v0", total_steps=1234, dueling=True)
    assert isinstance(config, DQNConfig)
    assert config.total_steps == 1234
    assert config.dueling is True
    assert config.learning_rate == load_preset("LMNextToken-v0")["learning_rate"]


def test_preset_config_rejects_unknown_override():
    with pytest.raises(ValueError, match="Did you mean 'learning_rate'"):
        preset_config("LMNextToken-v0", learning_rat=1e-3)


def test_unknown_key_in_file_suggests_field(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("Demo-v0:\n  gama: 0.0\n  batch_size: 32\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"sets \['gama'\].*Did you mean 'gamma'"):
        load_preset("Demo-v0", path)


def test_bad_value_in_file_names_preset(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("Demo-v0:\n  learning_rate: 1e-3\n", encoding="utf-8")
    # YAML 1.1 reads 1e-3 (no decimal point) as a string.
    with pytest.raises(TypeError, match="preset 'Demo-v0' .* learning_rate must be a number"):
        load_preset("Demo-v0", path)


def test_out_of_range_value_in_file(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("Demo-v0:\n  gamma: 1.5\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"preset 'Demo-v0' .* gamma must be a finite number"):
        load_preset("Demo-v0", path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must map environment ids to settings, got list"),
        ("Demo-v0: 3\n", "preset 'Demo-v0' in .* must map DQNConfig fields to values, got int"),
        ("Demo-v0: [1\n", "is not valid YAML"),
    ],
)
def test_malformed_file_rejected(tmp_path, text, message):
    path = tmp_path / "presets.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_preset("Demo-v0", path)
