"""Native batched versions of the known-entropy source environments.

Each class takes the keyword arguments of its single environment in
:mod:`lm_envs.sources.envs` plus ``num_envs`` and ``autoreset_mode``, and runs the same batch
core with ``num_envs`` rows: sub-environment ``i`` reset with ``seed + i`` follows the
trajectory of the single environment reset with that seed.
"""

from __future__ import annotations

from typing import Any

from gymnasium.vector import AutoresetMode

from lm_envs.envs.batch import bind_env_arguments
from lm_envs.sources.envs import (
    GrammarGenerateEnv,
    GrammarNextTokenEnv,
    MarkovGenerateEnv,
    MarkovNextTokenEnv,
    SourceEnv,
)
from lm_envs.vector.batch import BatchCoreVectorEnv


class SourceVectorEnv(BatchCoreVectorEnv):
    """Base of the batched source environments; ``single_class`` names the single version."""

    single_class: type[SourceEnv] = MarkovNextTokenEnv

    def __init__(
        self,
        num_envs: int = 1,
        *,
        render_mode: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        **kwargs: Any,
    ) -> None:
        self._check_vector_args(num_envs, render_mode, autoreset_mode)
        arguments = bind_env_arguments(self.single_class, kwargs)
        self._attach_core(self.single_class.build_core(self.num_envs, arguments))
        self.source = self.core.source
        self.tokenizer = self.source.vocab


class MarkovNextTokenVectorEnv(SourceVectorEnv):
    """Batched :class:`~lm_envs.sources.envs.MarkovNextTokenEnv`; ``infos["target"]`` per step."""

    single_class = MarkovNextTokenEnv


class MarkovGenerateVectorEnv(SourceVectorEnv):
    """Batched :class:`~lm_envs.sources.envs.MarkovGenerateEnv`.

    ``infos["optimal_return"]`` is set for the sub-environments that started an episode in
    that call (reset, or an autoreset step).
    """

    single_class = MarkovGenerateEnv


class GrammarNextTokenVectorEnv(SourceVectorEnv):
    """Batched :class:`~lm_envs.sources.envs.GrammarNextTokenEnv`; ``infos["target"]`` per step."""

    single_class = GrammarNextTokenEnv


class GrammarGenerateVectorEnv(SourceVectorEnv):
    """Batched :class:`~lm_envs.sources.envs.GrammarGenerateEnv`.

    ``infos["optimal_return"]`` is set for the sub-environments that started an episode in
    that call (reset, or an autoreset step).
    """

    single_class = GrammarGenerateEnv
