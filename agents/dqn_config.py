"""DQNConfig: every setting of the custom DQN, validated when it is built, saved as JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from agents.logger import FILE_OUTPUTS, OUTPUTS
from lm_envs.errors import suggest
from lm_envs.sb3.encoders import ENCODER_KINDS
from lm_envs.validation import check_choice, check_int

OPTIMIZERS = ("adam", "rmsprop")
LOSSES = ("huber", "mse")
AMP_DTYPES = ("bfloat16", "float16")


def _check_float(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in range, or raise TypeError/ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r}).")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if not math.isfinite(value) or too_low or too_high:
        left = "(" if low_open else "["
        bound = (
            f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        )
        raise ValueError(f"{name} must be a finite number in {bound}, got {value}.")
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r}).")
    return value


@dataclass
class DQNConfig:
    """Settings of :class:`agents.dqn.DQN`. Steps are environment steps unless stated.

    The defaults are textbook DQN with gamma 0.99. For ``LMNextToken-v0`` (a contextual bandit:
    the next state does not depend on the action) set ``gamma=0``.
    """

    # Budget: the schedules (epsilon, prioritized-replay beta) span total_steps.
    total_steps: int = 100_000
    learning_starts: int = 1_000  # uniform random valid actions and no updates before this

    # Q-network: agents.networks.QNetwork arguments.
    encoder: str = "mlp"  # "mlp", "gru" or "transformer"
    embed_dim: int = 32
    hidden_dim: int = 256
    num_layers: int = 1
    num_heads: int = 4  # transformer only
    dueling: bool = False

    # Optimisation.
    optimizer: str = "adam"  # "adam" or "rmsprop"
    learning_rate: float = 1e-4
    loss: str = "huber"  # "huber" (smooth L1, delta 1) or "mse"
    max_grad_norm: float | None = 10.0  # None disables gradient clipping
    batch_size: int = 64
    train_freq: int = 1  # vector steps (each is num_envs environment steps) between trainings
    gradient_steps: int = 1  # gradient updates per training

    # Bellman target.
    gamma: float = 0.99
    n_step: int = 1
    double_dqn: bool = False
    soft_q_learning: bool = False  # entropy-regularised target and Boltzmann acting
    soft_q_alpha: float = 0.1  # temperature of soft Q-learning
    target_update_interval: int = 1_000
    tau: float = 1.0  # 1 copies the weights; < 1 is a Polyak average at each target update

    # Replay.
    buffer_size: int = 100_000
    prioritized_replay: bool = False
    priority_alpha: float = 0.6
    priority_beta_start: float = 0.4  # annealed linearly to 1 over total_steps
    priority_eps: float = 1e-6

    # Epsilon-greedy exploration.
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    exploration_fraction: float = 0.1  # share of total_steps spent lowering epsilon
    per_env_epsilon: bool = False  # Ape-X: env i explores with eps ** (1 + i / (N - 1) * alpha)
    per_env_epsilon_alpha: float = 7.0

    # Hardware.
    compile: bool = False  # torch.compile the Q-network used in training (CPU or CUDA)
    amp: bool = False  # autocast the forward passes to amp_dtype; CUDA only, ignored on CPU
    amp_dtype: str = "bfloat16"

    # Logging, evaluation callback and checkpoints.
    log_interval: int = 10_000
    log_outputs: tuple[str, ...] = ("stdout",)
    log_folder: str | None = None  # needed for "csv", "json" and "tensorboard"
    eval_interval: int = 10_000  # steps between calls of learn()'s callback
    checkpoint_folder: str | None = None  # None: no periodic checkpoints
    checkpoint_interval: int = 10_000
    checkpoint_include_replay: bool = False

    def __post_init__(self) -> None:
        for name in (
            "total_steps",
            "batch_size",
            "train_freq",
            "gradient_steps",
            "n_step",
            "target_update_interval",
            "buffer_size",
            "embed_dim",
            "hidden_dim",
            "num_layers",
            "num_heads",
            "log_interval",
            "eval_interval",
            "checkpoint_interval",
        ):
            setattr(self, name, check_int(name, getattr(self, name), 1))
        self.learning_starts = check_int("learning_starts", self.learning_starts, 0)
        check_choice("encoder", self.encoder, ENCODER_KINDS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("amp_dtype", self.amp_dtype, AMP_DTYPES)
        for name in (
            "dueling",
            "double_dqn",
            "soft_q_learning",
            "prioritized_replay",
            "per_env_epsilon",
            "compile",
            "amp",
            "checkpoint_include_replay",
        ):
            _check_bool(name, getattr(self, name))

        self.learning_rate = _check_float("learning_rate", self.learning_rate, 0.0, low_open=True)
        if self.max_grad_norm is not None:
            self.max_grad_norm = _check_float(
                "max_grad_norm", self.max_grad_norm, 0.0, low_open=True
            )
        self.gamma = _check_float("gamma", self.gamma, 0.0, 1.0)
        self.tau = _check_float("tau", self.tau, 0.0, 1.0, low_open=True)
        self.soft_q_alpha = _check_float("soft_q_alpha", self.soft_q_alpha, 0.0, low_open=True)
        self.priority_alpha = _check_float("priority_alpha", self.priority_alpha, 0.0)
        self.priority_beta_start = _check_float(
            "priority_beta_start", self.priority_beta_start, 0.0, 1.0
        )
        self.priority_eps = _check_float("priority_eps", self.priority_eps, 0.0, low_open=True)
        for name in ("exploration_initial_eps", "exploration_final_eps", "exploration_fraction"):
            setattr(self, name, _check_float(name, getattr(self, name), 0.0, 1.0))
        self.per_env_epsilon_alpha = _check_float(
            "per_env_epsilon_alpha", self.per_env_epsilon_alpha, 0.0
        )

        if self.double_dqn and self.soft_q_learning:
            raise ValueError(
                "double_dqn and soft_q_learning cannot both be True: the soft target averages "
                "over actions and has no argmax for the online network to select; pick one."
            )
        if self.encoder == "transformer" and self.embed_dim % self.num_heads != 0:
            raise ValueError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; "
                "pick embed_dim as a multiple of num_heads."
            )
        self._check_logging()

    def _check_logging(self) -> None:
        if isinstance(self.log_outputs, str):
            raise TypeError(
                f"log_outputs must be a tuple of output names, got the string "
                f"{self.log_outputs!r}; write ({self.log_outputs!r},)."
            )
        self.log_outputs = tuple(self.log_outputs)
        for output in self.log_outputs:
            check_choice("log_outputs entry", output, OUTPUTS)
        needs_folder = [output for output in self.log_outputs if output in FILE_OUTPUTS]
        if needs_folder and self.log_folder is None:
            raise ValueError(
                f"log_outputs {needs_folder} write files, but log_folder is None; set log_folder."
            )
        for name in ("log_folder", "checkpoint_folder"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"{name} must be a string path or None, got {type(value).__name__}; "
                    "pass str(path)."
                )

    @property
    def network_kwargs(self) -> dict:
        """Keyword arguments of :class:`agents.networks.QNetwork` besides V and L."""
        return {
            "encoder": self.encoder,
            "dueling": self.dueling,
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
        }

    def to_dict(self) -> dict:
        """Return the settings as a JSON-serializable dict."""
        data = asdict(self)
        data["log_outputs"] = list(self.log_outputs)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> DQNConfig:
        """Build a config from :meth:`to_dict` output; unknown keys raise ValueError."""
        if not isinstance(data, dict):
            raise TypeError(f"a DQN config must be a dict, got {type(data).__name__}.")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            hint = suggest(unknown[0], tuple(known))
            raise ValueError(f"unknown DQNConfig keys {unknown}.{hint}")
        values = dict(data)
        if "log_outputs" in values and isinstance(values["log_outputs"], list):
            values["log_outputs"] = tuple(values["log_outputs"])
        return cls(**values)
