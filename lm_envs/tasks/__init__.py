"""Exact-answer algorithmic tasks: the agent writes the answer to a prompt, token by token.

Each task pairs a problem generator (``sample_prompt`` and ``solve``) with a registered
environment: ``LMCopy-v0``, ``LMReverse-v0``, ``LMRepeatCopy-v0``, ``LMDuplicatedInput-v0``,
``LMAddition-v0`` and ``LMSort-v0``.
"""

from lm_envs.tasks.addition import AdditionTask, LMAdditionEnv
from lm_envs.tasks.base import EOS_ID, PAD_ID, SEP_ID, SymbolSequenceTask, Task, TaskVocabulary
from lm_envs.tasks.copying import (
    CopyTask,
    DuplicatedInputTask,
    LMCopyEnv,
    LMDuplicatedInputEnv,
    LMRepeatCopyEnv,
    RepeatCopyTask,
)
from lm_envs.tasks.env import ExactAnswerEnv
from lm_envs.tasks.reordering import LMReverseEnv, LMSortEnv, ReverseTask, SortTask

__all__ = [
    "EOS_ID",
    "PAD_ID",
    "SEP_ID",
    "AdditionTask",
    "CopyTask",
    "DuplicatedInputTask",
    "ExactAnswerEnv",
    "LMAdditionEnv",
    "LMCopyEnv",
    "LMDuplicatedInputEnv",
    "LMRepeatCopyEnv",
    "LMReverseEnv",
    "LMSortEnv",
    "RepeatCopyTask",
    "ReverseTask",
    "SortTask",
    "SymbolSequenceTask",
    "Task",
    "TaskVocabulary",
]
