"""Stable-Baselines3 callback that measures greedy next-token accuracy on a held-out split."""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from lm_envs.corpora import DEFAULT_CORPUS, SPLITS
from lm_envs.envs.next_token import make_setup
from lm_envs.errors import suggest
from lm_envs.reference import clip_log_prob
from lm_envs.validation import check_choice, check_int

# Arguments of LMNextToken-v0 that decide the evaluated tokens and their rewards.
_DATA_ARGUMENTS = {
    "corpus": DEFAULT_CORPUS,
    "tokenizer": "char",
    "vocab_size": None,
    "context_length": 64,
    "reward": "match",
    "reference_order": 3,
}
# Training-only arguments, accepted so the training env's kwargs can be passed unchanged.
_IGNORED_ARGUMENTS = ("episode_length", "split", "render_mode", "autoreset_mode")


class TokenAccuracyCallback(BaseCallback):
    """Every ``eval_freq`` calls, predict each token of a split greedily and log the scores.

    The model reads the first ``max_tokens`` prediction positions of the split in corpus order
    (the same windows ``LMNextToken-v0`` shows) and picks ``model.predict(obs,
    deterministic=True)``, with the action masks for models that take them (sb3-contrib's
    ``MaskablePPO``). It records ``eval/accuracy`` (top-1 next-token accuracy) and
    ``eval/mean_reward`` (the environment's reward for the chosen tokens, averaged) with
    ``self.logger.record`` and dumps the logger at the current timestep. A call is one
    ``VecEnv.step``, that is ``num_envs`` environment steps.

    Args:
        env_kwargs: arguments of ``LMNextToken-v0`` (``corpus``, ``tokenizer``,
            ``vocab_size``, ``context_length``, ``reward``, ``reference_order``). The
            training environment's kwargs can be passed unchanged because
            ``episode_length``, ``split``, ``render_mode`` and ``autoreset_mode`` are ignored.
        eval_freq: evaluate every this many callback calls.
        max_tokens: number of positions evaluated (fewer if the split is shorter).
        split: the split to read, ``"validation"`` by default.
        batch_size: observations per ``model.predict`` call.
        verbose: 1 prints each result.

    Attributes:
        results: one dict per evaluation with ``num_timesteps``, ``accuracy`` and
            ``mean_reward``.
    """

    def __init__(
        self,
        env_kwargs: dict[str, Any] | None = None,
        eval_freq: int = 1000,
        max_tokens: int = 4096,
        split: str = "validation",
        batch_size: int = 1024,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose=verbose)
        self.eval_freq = check_int("eval_freq", eval_freq, 1)
        max_tokens = check_int("max_tokens", max_tokens, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        check_choice("split", split, SPLITS)
        arguments = dict(_DATA_ARGUMENTS)
        for name, value in (env_kwargs or {}).items():
            if name in _IGNORED_ARGUMENTS:
                continue
            if name not in arguments:
                raise ValueError(
                    f"unknown LMNextToken-v0 argument {name!r} in env_kwargs; expected some of "
                    f"{sorted(_DATA_ARGUMENTS)}.{suggest(name, _DATA_ARGUMENTS)}"
                )
            arguments[name] = value
        if isinstance(arguments["corpus"], os.PathLike):
            arguments["corpus"] = os.fspath(arguments["corpus"])

        self.setup = make_setup(
            arguments["corpus"],
            arguments["tokenizer"],
            arguments["vocab_size"],
            arguments["context_length"],
            1,
            split,
            arguments["reward"],
            arguments["reference_order"],
        )
        windows = self.setup.windows
        positions = windows.targets[:max_tokens]
        self.observations = windows.windows(positions)
        self.targets = np.asarray(windows.stream[positions], dtype=np.int64)
        self.results: list[dict[str, float]] = []

    def _init_callback(self) -> None:
        space = self.model.observation_space
        expected = (self.setup.context_length,)
        if space.shape != expected or self.model.action_space.n != self.setup.vocab_size:
            raise ValueError(
                f"the model sees observations of shape {space.shape} and "
                f"{self.model.action_space.n} actions, but the evaluation split has windows of "
                f"shape {expected} and {self.setup.vocab_size} tokens; pass the training "
                "environment's kwargs as env_kwargs."
            )

    def predict_tokens(self, model: BaseAlgorithm) -> np.ndarray:
        """Return the model's greedy choice for every evaluated position, an int64 array."""
        takes_masks = "action_masks" in inspect.signature(model.predict).parameters
        actions = np.empty(len(self.targets), dtype=np.int64)
        for start in range(0, len(self.targets), self.batch_size):
            batch = self.observations[start : start + self.batch_size]
            kwargs: dict[str, Any] = {"deterministic": True}
            if takes_masks:
                kwargs["action_masks"] = np.repeat(self.setup.action_mask[None], len(batch), 0)
            chosen, _ = model.predict(batch, **kwargs)
            actions[start : start + len(batch)] = np.asarray(chosen).reshape(-1)
        return actions

    def evaluate(self, model: BaseAlgorithm) -> dict[str, float]:
        """Return ``accuracy`` and ``mean_reward`` of ``model``'s greedy tokens on the split.

        ``mean_reward`` is the fraction of matches for ``reward="match"``. For
        ``reward="log_prob"`` it is the mean reference log-probability in nats, each clipped
        below at ``lm_envs.reference.LOG_PROB_FLOOR`` as the environment clips its rewards.
        """
        actions = self.predict_tokens(model)
        matches = actions == self.targets
        if self.setup.reward == "match":
            rewards = matches.astype(np.float64)
        else:
            rewards = clip_log_prob(self.setup.reference.log_prob(self.observations, actions))
        return {"accuracy": float(matches.mean()), "mean_reward": float(rewards.mean())}

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq != 0:
            return True
        result = self.evaluate(self.model)
        self.results.append({"num_timesteps": self.num_timesteps, **result})
        self.logger.record("eval/accuracy", result["accuracy"])
        self.logger.record("eval/mean_reward", result["mean_reward"])
        if self.verbose >= 1:
            print(
                f"step {self.num_timesteps}: eval/accuracy={result['accuracy']:.4f} "
                f"eval/mean_reward={result['mean_reward']:.4f}"
            )
        self.logger.dump(self.num_timesteps)
        return True
