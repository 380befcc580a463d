"""LMGenerate-v0: free-running generation scored by a reference language model.

Besides the environment, this module contains what every generation environment shares:
:class:`GenerationBatch` (context windows and generated tokens of a batch of episodes) and
:func:`distinct_n`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lm_envs.corpora import DEFAULT_CORPUS, SPLITS
from lm_envs.data import OBS_DTYPE, TokenWindows, load_corpus_data, load_windows
from lm_envs.envs.batch import BatchCoreEnv
from lm_envs.reference import (
    NGRAM_REFERENCE,
    ReferenceModel,
    check_device,
    clip_log_prob,
    load_reference,
)
from lm_envs.tokenizer import LMTokenizer
from lm_envs.validation import check_choice, check_int


def distinct_n(tokens: Sequence[int] | np.ndarray, n: int) -> float:
    """Return distinct-n: unique n-grams / total n-grams of ``tokens`` (0.0 if there are none)."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    total = len(tokens) - n + 1
    if total <= 0:
        return 0.0
    grams = np.lib.stride_tricks.sliding_window_view(tokens, n)
    return len(np.unique(grams, axis=0)) / total


class GenerationBatch:
    """Context windows and generated tokens of ``num_envs`` generation episodes.

    Each window contains the last ``context_length`` ids of (left padding, prompt, generated
    tokens). ``generated[i, :lengths[i]]`` are the tokens episode ``i`` has emitted so far.
    """

    def __init__(
        self,
        num_envs: int,
        context_length: int,
        max_new_tokens: int,
        pad_id: int,
        eos_id: int | None,
    ) -> None:
        self.windows = np.full((num_envs, context_length), pad_id, dtype=OBS_DTYPE)
        self.generated = np.full((num_envs, max_new_tokens), -1, dtype=np.int64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)
        self.pad_id = pad_id
        self.eos_id = eos_id
        self.max_new_tokens = max_new_tokens

    def start(self, row: int, prompt: np.ndarray) -> None:
        """Begin a new episode in ``row`` whose window ends with ``prompt``."""
        self.windows[row] = self.pad_id
        if len(prompt):
            self.windows[row, -len(prompt) :] = prompt
        self.generated[row] = -1
        self.lengths[row] = 0

    def repeated(self, actions: np.ndarray, window: int) -> np.ndarray:
        """Return, per row, whether the action is among that row's last ``window`` generated tokens."""
        columns = np.arange(self.max_new_tokens)
        recent = (columns >= (self.lengths - window)[:, None]) & (columns < self.lengths[:, None])
        return ((self.generated == actions[:, None]) & recent).any(axis=1)

    def append(self, actions: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Push the actions of ``active`` rows into their windows and return (terminated, truncated)."""
        rows = np.flatnonzero(active)
        self.windows[rows, :-1] = self.windows[rows, 1:]
        self.windows[rows, -1] = actions[rows]
        self.generated[rows, self.lengths[rows]] = actions[rows]
        self.lengths[rows] += 1
        if self.eos_id is None:
            terminated = np.zeros(len(actions), dtype=bool)
        else:
            terminated = active & (actions == self.eos_id)
        truncated = active & ~terminated & (self.lengths >= self.max_new_tokens)
        return terminated, truncated

    def text_tokens(self, row: int) -> np.ndarray:
        """Return the tokens ``row`` generated, without a final ``<eos>``."""
        tokens = self.generated[row, : self.lengths[row]]
        if len(tokens) and tokens[-1] == self.eos_id:
            tokens = tokens[:-1]
        return tokens

    def end_infos(
        self, done: np.ndarray, decode: Callable[[np.ndarray], str]
    ) -> dict[str, np.ndarray]:
        """Return ``continuation``, ``distinct_1`` and ``distinct_2`` (with masks) of finished rows."""
        num_envs = len(done)
        continuation = np.full(num_envs, "", dtype=object)
        distinct_1 = np.zeros(num_envs, dtype=np.float64)
        distinct_2 = np.zeros(num_envs, dtype=np.float64)
        for row in np.flatnonzero(done):
            tokens = self.text_tokens(row)
            continuation[row] = decode(tokens)
            distinct_1[row] = distinct_n(tokens, 1)
            distinct_2[row] = distinct_n(tokens, 2)
        infos: dict[str, np.ndarray] = {}
        for key, values in (
            ("continuation", continuation),
            ("distinct_1", distinct_1),
            ("distinct_2", distinct_2),
        ):
            infos[key] = values
            infos[f"_{key}"] = done.copy()
        return infos

    def render_row(
        self, row: int, decode: Callable[..., str], score: float, separator: str = ""
    ) -> str:
        """Return the decoded window of ``row`` with its last generated token marked ``[[...]]``.

        Pads are dropped before ``decode(ids, skip_special_tokens=False)``, so other special
        tokens stay visible. ``separator`` goes between the context and the mark.
        """
        window = self.windows[row]
        if self.lengths[row] == 0:
            return decode(window[window != self.pad_id], skip_special_tokens=False)
        context = window[:-1]
        text = decode(context[context != self.pad_id], skip_special_tokens=False)
        action = decode(window[-1:], skip_special_tokens=False)
        return f"{text}{separator}[[{action}]] (log_prob {score:.3f})"


@dataclass
class GenerateSetup:
    """Validated arguments, prompts and reference model of LMGenerate-v0."""

    tokenizer: LMTokenizer
    windows: TokenWindows
    prompt_ends: np.ndarray  # stream positions p: stream[p - prompt_length : p] is a prompt
    context_length: int
    prompt_length: int
    max_new_tokens: int
    repetition_penalty: float
    repetition_window: int
    reference: ReferenceModel
    action_mask: np.ndarray


def check_penalty(value: object) -> float:
    """Return ``repetition_penalty`` as a float, or raise naming the value and the valid range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"repetition_penalty must be a number, got {type(value).__name__} ({value!r})."
        )
    if not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"repetition_penalty must be a finite number >= 0, got {value!r}.")
    return float(value)


def find_prompt_ends(windows: TokenWindows, prompt_length: int) -> np.ndarray:
    """Return every stream position preceded by ``prompt_length`` text tokens of one document."""
    if prompt_length == 0:
        return windows.targets
    stream = windows.stream
    is_text = (stream != windows.pad_id) & (stream != windows.eos_id)
    text_count = np.concatenate([[0], np.cumsum(is_text, dtype=np.int64)])
    ends = np.arange(prompt_length, len(stream) + 1)
    return ends[text_count[ends] - text_count[ends - prompt_length] == prompt_length]


def make_generate_setup(
    corpus: str | os.PathLike,
    tokenizer: str | os.PathLike,
    vocab_size: int | None,
    context_length: int,
    prompt_length: int,
    max_new_tokens: int,
    split: str,
    reference: str | os.PathLike,
    reference_order: int,
    repetition_penalty: float,
    repetition_window: int,
    device: str,
) -> GenerateSetup:
    """Validate the LMGenerate-v0 arguments and load (or reuse) the data and reference they name."""
    context_length = check_int("context_length", context_length, 1)
    prompt_length = check_int("prompt_length", prompt_length, 0, context_length)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
    reference_order = check_int("reference_order", reference_order, 1, 8)
    repetition_window = check_int("repetition_window", repetition_window, 1)
    repetition_penalty = check_penalty(repetition_penalty)
    device = check_device(device)
    check_choice("split", split, SPLITS)
    if vocab_size is not None:
        check_int("vocab_size", vocab_size, 4, int(np.iinfo(OBS_DTYPE).max))
    if reference == NGRAM_REFERENCE and reference_order - 1 > context_length:
        raise ValueError(
            f"reference_order={reference_order} needs context_length >= {reference_order - 1}, "
            f"got context_length={context_length}; raise context_length or lower reference_order."
        )

    corpus_key = os.fspath(corpus) if isinstance(corpus, os.PathLike) else corpus
    tokenizer_key = os.fspath(tokenizer) if isinstance(tokenizer, os.PathLike) else tokenizer
    data = load_corpus_data(corpus_key, tokenizer_key, vocab_size)
    windows = load_windows(corpus_key, tokenizer_key, vocab_size, split, context_length)
    prompt_ends = find_prompt_ends(windows, prompt_length)
    if len(prompt_ends) == 0:
        raise ValueError(
            f"no document of split {split!r} of corpus {corpus_key!r} has prompt_length="
            f"{prompt_length} tokens; lower prompt_length or use a larger corpus."
        )
    model = load_reference(
        reference,
        corpus=corpus_key,
        tokenizer_spec=tokenizer_key,
        vocab_size=vocab_size,
        order=reference_order,
        tokenizer=data.tokenizer,
        device=device,
    )
    mask = data.tokenizer.action_mask()
    mask.flags.writeable = False
    return GenerateSetup(
        data.tokenizer,
        windows,
        prompt_ends,
        context_length,
        prompt_length,
        max_new_tokens,
        repetition_penalty,
        repetition_window,
        model,
        mask,
    )


class LMGenerateCore:
    """The batch core of LMGenerate-v0: ``num_envs`` generations scored by the reference."""

    def __init__(self, setup: GenerateSetup, num_envs: int) -> None:
        self.setup = setup
        self.num_envs = num_envs
        self.vocab_size = setup.tokenizer.vocab_size
        self.context_length = setup.context_length
        self.action_mask = setup.action_mask
        self.batch = GenerationBatch(
            num_envs,
            setup.context_length,
            setup.max_new_tokens,
            setup.tokenizer.pad_id,
            setup.tokenizer.eos_id,
        )
        self.last_log_probs = np.zeros(num_envs, dtype=np.float64)

    def reset_rows(
        self, rows: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> dict[str, np.ndarray]:
        stream = self.setup.windows.stream
        ends = self.setup.prompt_ends
        for row, rng in zip(rows, rngs, strict=True):
            end = int(ends[rng.integers(len(ends))])
            self.batch.start(row, stream[end - self.setup.prompt_length : end])
        return {}

    def step_rows(self, actions: np.ndarray, active: np.ndarray):
        setup = self.setup
        log_probs = clip_log_prob(setup.reference.log_prob(self.batch.windows, actions))
        if setup.repetition_penalty > 0:
            repeated = self.batch.repeated(actions, setup.repetition_window)
        else:
            repeated = np.zeros(self.num_envs, dtype=bool)
        rewards = log_probs - setup.repetition_penalty * repeated

        terminated, truncated = self.batch.append(actions, active)
        rewards[~active] = 0.0
        self.last_log_probs = np.where(active, log_probs, self.last_log_probs)
        infos = {"log_prob": log_probs, "_log_prob": active, "repeated": repeated}
        infos["_repeated"] = active
        infos.update(self.batch.end_infos(terminated | truncated, setup.tokenizer.decode))
        return rewards, terminated, truncated, infos

    def observe(self) -> np.ndarray:
        return self.batch.windows.copy()

    def render_row(self, row: int) -> str:
        return self.batch.render_row(row, self.setup.tokenizer.decode, self.last_log_probs[row])


class LMGenerateEnv(BatchCoreEnv):
    """Free-running generation from a corpus prompt, scored by a reference language model.

    ## Description

    Each episode starts from a prompt of ``prompt_length`` consecutive tokens of one document
    of the split. The agent then writes a continuation one token at a time, and the context
    advances with the agent's own token. Each token is rewarded with its log-probability under
    a reference model given the current window, so the return of an episode is the reference
    log-likelihood of the continuation.

    ## Action space

    ``Discrete(V)``, V = the tokenizer's vocabulary size. ``<pad>`` (and ``<unk>`` for the char
    tokenizer) are never valid. ``<eos>`` is valid and ends the text. :meth:`action_masks`
    returns a bool array of length V and ``info["action_mask"]`` carries the same array.

    ## Observation space

    ``Box(0, V - 1, shape=(context_length,), dtype=int32)``: the last ``context_length`` ids
    of (prompt, generated tokens), left-padded with ``<pad>``.

    ## Rewards

    ``log p_ref(action | window)`` in nats, where ``p_ref`` is an interpolated Witten-Bell
    n-gram of order ``reference_order`` fitted on the training split (``reference="ngram"``),
    or a local Hugging Face causal LM (``reference="path/to/folder"``). Log-probabilities below
    -30 nats (including the probability 0 of ``<pad>``) are clipped to -30. With
    ``repetition_penalty > 0`` the reward is reduced by that amount when the token is among the
    last ``repetition_window`` generated tokens. ``info["log_prob"]`` is the clipped
    log-probability before the penalty and ``info["repeated"]`` is whether it applied.

    ## Starting state

    A uniformly drawn prompt: ``prompt_length`` consecutive text tokens (no ``<eos>``) of one
    document of the split, right-aligned in the window.

    ## Episode end

    * Termination: the agent emitted ``<eos>``.
    * Truncation: ``max_new_tokens`` tokens were generated.

    At the end, ``info["continuation"]`` is the decoded generated text (decoding never raises
    on partial UTF-8), and ``info["distinct_1"]``, ``info["distinct_2"]`` are the unique
    n-grams / total n-grams of the generated tokens without the final ``<eos>`` (0.0 when there
    is no n-gram).

    ## Arguments

    * ``corpus``, ``tokenizer``, ``vocab_size``, ``split``: as in ``LMNextToken-v0``.
    * ``context_length`` (64), ``prompt_length`` (16, at most ``context_length``; 0 starts from
      an empty context), ``max_new_tokens`` (64).
    * ``reference`` (``"ngram"`` or a folder with a Hugging Face causal LM, which needs
      ``pip install transformers`` and ``tokenizer="<folder>/tokenizer.json"``),
      ``reference_order`` (3), ``device`` (``"auto"``, for a Hugging Face reference).
    * ``repetition_penalty`` (0.0), ``repetition_window`` (16), ``render_mode`` (``None`` or
      ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    reward_summary = (
        "log-prob (nats) of the token under the reference model, minus the repetition penalty"
    )
    episode_end_summary = (
        "terminated: the agent emits <eos>; truncated: after max_new_tokens tokens"
    )

    def __init__(
        self,
        corpus: str | os.PathLike = DEFAULT_CORPUS,
        tokenizer: str | os.PathLike = "char",
        vocab_size: int | None = None,
        context_length: int = 64,
        prompt_length: int = 16,
        max_new_tokens: int = 64,
        split: str = "train",
        reference: str | os.PathLike = NGRAM_REFERENCE,
        reference_order: int = 3,
        repetition_penalty: float = 0.0,
        repetition_window: int = 16,
        device: str = "auto",
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            check_choice("render_mode", render_mode, tuple(self.metadata["render_modes"]))
        self.setup = make_generate_setup(
            corpus,
            tokenizer,
            vocab_size,
            context_length,
            prompt_length,
            max_new_tokens,
            split,
            reference,
            reference_order,
            repetition_penalty,
            repetition_window,
            device,
        )
        self.tokenizer = self.setup.tokenizer
        self._attach_core(LMGenerateCore(self.setup, 1), render_mode)
