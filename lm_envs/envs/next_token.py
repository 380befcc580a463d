"""LMNextToken-v0: teacher-forced next-token prediction over a corpus split."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lm_envs.corpora import DEFAULT_CORPUS, SPLITS
from lm_envs.data import OBS_DTYPE, TokenWindows, load_corpus_data, load_windows
from lm_envs.ngram import NGramModel
from lm_envs.reference import clip_log_prob, ngram_reference
from lm_envs.tokenizer import LMTokenizer
from lm_envs.validation import check_action, check_choice, check_int

REWARDS = ("match", "log_prob")


@dataclass
class NextTokenSetup:
    """Validated arguments and loaded data shared by the single and batched environments."""

    tokenizer: LMTokenizer
    windows: TokenWindows
    context_length: int
    episode_length: int
    reward: str
    reference: NGramModel | None
    action_mask: np.ndarray

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def make_setup(
    corpus: str | os.PathLike,
    tokenizer: str | os.PathLike,
    vocab_size: int | None,
    context_length: int,
    episode_length: int,
    split: str,
    reward: str,
    reference_order: int,
) -> NextTokenSetup:
    """Validate the environment arguments and load (or reuse) the data they name."""
    context_length = check_int("context_length", context_length, 1)
    episode_length = check_int("episode_length", episode_length, 1)
    reference_order = check_int("reference_order", reference_order, 1, 8)
    check_choice("split", split, SPLITS)
    check_choice("reward", reward, REWARDS)
    if vocab_size is not None:
        check_int("vocab_size", vocab_size, 4, int(np.iinfo(OBS_DTYPE).max))
    if reward == "log_prob" and reference_order - 1 > context_length:
        raise ValueError(
            f"reference_order={reference_order} needs context_length >= {reference_order - 1}, "
            f"got context_length={context_length}; raise context_length or lower reference_order."
        )

    # Load the data; plain strings as keys so in-process caches match str and Path arguments.
    corpus_key = os.fspath(corpus) if isinstance(corpus, os.PathLike) else corpus
    tokenizer_key = os.fspath(tokenizer) if isinstance(tokenizer, os.PathLike) else tokenizer
    data = load_corpus_data(corpus_key, tokenizer_key, vocab_size)
    windows = load_windows(corpus_key, tokenizer_key, vocab_size, split, context_length)
    if len(windows.targets) < episode_length:
        raise ValueError(
            f"split {split!r} of corpus {corpus_key!r} has {len(windows.targets)} tokens, fewer than "
            f"one episode of episode_length={episode_length}; lower episode_length or use a "
            "larger corpus."
        )

    reference = None
    if reward == "log_prob":
        reference = ngram_reference(corpus_key, tokenizer_key, vocab_size, reference_order)

    mask = data.tokenizer.action_mask()
    mask.flags.writeable = False
    return NextTokenSetup(
        data.tokenizer, windows, context_length, episode_length, reward, reference, mask
    )


def render_step(
    tokenizer: LMTokenizer, window: np.ndarray, action: int | None, target: int | None
) -> str:
    """Return the decoded context with the last action marked as ``[[action]]``."""
    context = tokenizer.decode(window[window != tokenizer.pad_id])
    if action is None:
        return context
    target_text = tokenizer.decode([target], skip_special_tokens=False)
    verdict = "match" if action == target else f"miss, target {target_text!r}"
    return f"{context}[[{tokenizer.decode([action], skip_special_tokens=False)}]] ({verdict})"


class LMNextTokenEnv(gym.Env):
    """Teacher-forced next-token prediction over a split of a text corpus.

    ## Description

    The agent reads a window of the last ``context_length`` token ids of a document and names
    the next token. Whatever it names, the context then advances with the true token, so each
    step is an independent contextual-bandit decision and a discount of 0 is the natural
    setting. Documents are encoded with a Hugging Face tokenizer built on the training split.

    ## Action space

    ``Discrete(V)``, V = the tokenizer's vocabulary size. ``<pad>`` (and ``<unk>`` for the char
    tokenizer) are never valid: :meth:`action_masks` returns a bool array of length V, True for
    valid ids, and ``info["action_mask"]`` carries the same array.

    ## Observation space

    ``Box(0, V - 1, shape=(context_length,), dtype=int32)``: the ids before the next token,
    left-padded with ``<pad>`` at a document start.

    ## Rewards

    * ``reward="match"``: 1 if the action is the true next token, else 0.
    * ``reward="log_prob"``: natural-log probability (nats, <= 0) of the action under an
      interpolated n-gram model of order ``reference_order`` fitted on the training split,
      clipped below at ``lm_envs.reference.LOG_PROB_FLOOR`` (-30) so ``<pad>`` stays finite.

    ## Starting state

    A uniformly drawn position of the split; the first window may be all padding.

    ## Episode end

    * Termination: the true next token was the document's ``<eos>``, the text really ended.
    * Truncation: ``episode_length`` steps were taken.

    ``info["target"]`` is the true token of the step just taken.

    ## Arguments

    * ``corpus``: ``"pydoc"`` (embedded default), a path to a UTF-8 text file or folder, or
      ``"hf:NAME"``.
    * ``tokenizer``: ``"char"`` (default), ``"byte"``, ``"bpe"`` or a ``tokenizer.json`` path.
    * ``vocab_size``: vocabulary size for ``"bpe"`` (required) or a cap for ``"char"``.
    * ``context_length`` (64), ``episode_length`` (128), ``split`` (``"train"``,
      ``"validation"``, ``"test"``), ``reward`` (``"match"``, ``"log_prob"``),
      ``reference_order`` (3), ``render_mode`` (``None`` or ``"ansi"``).

    ## Version history

    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    reward_summary = "match: 1 if the action is the true next token, else 0; log_prob: n-gram log-probability (nats)"
    episode_end_summary = "terminated at the document's <eos>; truncated after episode_length steps"

    def __init__(
        self,
        corpus: str | os.PathLike = DEFAULT_CORPUS,
        tokenizer: str | os.PathLike = "char",
        vocab_size: int | None = None,
        context_length: int = 64,
        episode_length: int = 128,
        split: str = "train",
        reward: str = "match",
        reference_order: int = 3,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            check_choice("render_mode", render_mode, tuple(self.metadata["render_modes"]))
        self.setup = make_setup(
            corpus,
            tokenizer,
            vocab_size,
            context_length,
            episode_length,
            split,
            reward,
            reference_order,
        )
        self.render_mode = render_mode
        self.tokenizer = self.setup.tokenizer
        vocab = self.setup.vocab_size
        self.action_space = spaces.Discrete(vocab)
        self.observation_space = spaces.Box(
            0, vocab - 1, shape=(self.setup.context_length,), dtype=OBS_DTYPE
        )
        self._position = 0
        self._steps = 0
        self._done = True
        self._warned_after_done = False
        self._last: tuple[int, int] | None = None

    def action_masks(self) -> np.ndarray:
        """Return a bool array of length V: True for token ids that are valid actions."""
        return self.setup.action_mask.copy()

    def _observation(self) -> np.ndarray:
        stream = self.setup.windows.stream
        return stream[self._position - self.setup.context_length : self._position].copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        targets = self.setup.windows.targets
        self._position = int(targets[self.np_random.integers(len(targets))])
        self._steps = 0
        self._done = False
        self._last = None
        return self._observation(), {"action_mask": self.action_masks()}

    def step(self, action):
        action = check_action(action, self.setup.vocab_size)
        if self._done:
            if not self._warned_after_done:
                warnings.warn(
                    "step() called after the episode ended; call reset() first. The final "
                    "observation is returned again with reward 0.",
                    stacklevel=2,
                )
                self._warned_after_done = True
            return self._observation(), 0.0, True, False, {"action_mask": self.action_masks()}

        stream = self.setup.windows.stream
        target = int(stream[self._position])
        if self.setup.reward == "match":
            reward = float(action == target)
        else:
            order = self.setup.reference.order
            context = stream[self._position - max(order - 1, 1) : self._position][None, :]
            reward = float(
                clip_log_prob(self.setup.reference.log_prob(context, np.array([action])))[0]
            )

        self._last = (action, target)
        self._position += 1
        self._steps += 1
        terminated = target == self.setup.windows.eos_id
        truncated = not terminated and self._steps >= self.setup.episode_length
        self._done = terminated or truncated
        info = {"target": target, "action_mask": self.action_masks()}
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn('render() called without a render mode; pass render_mode="ansi".')
            return None
        if self._last is None:
            return render_step(self.tokenizer, self._observation(), None, None)
        window = self.setup.windows.stream[
            self._position - 1 - self.setup.context_length : self._position - 1
        ]
        return render_step(self.tokenizer, window, *self._last)
