"""Tokenizers built with Hugging Face ``tokenizers``, with pad and end-of-text special tokens.

Kinds:

* ``"byte"``: one token per UTF-8 byte (256 ids after the specials), no training;
* ``"char"``: one token per character of the training split, plus ``<unk>`` for characters
  it does not contain;
* ``"bpe"``: byte-level BPE trained on the training split to ``vocab_size`` ids;
* a path to a saved ``tokenizer.json``; ``<pad>`` and ``<eos>`` are added when it lacks them.

Special ids come first: ``<pad>`` is 0 and ``<eos>`` is 1 for the built-in kinds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lm_envs.cache import atomic_write_text, cache_dir, hash_strings, smallest_uint_dtype
from lm_envs.errors import suggest

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
TOKENIZER_KINDS = ("byte", "char", "bpe")
# Bumped whenever the way a kind is built changes, so stale cache entries are not reused.
_BUILD_VERSION = "1"


def _byte_to_unicode() -> dict[int, str]:
    """Map each byte to the printable character that byte-level pre-tokenization uses for it."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


class LMTokenizer:
    """A Hugging Face tokenizer with the pad and end-of-text ids that environments need.

    Args:
        tokenizer: the underlying ``tokenizers.Tokenizer``; it must contain ``<pad>`` and
            ``<eos>``.
        kind: the kind it was built as, or ``"file"``.
    """

    def __init__(self, tokenizer: Tokenizer, kind: str = "file") -> None:
        self.tokenizer = tokenizer
        self.kind = kind
        # Text that happens to contain "<eos>" or "<pad>" is encoded as plain characters, so
        # special ids in an encoded corpus only come from document boundaries.
        tokenizer.encode_special_tokens = True
        pad_id = tokenizer.token_to_id(PAD_TOKEN)
        eos_id = tokenizer.token_to_id(EOS_TOKEN)
        if pad_id is None or eos_id is None:
            raise ValueError(
                f"tokenizer lacks {PAD_TOKEN!r} or {EOS_TOKEN!r}; build it with load_tokenizer."
            )
        self.pad_id: int = pad_id
        self.eos_id: int = eos_id
        self.unk_id: int | None = tokenizer.token_to_id(UNK_TOKEN)
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)
        special = {pad_id, eos_id}
        if self.unk_id is not None:
            special.add(self.unk_id)
        self.special_ids: tuple[int, ...] = tuple(sorted(special))
        self.dtype: np.dtype = smallest_uint_dtype(self.vocab_size)

    def encode(self, text: str) -> np.ndarray:
        """Return the token ids of ``text`` (no special tokens added) in :attr:`dtype`."""
        return np.asarray(
            self.tokenizer.encode(text, add_special_tokens=False).ids, dtype=self.dtype
        )

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Encode several texts in parallel; returns one id array per text."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(enc.ids, dtype=self.dtype) for enc in encodings]

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        """Return the text of ``ids``; incomplete UTF-8 sequences decode to U+FFFD, never raise."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def id_to_token(self, token_id: int) -> str:
        """Return the vocabulary entry of one id (byte-level entries are shown as stored)."""
        token = self.tokenizer.id_to_token(int(token_id))
        return token if token is not None else f"<id {token_id}>"

    def action_mask(self) -> np.ndarray:
        """Return a bool array of size ``vocab_size``: True for ids an agent may emit.

        ``<pad>`` and ``<unk>`` are never valid; ``<eos>`` is valid because emitting it is how a
        generated text ends.
        """
        mask = np.ones(self.vocab_size, dtype=bool)
        mask[self.pad_id] = False
        if self.unk_id is not None:
            mask[self.unk_id] = False
        return mask

    def to_json(self) -> str:
        """Return the tokenizer serialized as ``tokenizer.json`` text."""
        return self.tokenizer.to_str()

    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` to ``path`` atomically."""
        atomic_write_text(path, self.to_json())

    def __repr__(self) -> str:
        return f"LMTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size})"


def _build_byte() -> Tokenizer:
    vocab = {PAD_TOKEN: 0, EOS_TOKEN: 1}
    for byte, char in sorted(_byte_to_unicode().items()):
        vocab[char] = byte + 2
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([PAD_TOKEN, EOS_TOKEN])
    return tokenizer


def _build_char(train_texts: Sequence[str], vocab_size: int | None) -> Tokenizer:
    counts: dict[str, int] = {}
    for text in train_texts:
        for char in set(text):
            counts[char] = counts.get(char, 0) + text.count(char)
    # Most frequent characters first, ties by code point, so a vocab_size cap keeps the common ones.
    chars = sorted(counts, key=lambda c: (-counts[c], c))
    if vocab_size is not None:
        chars = chars[: max(0, vocab_size - 3)]
    vocab = {PAD_TOKEN: 0, EOS_TOKEN: 1, UNK_TOKEN: 2}
    for char in sorted(chars):
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK_TOKEN))
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens([PAD_TOKEN, EOS_TOKEN, UNK_TOKEN])
    return tokenizer


def _build_bpe(train_texts: Sequence[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(train_texts, trainer=trainer)
    return tokenizer


def _validate_vocab_size(kind: str, vocab_size: int | None) -> None:
    if vocab_size is None:
        if kind == "bpe":
            raise ValueError(
                "tokenizer='bpe' needs vocab_size, e.g. vocab_size=4096 in Python or "
                "--vocab-size 4096 on the command line."
            )
        return
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise TypeError(
            f"vocab_size must be an int, got {type(vocab_size).__name__} ({vocab_size!r})."
        )
    maximum = int(np.iinfo(np.uint32).max) + 1
    if kind == "bpe" and not 258 + 1 <= vocab_size <= maximum:
        raise ValueError(
            f"vocab_size={vocab_size} is out of range for tokenizer='bpe'; use a value from 259 "
            f"(256 bytes, 2 specials, 1 merge) to {maximum}."
        )
    if kind == "char" and vocab_size < 4:
        raise ValueError(
            f"vocab_size={vocab_size} is too small for tokenizer='char'; use at least 4."
        )
    if kind == "byte" and vocab_size != 258:
        raise ValueError(
            f"tokenizer='byte' has exactly 258 ids, got vocab_size={vocab_size}; pass vocab_size=None."
        )


def load_tokenizer(
    spec: str | os.PathLike = "char",
    train_texts: Sequence[str] = (),
    vocab_size: int | None = None,
    use_cache: bool = True,
) -> LMTokenizer:
    """Build or load a tokenizer.

    Args:
        spec: ``"byte"``, ``"char"``, ``"bpe"`` or a path to a ``tokenizer.json``.
        train_texts: the training split, used by ``"char"`` and ``"bpe"``.
        vocab_size: size of the vocabulary including specials (required for ``"bpe"``; an
            upper bound for ``"char"``).
        use_cache: reuse a tokenizer trained earlier on the same texts and settings.

    Raises:
        ValueError: unknown kind, missing file, or a vocab_size the kind cannot have.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(
            f"tokenizer must be a string or path, got {type(spec).__name__} ({spec!r})."
        )
    spec_text = os.fspath(spec)
    if spec_text not in TOKENIZER_KINDS:
        path = Path(spec_text).expanduser()
        if not path.is_file():
            raise ValueError(
                f"tokenizer {spec_text!r} is neither one of {list(TOKENIZER_KINDS)} nor an existing "
                f"tokenizer.json file.{suggest(spec_text, TOKENIZER_KINDS)}"
            )
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # tokenizers raises a bare Exception on malformed JSON
            raise ValueError(f"tokenizer file {str(path)!r} could not be parsed: {error}") from None
        missing = [t for t in (PAD_TOKEN, EOS_TOKEN) if tokenizer.token_to_id(t) is None]
        if missing:
            tokenizer.add_special_tokens(missing)
        return LMTokenizer(tokenizer, kind="file")

    _validate_vocab_size(spec_text, vocab_size)
    if spec_text == "byte":
        return LMTokenizer(_build_byte(), kind="byte")
    if not any(text for text in train_texts):
        raise ValueError(f"tokenizer={spec_text!r} needs non-empty training texts to learn from.")

    key = hash_strings([_BUILD_VERSION, spec_text, str(vocab_size), *train_texts])
    path = cache_dir() / "tokenizers" / f"{spec_text}-{key[:32]}.json"
    if use_cache and path.is_file():
        return LMTokenizer(Tokenizer.from_file(str(path)), kind=spec_text)
    if spec_text == "char":
        tokenizer = _build_char(train_texts, vocab_size)
    else:
        tokenizer = _build_bpe(train_texts, int(vocab_size))  # type: ignore[arg-type]
    result = LMTokenizer(tokenizer, kind=spec_text)
    if use_cache:
        result.save(path)
    return result


def describe(tokenizer: LMTokenizer) -> str:
    """Return a one-line JSON description (kind, vocab size, special ids) for reports."""
    return json.dumps(
        {
            "kind": tokenizer.kind,
            "vocab_size": tokenizer.vocab_size,
            "pad_id": tokenizer.pad_id,
            "eos_id": tokenizer.eos_id,
            "unk_id": tokenizer.unk_id,
        }
    )
