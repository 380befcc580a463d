"""Shared fixtures: every test session gets its own empty cache folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Run torch on one thread: the test networks are tiny, and two threads on a busy 2-core
    machine made single tests 5 to 10 times slower."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Point LM_ENVS_CACHE at a fresh folder so tests never read a user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LM_ENVS_CACHE", str(tmp_path_factory.mktemp("lm_envs_cache")))
    yield
    mp.undo()


@pytest.fixture
def tiny_corpus(tmp_path):
    """A small multilingual corpus folder written by the test (40 distinct short documents)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    lines = [
        "the cat sat on the mat. ",
        "a dog ran in the park. ",
        "机器学习很有趣。",
        "emoji 😀🎉 and mixed 日本語 text. ",
    ]
    for i in range(40):
        text = f"document {i}. " + "".join(lines[(i + j) % len(lines)] for j in range(6)) + "\n"
        (folder / f"doc{i:02d}.txt").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def abc_corpus(tmp_path):
    """Forty distinct documents of the repeated text "abc" (the next token is always known)."""
    folder = tmp_path / "abc"
    folder.mkdir()
    for i in range(40):
        (folder / f"doc{i:02d}.txt").write_text("abc" * (10 + i), encoding="utf-8")
    return folder
