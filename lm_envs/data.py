"""Encoded corpus splits and the token layout that next-token environments read.

An encoded split is every document's ids followed by ``<eos>``, stored in the cache as the
smallest unsigned dtype that can store every id of the vocabulary and memory-mapped on load.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from lm_envs.cache import atomic_save_npy, cache_dir, hash_strings
from lm_envs.corpora import SPLITS, Corpus, load_corpus
from lm_envs.tokenizer import LMTokenizer, load_tokenizer

# Observations are int32 token ids: wide enough for any vocabulary a tokenizer builds here, half
# the size of int64 in replay buffers, and accepted by torch.nn.Embedding after a cast.
OBS_DTYPE = np.int32


@dataclass(frozen=True)
class EncodedSplit:
    """One split as a flat id array (documents joined, each ending in ``<eos>``) and doc lengths."""

    ids: np.ndarray
    doc_lengths: np.ndarray  # int64, tokens per document including its <eos>


def encode_split(
    corpus: Corpus, tokenizer: LMTokenizer, split: str, use_cache: bool = True
) -> EncodedSplit:
    """Encode one split of ``corpus``; cached on disk by content hash and tokenizer."""
    key = hash_strings([corpus.fingerprint, split, tokenizer.to_json()])[:32]
    folder = cache_dir() / "encoded"
    ids_path = folder / f"{key}-ids.npy"
    lengths_path = folder / f"{key}-lengths.npy"
    if use_cache and ids_path.is_file() and lengths_path.is_file():
        return EncodedSplit(np.load(ids_path, mmap_mode="r"), np.load(lengths_path))

    documents = corpus.split(split)
    pieces = []
    for doc_ids in tokenizer.encode_batch(documents):
        pieces.append(doc_ids)
        pieces.append(np.array([tokenizer.eos_id], dtype=tokenizer.dtype))
    ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=tokenizer.dtype)
    lengths = np.array([len(p) + 1 for p in pieces[::2]], dtype=np.int64)
    if not use_cache:
        return EncodedSplit(ids, lengths)
    # The ids file is renamed into place last: its presence means both files are complete.
    atomic_save_npy(lengths_path, lengths)
    atomic_save_npy(ids_path, ids)
    return EncodedSplit(np.load(ids_path, mmap_mode="r"), lengths)


@dataclass(frozen=True)
class TokenWindows:
    """A split laid out for fast window reads.

    ``stream`` contains each document preceded by ``context_length`` pad ids, so the window of the
    ``context_length`` ids before any position is one slice and is left-padded at a document
    start. ``targets`` are the stream positions an agent predicts: every document token and each
    document's ``<eos>``.
    """

    stream: np.ndarray  # OBS_DTYPE
    targets: np.ndarray  # int64 positions into stream
    context_length: int
    pad_id: int
    eos_id: int

    def windows(self, positions: np.ndarray) -> np.ndarray:
        """Return the context windows (len(positions), context_length) ending before ``positions``."""
        offsets = np.arange(-self.context_length, 0, dtype=np.int64)
        return self.stream[positions[:, None] + offsets]


def build_windows(
    split: EncodedSplit, context_length: int, pad_id: int, eos_id: int
) -> TokenWindows:
    """Lay out ``split`` with ``context_length`` pad ids before each document."""
    lengths = np.asarray(split.doc_lengths, dtype=np.int64)
    n_docs = len(lengths)
    total = int(lengths.sum()) + n_docs * context_length
    stream = np.full(total, pad_id, dtype=OBS_DTYPE)
    targets = np.empty(int(lengths.sum()), dtype=np.int64)
    source = np.asarray(split.ids)
    read = 0
    write = 0
    target_write = 0
    for length in lengths:
        write += context_length
        stream[write : write + length] = source[read : read + length]
        targets[target_write : target_write + length] = np.arange(write, write + length)
        read += length
        write += length
        target_write += length
    return TokenWindows(stream, targets, context_length, pad_id, eos_id)


@dataclass(frozen=True)
class CorpusData:
    """A loaded corpus, its tokenizer and the encoded splits."""

    corpus: Corpus
    tokenizer: LMTokenizer
    splits: dict[str, EncodedSplit]


@functools.lru_cache(maxsize=8)
def load_corpus_data(
    corpus: str | os.PathLike = "pydoc",
    tokenizer: str | os.PathLike = "char",
    vocab_size: int | None = None,
) -> CorpusData:
    """Load a corpus, build its tokenizer on the training split and encode all splits.

    Results are memoized in-process, so many environments over the same corpus share memory.
    """
    loaded = load_corpus(corpus)
    train = loaded.split("train")
    lm_tokenizer = load_tokenizer(tokenizer, train_texts=train, vocab_size=vocab_size)
    splits = {name: encode_split(loaded, lm_tokenizer, name) for name in SPLITS}
    return CorpusData(loaded, lm_tokenizer, splits)


@functools.lru_cache(maxsize=16)
def load_windows(
    corpus: str | os.PathLike,
    tokenizer: str | os.PathLike,
    vocab_size: int | None,
    split: str,
    context_length: int,
) -> TokenWindows:
    """Return the memoized :class:`TokenWindows` of one split."""
    data = load_corpus_data(corpus, tokenizer, vocab_size)
    return build_windows(
        data.splits[split], context_length, data.tokenizer.pad_id, data.tokenizer.eos_id
    )
