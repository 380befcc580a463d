"""DQN checkpoints: one folder, written atomically, loaded without unpickling arbitrary objects.

A checkpoint folder contains:

* ``config.json``: the :class:`~agents.dqn_config.DQNConfig`, the format version, V, L,
  the seed and the number of sub-environments;
* ``q_network.pt``, ``target_network.pt``, ``optimizer.pt``: torch state dicts, read back with
  ``torch.load(..., weights_only=True)``, which accepts only tensors and plain containers;
* ``training_state.json``: counters, event schedule, recent episode statistics and the numpy
  generator states;
* ``training_state.npz``: the torch generator state and, when the agent had started a rollout,
  the :class:`~agents.rollout.Rollout` arrays (the observations it was about to act on, their
  masks and the episodes in progress);
* ``replay.npz`` (only with ``include_replay=True``): the replay buffer arrays.

The folder is first written under a temporary name beside its final path and then renamed into
place, so a reader sees the old checkpoint or the new one and never a half-written folder.
Arrays are written with ``allow_pickle=False`` semantics and read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import tempfile
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agents.dqn_config import DQNConfig

if TYPE_CHECKING:
    from agents.dqn import DQN

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
STATE_JSON = "training_state.json"
STATE_NPZ = "training_state.npz"
REPLAY_FILE = "replay.npz"
TORCH_FILES = ("q_network.pt", "target_network.pt", "optimizer.pt")


# --------------------------------------------------------------------------------------------
# Files


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    for name, array in arrays.items():
        if np.asarray(array).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; checkpoints store plain arrays.")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _json_bytes(data: dict) -> bytes:
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8")


def write_folder_atomically(path: str | os.PathLike, files: dict[str, bytes]) -> Path:
    """Write ``files`` (name -> content) as the folder ``path``, replacing any old one at once.

    The files go into a temporary folder beside ``path``, which is then renamed to ``path``. An
    existing folder is first renamed aside and deleted after the swap.

    NOTE: POSIX cannot rename a folder over a non-empty one, so ``path`` is missing for a
    moment between the two renames. A crash right then leaves the old checkpoint under
    ``.<name>.old-<pid>`` beside it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"checkpoint path {path} is a file; pass a folder path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    backup = path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        for name, content in files.items():
            with open(temporary / name, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        if path.exists():
            os.rename(path, backup)
        os.rename(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        if backup.exists() and not path.exists():
            os.rename(backup, path)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    return path


def load_tensors(path: Path, map_location: torch.device | str = "cpu") -> Any:
    """Load a torch file that may contain only tensors and plain containers.

    Raises:
        ValueError: the file contains other pickled objects (which are never unpickled).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} contains objects other than tensors and plain containers, so it was not "
            f"loaded (weights_only=True); only load checkpoints written by DQN.save. ({error})"
        ) from None


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); the checkpoint is damaged."
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must contain a JSON object; the checkpoint is damaged.")
    return data


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


# --------------------------------------------------------------------------------------------
# Generator states


def generator_state(generator: np.random.Generator) -> dict:
    """Return a numpy Generator's bit-generator state (plain ints and strings, JSON-ready)."""
    return generator.bit_generator.state


def set_generator_state(generator: np.random.Generator, state: dict) -> None:
    """Restore a state returned by :func:`generator_state`."""
    if state.get("bit_generator") != type(generator.bit_generator).__name__:
        raise ValueError(
            f"the saved generator is {state.get('bit_generator')!r}, this one is "
            f"{type(generator.bit_generator).__name__}; the checkpoint was written by another "
            "numpy setup."
        )
    generator.bit_generator.state = state


# --------------------------------------------------------------------------------------------
# Agent


def save_checkpoint(agent: DQN, path: str | os.PathLike, include_replay: bool = False) -> Path:
    """Write ``agent`` to the folder ``path``; see the module docstring for the layout."""
    config_data = {
        "format_version": FORMAT_VERSION,
        "vocab_size": agent.vocab_size,
        "context_length": agent.context_length,
        "num_envs": agent.num_envs,
        "seed": agent.seed,
        "config": agent.config.to_dict(),
    }
    state = {
        "num_timesteps": agent.num_timesteps,
        "n_updates": agent.n_updates,
        "n_vector_steps": agent.n_vector_steps,
        "env_resets": agent.env_resets,
        "next_event": dict(agent.next_event),
        "finished_returns": list(agent.finished_returns),
        "finished_lengths": list(agent.finished_lengths),
        "rng": generator_state(agent.rng),
        "replay_rng": generator_state(agent.replay_rng),
        "torch_generator_device": agent.device.type,
        "has_rollout": agent.rollout is not None and agent.rollout.started,
    }
    arrays = {"torch_generator": agent.torch_generator.get_state().numpy()}
    if state["has_rollout"]:
        for name, array in agent.rollout.state_arrays().items():
            arrays[f"rollout_{name}"] = array
    files = {
        CONFIG_FILE: _json_bytes(config_data),
        "q_network.pt": _torch_bytes(agent.q_network.state_dict()),
        "target_network.pt": _torch_bytes(agent.target_network.state_dict()),
        "optimizer.pt": _torch_bytes(agent.optimizer.state_dict()),
        STATE_NPZ: _npz_bytes(arrays),
    }
    if include_replay:
        if agent.replay is None:
            raise ValueError("include_replay=True, but this agent has no replay buffer (no env).")
        replay_arrays, replay_scalars = agent.replay.state_dict()
        state["replay"] = replay_scalars
        files[REPLAY_FILE] = _npz_bytes(replay_arrays)
    files[STATE_JSON] = _json_bytes(state)
    return write_folder_atomically(path, files)


def load_checkpoint(
    cls: type[DQN],
    path: str | os.PathLike,
    env: Any = None,
    device: str | torch.device = "auto",
    resume_rollout: bool = False,
) -> DQN:
    """Rebuild the agent saved in ``path``; see :meth:`agents.dqn.DQN.load`."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint folder at {path}; pass a folder written by save().")
    missing = [
        name
        for name in (CONFIG_FILE, STATE_JSON, STATE_NPZ, *TORCH_FILES)
        if not (path / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"checkpoint {path} is missing {missing}; it was not written by save()."
        )
    meta = _load_json(path / CONFIG_FILE)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format version {meta.get('format_version')!r}; this code "
            f"reads version {FORMAT_VERSION}."
        )
    config = DQNConfig.from_dict(meta["config"])

    agent = cls.__new__(cls)
    agent._build(
        config, int(meta["vocab_size"]), int(meta["context_length"]), device, meta["seed"], None
    )
    if env is not None:
        agent.set_env(env)
    q_state, target_state, optimizer_state = (
        load_tensors(path / name, map_location=agent.device) for name in TORCH_FILES
    )
    agent.q_network.load_state_dict(q_state)
    agent.target_network.load_state_dict(target_state)
    agent.optimizer.load_state_dict(optimizer_state)

    state = _load_json(path / STATE_JSON)
    arrays = _load_npz(path / STATE_NPZ)
    agent.num_timesteps = int(state["num_timesteps"])
    agent.n_updates = int(state["n_updates"])
    agent.n_vector_steps = int(state["n_vector_steps"])
    agent.env_resets = int(state["env_resets"])
    agent.next_event = {key: int(value) for key, value in state["next_event"].items()}
    agent.finished_returns = deque(state["finished_returns"], maxlen=agent.finished_returns.maxlen)
    agent.finished_lengths = deque(state["finished_lengths"], maxlen=agent.finished_lengths.maxlen)
    set_generator_state(agent.rng, state["rng"])
    set_generator_state(agent.replay_rng, state["replay_rng"])
    # CPU and CUDA generators keep different state formats; across devices the Boltzmann
    # sampler keeps its fresh seed instead.
    if state["torch_generator_device"] == agent.device.type:
        agent.torch_generator.set_state(torch.from_numpy(arrays["torch_generator"]))

    if "replay" in state and env is not None:
        agent.replay.load_state_dict(_load_npz(path / REPLAY_FILE), state["replay"])
    if resume_rollout:
        _resume_rollout(agent, state, arrays)
    return agent


def _resume_rollout(agent: DQN, state: dict, arrays: dict[str, np.ndarray]) -> None:
    if agent.rollout is None:
        raise ValueError("resume_rollout=True needs env=; pass the environment to continue.")
    if not state["has_rollout"]:
        raise ValueError(
            "resume_rollout=True, but the saved agent had not started a rollout; load without it."
        )
    prefix = "rollout_"
    agent.rollout.load_state_arrays(
        {name[len(prefix) :]: array for name, array in arrays.items() if name.startswith(prefix)}
    )
