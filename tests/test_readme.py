"""Run the README's Python snippets with small budgets, so the front page stays true."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

# Budget substitutions that keep the snippets to a few seconds; each must match once.
SMALLER = {
    'preset_config("LMNextToken-v0")': 'preset_config("LMNextToken-v0", total_steps=4096)',
    "progress_bar=True": "progress_bar=False",
    "num_envs=1024": "num_envs=8",
}


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "\n".join(re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S))
    for old, new in SMALLER.items():
        assert code.count(old) == 1, f"README no longer contains {old!r}"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert (tmp_path / "runs" / "dqn-demo").is_dir()
    assert namespace["obs"].dtype.name == "int32"


def test_readme_names_both_commands():
    text = README.read_text(encoding="utf-8")
    assert "lm-envs-train" in text
    assert 'pip install -e ".[dev]" && python -m pytest' in text
