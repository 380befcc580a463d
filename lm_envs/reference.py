"""Reference language models that score generated tokens.

A reference model maps a batch of context windows (B, L) and a batch of next tokens (B,) to
natural-log probabilities (B,). Two kinds exist:

* ``"ngram"``: the Witten-Bell interpolated n-gram of :mod:`lm_envs.ngram`, fitted on the
  training split of the environment's corpus;
* a local folder holding a Hugging Face causal language model (``config.json`` plus weights),
  scored with ``transformers`` and ``torch``. Both are imported only when such a folder is
  named, so the package itself needs neither.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from lm_envs.data import load_corpus_data, load_windows
from lm_envs.ngram import NGramModel, fit_ngram
from lm_envs.tokenizer import LMTokenizer

# Rewards built from log-probabilities are clipped here, so a token of probability 0 (the pad
# id, a word a grammar cannot continue with) gives a finite reward: -30 nats is p ~ 1e-13.
LOG_PROB_FLOOR = -30.0
NGRAM_REFERENCE = "ngram"


class ReferenceModel(Protocol):
    """Anything that returns log p(token | context window) for a batch."""

    def log_prob(self, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Return natural-log probabilities (B,) of ``tokens`` (B,) after ``contexts`` (B, L)."""
        ...


def clip_log_prob(log_probs: np.ndarray) -> np.ndarray:
    """Return ``log_probs`` as float64 with values below :data:`LOG_PROB_FLOOR` raised to it."""
    return np.maximum(np.asarray(log_probs, dtype=np.float64), LOG_PROB_FLOOR)


@functools.lru_cache(maxsize=8)
def ngram_reference(corpus: str, tokenizer: str, vocab_size: int | None, order: int) -> NGramModel:
    """Fit (once per process) the n-gram reference of ``order`` on the corpus's training split."""
    data = load_corpus_data(corpus, tokenizer, vocab_size)
    train = load_windows(corpus, tokenizer, vocab_size, "train", max(order - 1, 1))
    return fit_ngram(train, order, data.tokenizer.vocab_size)


def import_transformers():
    """Return the ``transformers`` module, or raise ImportError naming the install command."""
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "a Hugging Face reference model needs the 'transformers' package, which is not "
            "installed; run `pip install transformers`, or use reference='ngram'."
        ) from error
    return transformers


def check_device(device: object) -> str:
    """Return ``device`` if it is ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, else raise."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a string, got {type(device).__name__} ({device!r}).")
    index = device.removeprefix("cuda:")
    if device not in ("auto", "cpu", "cuda") and not (device != index and index.isdigit()):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.")
    return device


def resolve_device(device: str) -> str:
    """Return ``device``, with ``"auto"`` resolved to ``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class HFCausalLMReference:
    """A local Hugging Face causal LM used as the reference model.

    The environment's token ids must be the model's own ids, so the environment tokenizer has
    to be the model's ``tokenizer.json``. :class:`~lm_envs.tokenizer.LMTokenizer` appends
    ``<pad>`` and ``<eos>`` when the file lacks them. Such ids beyond the model's output size
    are handled as follows: ``<eos>`` is scored as the model's ``eos_token_id`` and every
    other one gets probability 0. Pad positions of a window are masked out of attention.

    Args:
        path: folder with ``config.json`` and weights; loaded with ``local_files_only=True``.
        tokenizer: the environment's tokenizer (its pad and eos ids and vocabulary size).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, path: str | os.PathLike, tokenizer: LMTokenizer, device: str = "auto"):
        transformers = import_transformers()
        import torch

        self._torch = torch
        self.device = resolve_device(device)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            os.fspath(path), local_files_only=True
        )
        self.model = model.to(self.device).eval()
        self.pad_id = tokenizer.pad_id
        head = self.model.get_output_embeddings()
        model_vocab = int(
            head.weight.shape[0] if head is not None else self.model.config.vocab_size
        )
        eos = getattr(self.model.config, "eos_token_id", None)
        if isinstance(eos, (list, tuple)):
            eos = eos[0] if eos else None
        model_eos = int(eos) if eos is not None else -1
        bos = getattr(self.model.config, "bos_token_id", None)
        # A window of pads alone still needs one input position, so the model's bos id fills it.
        self.start_id = int(bos) if bos is not None else max(model_eos, 0)

        # Environment id -> model id, -1 where the model has no such token.
        ids = np.arange(tokenizer.vocab_size, dtype=np.int64)
        self.id_map = np.where(ids < model_vocab, ids, -1)
        self.id_map[tokenizer.pad_id] = -1
        if tokenizer.eos_id >= model_vocab:
            self.id_map[tokenizer.eos_id] = model_eos

    def log_prob(self, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Return the model's log-probabilities (B,) of ``tokens`` after the windows ``contexts``."""
        # NOTE: tested only with a stand-in for transformers, which is not installed here. A model
        # whose forward() takes no position_ids argument would raise TypeError.
        torch = self._torch
        contexts = np.asarray(contexts, dtype=np.int64)
        model_ids = self.id_map[contexts]
        attend = model_ids >= 0
        empty = ~attend.any(axis=1)
        model_ids[empty, -1] = self.start_id
        attend[empty, -1] = True
        model_ids[~attend] = 0
        # Left padding: positions count only attended tokens, so each text starts at position 0.
        positions = np.maximum(np.cumsum(attend, axis=1) - 1, 0)

        with torch.no_grad():
            output = self.model(
                input_ids=torch.as_tensor(model_ids, device=self.device),
                attention_mask=torch.as_tensor(attend.astype(np.int64), device=self.device),
                position_ids=torch.as_tensor(positions, device=self.device),
            )
            log_probs = torch.log_softmax(output.logits[:, -1, :].float(), dim=-1).cpu().numpy()

        targets = self.id_map[np.asarray(tokens, dtype=np.int64)]
        picked = log_probs[np.arange(len(targets)), np.maximum(targets, 0)]
        return np.where(targets >= 0, picked, -np.inf).astype(np.float64)


def load_reference(
    reference: str | os.PathLike,
    *,
    corpus: str,
    tokenizer_spec: str,
    vocab_size: int | None,
    order: int,
    tokenizer: LMTokenizer,
    device: str = "auto",
) -> ReferenceModel:
    """Build the reference model named by ``reference``.

    Args:
        reference: ``"ngram"`` or a folder holding a Hugging Face causal LM.
        corpus, tokenizer_spec, vocab_size: the environment's corpus arguments, which the
            n-gram is fitted on.
        order: n of the n-gram reference.
        tokenizer: the environment's loaded tokenizer.
        device: where a Hugging Face model runs.

    Raises:
        ValueError: ``reference`` is neither ``"ngram"`` nor an existing folder, or the
            tokenizer is not the model's ``tokenizer.json``.
        ImportError: a folder is named but ``transformers`` is not installed.
    """
    if not isinstance(reference, (str, os.PathLike)):
        raise TypeError(
            f"reference must be 'ngram' or a folder path, got {type(reference).__name__} "
            f"({reference!r})."
        )
    if reference == NGRAM_REFERENCE:
        return ngram_reference(corpus, tokenizer_spec, vocab_size, order)
    path = Path(os.fspath(reference)).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"reference must be 'ngram' or a folder holding a Hugging Face causal LM "
            f"(config.json and weights), got {os.fspath(reference)!r}, which is not a folder."
        )
    import_transformers()
    if tokenizer.kind != "file":
        raise ValueError(
            f"reference={str(path)!r} scores the model's own token ids, but tokenizer is "
            f"{tokenizer.kind!r}; pass tokenizer={str(path / 'tokenizer.json')!r}."
        )
    return HFCausalLMReference(path, tokenizer, device)
