from __future__ import annotations

import threading

import numpy as np

from lm_envs.cache import atomic_save_npy, atomic_write_text, cache_dir, smallest_uint_dtype
from lm_envs.corpora import load_corpus
from lm_envs.data import build_windows, encode_split
from lm_envs.tokenizer import load_tokenizer


def test_encoded_split_cached_and_memory_mapped(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    tokenizer = load_tokenizer("char", train_texts=corpus.split("train"))
    first = encode_split(corpus, tokenizer, "train")
    second = encode_split(corpus, tokenizer, "train")
    assert isinstance(second.ids, np.memmap)
    assert second.ids.dtype == np.uint8
    np.testing.assert_array_equal(first.ids, second.ids)
    assert int(second.doc_lengths.sum()) == len(second.ids)
    files = list((cache_dir() / "encoded").glob("*.npy"))
    assert files and not list((cache_dir() / "encoded").glob(".*.tmp"))


def test_encoded_split_decodes_to_documents(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    tokenizer = load_tokenizer("byte")
    encoded = encode_split(corpus, tokenizer, "validation")
    pieces = np.split(np.asarray(encoded.ids), np.cumsum(encoded.doc_lengths)[:-1])
    decoded = [tokenizer.decode(piece[:-1]) for piece in pieces]
    assert decoded == corpus.split("validation")
    assert all(piece[-1] == tokenizer.eos_id for piece in pieces)


def test_windows_layout_pads_each_document():
    from lm_envs.data import EncodedSplit

    split = EncodedSplit(np.array([5, 6, 1, 7, 1], dtype=np.uint8), np.array([3, 2]))
    windows = build_windows(split, context_length=2, pad_id=0, eos_id=1)
    np.testing.assert_array_equal(windows.stream, [0, 0, 5, 6, 1, 0, 0, 7, 1])
    np.testing.assert_array_equal(windows.targets, [2, 3, 4, 7, 8])
    np.testing.assert_array_equal(
        windows.windows(windows.targets[[0, 3, 4]]), [[0, 0], [0, 0], [0, 7]]
    )


def test_smallest_dtype():
    assert smallest_uint_dtype(256) == np.uint8
    assert smallest_uint_dtype(257) == np.uint16
    assert smallest_uint_dtype(70_000) == np.uint32


def test_atomic_writes_leave_no_partial_files(tmp_path):
    target = tmp_path / "out.txt"

    def writer(i: int) -> None:
        atomic_write_text(target, f"{i}" * 10_000)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    content = target.read_text()
    assert len(content) == 10_000
    assert len(set(content)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    atomic_save_npy(tmp_path / "a.npy", np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), [0, 1, 2])


def test_cache_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("LM_ENVS_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert (tmp_path / "c").is_dir()
