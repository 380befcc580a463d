"""Native batched LMGenerate-v0."""

from __future__ import annotations

from typing import Any

from gymnasium.vector import AutoresetMode

from lm_envs.envs.batch import bind_env_arguments
from lm_envs.envs.generate import LMGenerateCore, LMGenerateEnv, make_generate_setup
from lm_envs.vector.batch import BatchCoreVectorEnv


class LMGenerateVectorEnv(BatchCoreVectorEnv):
    """``num_envs`` copies of :class:`~lm_envs.envs.generate.LMGenerateEnv` stepped together.

    Takes the keyword arguments of :class:`~lm_envs.envs.generate.LMGenerateEnv` plus
    ``num_envs`` and ``autoreset_mode`` (``"next_step"`` or ``"same_step"``). The reference
    model scores all sub-environments in one call per step. ``infos["log_prob"]`` and
    ``infos["repeated"]`` are set every step for the sub-environments that acted;
    ``continuation``, ``distinct_1`` and ``distinct_2`` are set where an episode ended.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        self._check_vector_args(num_envs, render_mode, autoreset_mode)
        arguments = bind_env_arguments(LMGenerateEnv, kwargs)
        self.setup = make_generate_setup(**arguments)
        self.tokenizer = self.setup.tokenizer
        self._attach_core(LMGenerateCore(self.setup, self.num_envs))
