from __future__ import annotations

import numpy as np
import pytest

from lm_envs.cache import cache_dir
from lm_envs.tokenizer import EOS_TOKEN, PAD_TOKEN, load_tokenizer

MULTILINGUAL = [
    "机器学习很有趣。",
    "emoji 😀🎉 family 👩‍👩‍👧 flag 🇯🇵",
    "mixed: English, 日本語, Ελληνικά, العربية, עברית.",
    "tabs\tand\nnewlines\r\n  spaces  ",
    "literal <eos> and <pad> in text",
]
TRAIN = MULTILINGUAL * 3 + ["the quick brown fox jumps over the lazy dog. " * 5]


@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
@pytest.mark.parametrize("text", MULTILINGUAL)
def test_round_trip_exact(kind, text):
    tokenizer = load_tokenizer(kind, train_texts=TRAIN, vocab_size=300 if kind == "bpe" else None)
    ids = tokenizer.encode(text)
    assert ids.dtype == tokenizer.dtype
    assert tokenizer.decode(ids) == text


@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
def test_special_ids_first_and_distinct(kind):
    tokenizer = load_tokenizer(kind, train_texts=TRAIN, vocab_size=300 if kind == "bpe" else None)
    assert tokenizer.pad_id == 0
    assert tokenizer.eos_id == 1
    mask = tokenizer.action_mask()
    assert mask.shape == (tokenizer.vocab_size,)
    assert not mask[tokenizer.pad_id]
    assert mask[tokenizer.eos_id]


@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
def test_literal_special_text_is_not_special(kind):
    tokenizer = load_tokenizer(kind, train_texts=TRAIN, vocab_size=300 if kind == "bpe" else None)
    ids = tokenizer.encode("x <eos> <pad> y")
    assert tokenizer.eos_id not in ids
    assert tokenizer.pad_id not in ids


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  "])
@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
def test_empty_and_whitespace_text(kind, text):
    tokenizer = load_tokenizer(kind, train_texts=TRAIN, vocab_size=300 if kind == "bpe" else None)
    ids = tokenizer.encode(text)
    if kind == "byte":
        assert len(ids) == len(text.encode("utf-8"))
    assert tokenizer.decode(ids) == text


def test_byte_tokenizer_one_id_per_byte():
    tokenizer = load_tokenizer("byte")
    text = "a中😀"
    ids = tokenizer.encode(text)
    assert tokenizer.vocab_size == 258
    assert list(ids) == [b + 2 for b in text.encode("utf-8")]


def test_partial_utf8_decodes_without_error():
    tokenizer = load_tokenizer("byte")
    ids = tokenizer.encode("中")
    text = tokenizer.decode(ids[:2])
    assert isinstance(text, str)
    assert "中" not in text


def test_char_unknown_character_maps_to_unk():
    tokenizer = load_tokenizer("char", train_texts=["abc"])
    ids = tokenizer.encode("abz")
    assert ids[-1] == tokenizer.unk_id
    assert not tokenizer.action_mask()[tokenizer.unk_id]


def test_char_vocab_cap_keeps_frequent_characters():
    tokenizer = load_tokenizer("char", train_texts=["aaaaabbbc"], vocab_size=5)
    assert tokenizer.vocab_size == 5
    assert tokenizer.encode("c")[0] == tokenizer.unk_id
    assert tokenizer.decode(tokenizer.encode("ab")) == "ab"


def test_bpe_vocab_size_respected():
    tokenizer = load_tokenizer("bpe", train_texts=TRAIN, vocab_size=280)
    assert tokenizer.vocab_size <= 280
    assert tokenizer.dtype == np.uint16


def test_byte_ids_stored_as_uint16():
    assert load_tokenizer("byte").dtype == np.uint16


def test_small_char_ids_stored_as_uint8():
    assert load_tokenizer("char", train_texts=["abc"]).dtype == np.uint8


def test_trained_tokenizer_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("LM_ENVS_CACHE", str(tmp_path))
    first = load_tokenizer("bpe", train_texts=TRAIN, vocab_size=300)
    files = list((cache_dir() / "tokenizers").glob("bpe-*.json"))
    assert len(files) == 1
    second = load_tokenizer("bpe", train_texts=TRAIN, vocab_size=300)
    assert first.to_json() == second.to_json()
    assert not list((cache_dir() / "tokenizers").glob(".*.tmp"))


def test_tokenizer_json_path_round_trip(tmp_path):
    tokenizer = load_tokenizer("bpe", train_texts=TRAIN, vocab_size=300)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    loaded = load_tokenizer(path)
    assert loaded.vocab_size == tokenizer.vocab_size
    assert loaded.decode(loaded.encode(MULTILINGUAL[1])) == MULTILINGUAL[1]


def test_tokenizer_json_without_specials_gets_them(tmp_path):
    from tokenizers import Tokenizer, models

    plain = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    path = tmp_path / "plain.json"
    plain.save(str(path))
    loaded = load_tokenizer(path)
    assert loaded.tokenizer.token_to_id(PAD_TOKEN) is not None
    assert loaded.tokenizer.token_to_id(EOS_TOKEN) is not None


def test_unknown_kind_suggests():
    with pytest.raises(ValueError, match="Did you mean 'bpe'"):
        load_tokenizer("bep")


def test_bpe_needs_vocab_size():
    with pytest.raises(ValueError, match="needs vocab_size"):
        load_tokenizer("bpe", train_texts=TRAIN)


def test_bpe_vocab_too_small():
    with pytest.raises(ValueError, match="vocab_size=100 is out of range"):
        load_tokenizer("bpe", train_texts=TRAIN, vocab_size=100)


def test_byte_rejects_vocab_size():
    with pytest.raises(ValueError, match="exactly 258 ids"):
        load_tokenizer("byte", vocab_size=512)


def test_vocab_size_type_checked():
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        load_tokenizer("char", train_texts=["a"], vocab_size="64")


def test_malformed_tokenizer_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="could not be parsed"):
        load_tokenizer(path)


def test_char_needs_training_text():
    with pytest.raises(ValueError, match="needs non-empty training texts"):
        load_tokenizer("char", train_texts=[])
