"""Baseline agents for next-token tasks, with the same ``predict`` interface as the DQN.

Every agent maps a batch of (B, L) token windows to (B,) int64 actions with
``predict(obs, action_masks=None, deterministic=True)``. Agents whose model gives a next-token
distribution also have ``distribution(obs) -> (B, V)`` with float64 rows summing to 1; the
evaluation turns that into bits per token.

* :class:`RandomAgent`: uniform over the valid actions.
* :class:`UnigramAgent`: token frequencies of the training split, add-one smoothed.
* :class:`NGramAgent`: the Witten-Bell interpolated n-gram model of :mod:`lm_envs.ngram`.
* :class:`SupervisedAgent`: the DQN's Q-network trained by cross-entropy on (window, next token)
  pairs, the supervised reference that a reinforcement learner is measured against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from agents.networks import QNetwork
from lm_envs.data import TokenWindows
from lm_envs.ngram import NGramModel
from lm_envs.validation import check_int


def resolve_device(device: str | torch.device) -> torch.device:
    """Return the torch device named by ``device``; ``"auto"`` picks CUDA when it is available."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto' or 'cpu', got {device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'."
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available; use 'cpu'.")
    return resolved


def _check_obs(obs: np.ndarray) -> np.ndarray:
    """Return ``obs`` as a (B, L) integer array; a single (L,) window becomes one row."""
    array = np.asarray(obs)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"obs must have shape (batch, context_length), got {array.shape}.")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"obs must contain integer token ids, got dtype {array.dtype}.")
    return array


def _batch_masks(action_masks: np.ndarray | None, default: np.ndarray, batch: int) -> np.ndarray:
    """Return a (batch, V) bool mask from ``action_masks`` ((V,), (batch, V) or None)."""
    masks = default if action_masks is None else np.asarray(action_masks, dtype=bool)
    if masks.ndim == 1:
        masks = np.broadcast_to(masks, (batch, masks.shape[0]))
    if masks.shape != (batch, default.shape[0]):
        raise ValueError(
            f"action_masks must have shape ({default.shape[0]},) or ({batch}, {default.shape[0]}), "
            f"got {masks.shape}."
        )
    if not masks.any(axis=1).all():
        raise ValueError("every row of action_masks needs at least one valid (True) action.")
    return masks


def _default_mask(action_mask: np.ndarray | None, vocab_size: int, pad_id: int) -> np.ndarray:
    if action_mask is None:
        mask = np.ones(vocab_size, dtype=bool)
        mask[pad_id] = False
        return mask
    mask = np.asarray(action_mask, dtype=bool)
    if mask.shape != (vocab_size,):
        raise ValueError(f"action_mask must have shape ({vocab_size},), got {mask.shape}.")
    return mask.copy()


def _choose(
    probs: np.ndarray, masks: np.ndarray, deterministic: bool, rng: np.random.Generator
) -> np.ndarray:
    """Return the argmax (or a sample) of ``probs`` restricted to ``masks`` for each row."""
    masked = np.where(masks, probs, 0.0)
    if deterministic:
        # A row whose valid actions all have probability 0 still gets a valid action.
        masked = np.where(masks, masked, -1.0)
        return masked.argmax(axis=1).astype(np.int64)
    totals = masked.sum(axis=1, keepdims=True)
    uniform = masks / masks.sum(axis=1, keepdims=True)
    masked = np.where(totals > 0, masked / np.where(totals > 0, totals, 1.0), uniform)
    cumulative = masked.cumsum(axis=1)
    draws = rng.random((len(masked), 1)) * cumulative[:, -1:]
    choice = (cumulative <= draws).sum(axis=1)
    return np.minimum(choice, masked.shape[1] - 1).astype(np.int64)


class RandomAgent:
    """Pick uniformly among the valid actions; the distribution is uniform over them.

    Args:
        action_mask: bool (V,), True for valid token ids (``tokenizer.action_mask()``).
        seed: seed of the generator that draws the actions.
    """

    def __init__(self, action_mask: np.ndarray, seed: int | None = 0) -> None:
        self.action_mask = np.asarray(action_mask, dtype=bool).copy()
        if self.action_mask.ndim != 1 or not self.action_mask.any():
            raise ValueError("action_mask must be a 1-D bool array with at least one True entry.")
        self.vocab_size = len(self.action_mask)
        self.rng = np.random.default_rng(seed)

    def distribution(self, obs: np.ndarray) -> np.ndarray:
        """Return the uniform distribution over valid ids for every row, shape (B, V)."""
        batch = _check_obs(obs).shape[0]
        row = self.action_mask / self.action_mask.sum()
        return np.broadcast_to(row, (batch, self.vocab_size)).copy()

    def predict(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        """Draw one valid action per row; a random policy samples even when ``deterministic``."""
        batch = _check_obs(obs).shape[0]
        masks = _batch_masks(action_masks, self.action_mask, batch)
        return _choose(masks.astype(np.float64), masks, False, self.rng)


class UnigramAgent:
    """Predict the most frequent training token, whatever the context.

    p(w) = (c(w) + 1) / (N + |W|) over W = every id except pad, where c counts the training
    targets and N is their number.

    Args:
        vocab_size: V.
        pad_id: the pad id, which gets no probability.
        action_mask: bool (V,) of valid actions; defaults to every id except pad.
        seed: seed of the generator used when ``predict`` samples.
    """

    def __init__(
        self,
        vocab_size: int,
        pad_id: int,
        action_mask: np.ndarray | None = None,
        seed: int | None = 0,
    ) -> None:
        self.vocab_size = check_int("vocab_size", vocab_size, 2)
        self.pad_id = check_int("pad_id", pad_id, 0, self.vocab_size - 1)
        self.action_mask = _default_mask(action_mask, self.vocab_size, self.pad_id)
        self.probs: np.ndarray | None = None
        self.rng = np.random.default_rng(seed)

    def fit(self, windows: TokenWindows) -> UnigramAgent:
        """Count every target token of ``windows`` (the training split)."""
        tokens = np.asarray(windows.stream[windows.targets], dtype=np.int64)
        counts = np.bincount(tokens, minlength=self.vocab_size).astype(np.float64)
        support = np.ones(self.vocab_size, dtype=bool)
        support[self.pad_id] = False
        self.probs = np.where(support, counts + 1.0, 0.0) / (counts.sum() + support.sum())
        return self

    def distribution(self, obs: np.ndarray) -> np.ndarray:
        """Return the unigram distribution for every row, shape (B, V)."""
        if self.probs is None:
            raise RuntimeError("UnigramAgent is not fitted; call fit(train_windows) first.")
        batch = _check_obs(obs).shape[0]
        return np.broadcast_to(self.probs, (batch, self.vocab_size)).copy()

    def predict(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        """Return the most probable valid token per row, or a sample when not ``deterministic``."""
        probs = self.distribution(obs)
        masks = _batch_masks(action_masks, self.action_mask, len(probs))
        return _choose(probs, masks, deterministic, self.rng)


class NGramAgent:
    """Predict with an interpolated n-gram model of the training split.

    Args:
        order: n; the model reads the last ``order - 1`` tokens of each window.
        vocab_size: V.
        pad_id: the pad id, which gets no probability.
        action_mask: bool (V,) of valid actions; defaults to every id except pad.
        seed: seed of the generator used when ``predict`` samples.
    """

    def __init__(
        self,
        order: int,
        vocab_size: int,
        pad_id: int,
        action_mask: np.ndarray | None = None,
        seed: int | None = 0,
    ) -> None:
        self.model = NGramModel(order, vocab_size, pad_id)
        self.order = self.model.order
        self.vocab_size = self.model.vocab_size
        self.action_mask = _default_mask(action_mask, self.vocab_size, self.model.pad_id)
        self.fitted = False
        self.rng = np.random.default_rng(seed)

    def fit(self, windows: TokenWindows) -> NGramAgent:
        """Count the n-grams of ``windows`` (the training split)."""
        self.model.fit(windows)
        self.fitted = True
        return self

    def distribution(self, obs: np.ndarray) -> np.ndarray:
        """Return p(next token | last ``order - 1`` tokens) for every row, shape (B, V)."""
        if not self.fitted:
            raise RuntimeError("NGramAgent is not fitted; call fit(train_windows) first.")
        return self.model.distribution(_check_obs(obs))

    def predict(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        """Return the most probable valid token per row, or a sample when not ``deterministic``."""
        probs = self.distribution(obs)
        masks = _batch_masks(action_masks, self.action_mask, len(probs))
        return _choose(probs, masks, deterministic, self.rng)


@dataclass
class SupervisedConfig:
    """Network and optimizer settings of :class:`SupervisedAgent`.

    The network fields are the keyword arguments of :class:`agents.networks.QNetwork`; set them
    as in the DQN's config so that the two learners have the same network.
    """

    total_examples: int = 100_000  # training examples drawn, one per DQN environment step
    batch_size: int = 256
    learning_rate: float = 1e-3
    max_grad_norm: float | None = 10.0
    encoder: str = "mlp"
    dueling: bool = False
    encoder_kwargs: dict[str, int] = field(default_factory=dict)  # embed_dim, hidden_dim, ...

    def __post_init__(self) -> None:
        check_int("total_examples", self.total_examples, 1)
        check_int("batch_size", self.batch_size, 1)
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(
                f"max_grad_norm must be > 0 or None (no clipping), got {self.max_grad_norm}."
            )


class SupervisedAgent:
    """The DQN's network trained by cross-entropy on the true next token.

    Training draws ``config.total_examples`` target positions of the training split in a
    seeded random order (without replacement until every position was used once) and takes one
    Adam step per ``batch_size`` of them. Invalid actions get logit -inf before the softmax, in
    training and in :meth:`distribution`, so the network spends no probability on them.

    Args:
        vocab_size: V.
        context_length: L, the window length of the observations.
        action_mask: bool (V,), True for valid token ids (``tokenizer.action_mask()``).
        config: network and training settings.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or a torch device.
        seed: seeds the network initialization and the example order.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        action_mask: np.ndarray,
        config: SupervisedConfig | None = None,
        device: str | torch.device = "auto",
        seed: int = 0,
    ) -> None:
        self.vocab_size = check_int("vocab_size", vocab_size, 2)
        self.context_length = check_int("context_length", context_length, 1)
        self.action_mask = _default_mask(action_mask, self.vocab_size, 0)
        self.config = config if config is not None else SupervisedConfig()
        self.device = resolve_device(device)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        # The weights are drawn on the CPU from a forked generator, so the same seed gives the
        # same network on every device and the caller's torch random state is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = QNetwork(
                self.vocab_size,
                self.context_length,
                encoder=self.config.encoder,
                dueling=self.config.dueling,
                **self.config.encoder_kwargs,
            )
        self.q_network = network.to(self.device)
        self._invalid = torch.as_tensor(~self.action_mask, device=self.device)
        self.num_examples = 0
        self.losses: list[float] = []

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the network weights; they load into a DQN's ``q_network`` of the same config."""
        return self.q_network.state_dict()

    def fit(self, windows: TokenWindows, progress_bar: bool = False) -> SupervisedAgent:
        """Train on the (window, next token) pairs of ``windows`` (the training split).

        Targets that are not valid actions (``<unk>`` under a capped vocabulary) are skipped,
        because the masked softmax gives them probability 0.
        """
        if windows.context_length != self.context_length:
            raise ValueError(
                f"windows have context_length={windows.context_length}, the network expects "
                f"{self.context_length}; load the windows with the agent's context length."
            )
        positions = windows.targets[self.action_mask[windows.stream[windows.targets]]]
        if len(positions) == 0:
            raise ValueError("the training windows contain no target that is a valid action.")
        order = self._example_order(len(positions))
        optimizer = torch.optim.Adam(self.q_network.parameters(), lr=self.config.learning_rate)
        loss_fn = nn.CrossEntropyLoss()
        batch_size = self.config.batch_size
        self.q_network.train()
        bar = tqdm(
            total=len(order), desc="supervised", unit="tok", disable=not progress_bar, leave=False
        )
        # Losses stay on the device and are read once at the end, so no step waits for the GPU.
        losses = []
        for start in range(0, len(order), batch_size):
            batch_positions = positions[order[start : start + batch_size]]
            obs = torch.as_tensor(windows.windows(batch_positions), device=self.device)
            targets = torch.as_tensor(
                windows.stream[batch_positions].astype(np.int64), device=self.device
            )
            logits = self.q_network(obs).masked_fill(self._invalid, float("-inf"))
            loss = loss_fn(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(self.q_network.parameters(), self.config.max_grad_norm)
            optimizer.step()
            losses.append(loss.detach())
            bar.update(len(batch_positions))
        bar.close()
        self.q_network.eval()
        self.losses = torch.stack(losses).cpu().tolist()
        self.num_examples += len(order)
        if not np.isfinite(self.losses).all():
            raise RuntimeError(
                "supervised training produced a non-finite loss; lower learning_rate."
            )
        return self

    def _example_order(self, num_positions: int) -> np.ndarray:
        """Return ``total_examples`` indices: shuffled passes over ``range(num_positions)``."""
        passes = -(-self.config.total_examples // num_positions)
        order = np.concatenate([self.rng.permutation(num_positions) for _ in range(passes)])
        return order[: self.config.total_examples]

    @torch.no_grad()
    def logits(self, obs: np.ndarray) -> np.ndarray:
        """Return the network outputs (B, V) as float32, invalid actions set to -inf."""
        tokens = torch.as_tensor(_check_obs(obs).astype(np.int64), device=self.device)
        self.q_network.eval()
        logits = self.q_network(tokens).masked_fill(self._invalid, float("-inf"))
        return logits.float().cpu().numpy()

    def distribution(self, obs: np.ndarray) -> np.ndarray:
        """Return the softmax over valid actions, shape (B, V), float64 rows summing to 1."""
        logits = self.logits(obs).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(
        self, obs: np.ndarray, action_masks: np.ndarray | None = None, deterministic: bool = True
    ) -> np.ndarray:
        """Return the highest-logit valid token per row, or a softmax sample."""
        if not deterministic:
            probs = self.distribution(obs)
            masks = _batch_masks(action_masks, self.action_mask, len(probs))
            return _choose(probs, masks, False, self.rng)
        logits = self.logits(obs)
        masks = _batch_masks(action_masks, self.action_mask, len(logits))
        scores = np.where(masks, logits, -np.inf)
        actions = scores.argmax(axis=1).astype(np.int64)
        # A caller's mask may allow only ids the network masks itself (<unk>); pick one of them.
        stuck = np.isneginf(scores.max(axis=1))
        actions[stuck] = masks[stuck].argmax(axis=1)
        return actions

    def config_dict(self) -> dict:
        """Return the settings as a JSON-ready dict (for reports)."""
        return {**asdict(self.config), "device": str(self.device), "seed": self.seed}
