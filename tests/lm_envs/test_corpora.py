from __future__ import annotations

import pytest

from lm_envs.corpora import SPLITS, load_corpus, split_documents
from lm_envs.errors import UnknownCorpusError


def test_default_corpus_is_pydoc_topics():
    corpus = load_corpus()
    assert corpus.name == "pydoc"
    assert len(corpus.documents) > 20
    assert all(isinstance(doc, str) and doc for doc in corpus.documents)


def test_splits_are_disjoint_and_cover_corpus(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    parts = {name: corpus.split(name) for name in SPLITS}
    assert all(parts[name] for name in SPLITS)
    assert sum(len(p) for p in parts.values()) == len(corpus.documents)
    assert not set(parts["train"]) & set(parts["validation"])
    assert not set(parts["train"]) & set(parts["test"])


def test_duplicate_documents_in_one_split():
    documents = [f"document number {i}\n" for i in range(30)] * 2
    parts = [split_documents(documents, name) for name in SPLITS]
    assert sum(len(p) for p in parts) == 30
    assert len(set().union(*map(set, parts))) == 30


def test_splits_ignore_file_order():
    documents = [f"document number {i}\n" for i in range(30)]
    forward = split_documents(documents, "validation")
    backward = split_documents(list(reversed(documents)), "validation")
    assert forward == backward


def test_single_document_split_by_lines(tmp_path):
    path = tmp_path / "one.txt"
    lines = [f"line {i}\n" for i in range(100)]
    path.write_text("".join(lines), encoding="utf-8")
    corpus = load_corpus(path)
    train, validation, test = (corpus.split(name) for name in SPLITS)
    assert "".join(train + validation + test) == "".join(lines)
    assert validation == ["".join(lines[90:95])]
    assert test == ["".join(lines[95:])]


def test_unknown_corpus_suggests_name():
    with pytest.raises(UnknownCorpusError, match="Did you mean 'pydoc'"):
        load_corpus("pydc")


def test_missing_path_names_value(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(UnknownCorpusError, match="nope.txt"):
        load_corpus(missing)


def test_empty_corpus_rejected(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="contains no text"):
        load_corpus(path)


def test_whitespace_only_corpus_rejected(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text(" \n\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match="contains no text"):
        load_corpus(path)


def test_folder_without_txt_rejected(tmp_path):
    (tmp_path / "notes.md").write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="no .txt files"):
        load_corpus(tmp_path)


def test_undecodable_bytes_name_file_and_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt is not valid UTF-8: byte 0xe9 at offset 3"):
        load_corpus(path)


def test_corpus_type_checked():
    with pytest.raises(TypeError, match="corpus must be a string or path"):
        load_corpus(42)


def test_unknown_split_suggests_name():
    with pytest.raises(ValueError, match="Did you mean 'validation'"):
        split_documents(["a"], "valdation")


def test_multilingual_text_kept_exactly(tmp_path):
    text = "中文句子。\nemoji 👩‍👩‍👧 ok\nmixed Ελληνικά and العربية\n"
    path = tmp_path / "multi.txt"
    path.write_text(text, encoding="utf-8")
    assert load_corpus(path).documents == (text,)


def test_hf_dataset_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = [f"sentence number {i} with 中文 ✓" for i in range(30)]
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "ds"))
    corpus = load_corpus(f"hf:{tmp_path / 'ds'}")
    assert sorted(corpus.documents) == sorted(texts)


def test_hf_dataset_missing_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"body": ["x"]}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(ValueError, match="no 'text' column"):
        load_corpus(f"hf:{tmp_path / 'ds'}")


def test_hf_dataset_not_cached_is_clear_error(monkeypatch, tmp_path):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    with pytest.raises(UnknownCorpusError, match="not in the local cache"):
        load_corpus("hf:no-such-dataset-name-xyz")
