from __future__ import annotations

import numpy as np
import pytest

from lm_envs.data import EncodedSplit, build_windows
from lm_envs.ngram import NGramModel, fit_ngram


def _windows(sequence: list[int], context_length: int = 3):
    ids = np.array(sequence + [1], dtype=np.uint8)
    split = EncodedSplit(ids, np.array([len(ids)]))
    return build_windows(split, context_length, pad_id=0, eos_id=1)


def test_rows_sum_to_one_and_match_prob():
    windows = _windows([2, 3, 4, 2, 3, 4, 2, 3, 5])
    model = fit_ngram(windows, order=3, vocab_size=6)
    contexts = np.array([[0, 2, 3], [3, 4, 2], [5, 5, 5], [0, 0, 0]])
    rows = model.distribution(contexts)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    for token in range(6):
        np.testing.assert_allclose(rows[:, token], model.prob(contexts, np.full(4, token)))
    assert (rows[:, 0] == 0).all()


def test_witten_bell_by_hand():
    # Targets (context of 1): (pad)->2, 2->3, 3->2, 2->3, 3->1(eos).
    windows = _windows([2, 3, 2, 3], context_length=1)
    model = fit_ngram(windows, order=2, vocab_size=4)
    counts = np.array([0, 1, 2, 2], dtype=float)
    unigram = np.where(np.arange(4) > 0, counts + 1, 0) / (counts.sum() + 3)
    np.testing.assert_allclose(model.unigram, unigram)
    # After 3: seen {2: 1, eos: 1}, c=2, T=2.
    expected = (1 + 2 * unigram[2]) / 4
    assert model.prob(np.array([[3]]), np.array([2]))[0] == pytest.approx(expected)
    # After 2: seen {3: 2}, c=2, T=1.
    assert model.prob(np.array([[2]]), np.array([3]))[0] == pytest.approx((2 + unigram[3]) / 3)


def test_unseen_context_backs_off_to_unigram():
    windows = _windows([2, 3, 2, 3], context_length=1)
    model = fit_ngram(windows, order=2, vocab_size=6)
    np.testing.assert_allclose(model.distribution(np.array([[5]]))[0], model.unigram)


def test_deterministic_sequence_predicted():
    windows = _windows([2, 3] * 50, context_length=2)
    model = fit_ngram(windows, order=2, vocab_size=4)
    rows = model.distribution(np.array([[0, 2], [0, 3]]))
    assert rows[0].argmax() == 3
    assert rows[1].argmax() == 2


def test_log_prob_of_pad_is_minus_inf():
    windows = _windows([2, 3], context_length=1)
    model = fit_ngram(windows, order=2, vocab_size=4)
    assert model.log_prob(np.array([[2]]), np.array([0]))[0] == -np.inf


def test_order_overflow_rejected():
    with pytest.raises(ValueError, match="overflows 64-bit n-gram keys; use order <= 3"):
        NGramModel(order=6, vocab_size=50_000, pad_id=0)


def test_order_must_be_positive():
    with pytest.raises(ValueError, match="order must be an int >= 1, got 0"):
        NGramModel(order=0, vocab_size=10, pad_id=0)


def test_contexts_shape_checked():
    windows = _windows([2, 3], context_length=2)
    model = fit_ngram(windows, order=3, vocab_size=4)
    with pytest.raises(ValueError, match=r"contexts must have shape \(batch, >= 2\)"):
        model.distribution(np.array([[2]]))
