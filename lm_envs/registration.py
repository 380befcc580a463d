"""Every environment id of the suite, registered as data in one table."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

# id -> (single entry point, vector entry point, reward_threshold, default kwargs)
ENVIRONMENTS: dict[str, dict] = {
    "LMNextToken-v0": {
        "entry_point": "lm_envs.envs.next_token:LMNextTokenEnv",
        "vector_entry_point": "lm_envs.vector.next_token:LMNextTokenVectorEnv",
        "reward_threshold": None,
        "kwargs": {},
    },
    # Exact-answer tasks are added below this line.
    "LMCopy-v0": {
        "entry_point": "lm_envs.tasks.copying:LMCopyEnv",
        "vector_entry_point": "lm_envs.vector.tasks:LMCopyVectorEnv",
        "reward_threshold": 0.95,
        "kwargs": {},
    },
    "LMReverse-v0": {
        "entry_point": "lm_envs.tasks.reordering:LMReverseEnv",
        "vector_entry_point": "lm_envs.vector.tasks:LMReverseVectorEnv",
        "reward_threshold": 0.95,
        "kwargs": {},
    },
    "LMRepeatCopy-v0": {
        "entry_point": "lm_envs.tasks.copying:LMRepeatCopyEnv",
        "vector_entry_point": "lm_envs.vector.tasks:LMRepeatCopyVectorEnv",
        "reward_threshold": 0.95,
        "kwargs": {},
    },
    "LMDuplicatedInput-v0": {
        "entry_point": "lm_envs.tasks.copying:LMDuplicatedInputEnv",
        "vector_entry_point": "lm_envs.vector.tasks:LMDuplicatedInputVectorEnv",
        "reward_threshold": 0.95,
        "kwargs": {},
    },
    "LMAddition-v0": {
        "entry_point": "lm_envs.tasks.addition:LMAdditionEnv",
        "vector_entry_point": "lm_envs.vector.tasks:LMAdditionVectorEnv",
        "reward_threshold": 0.95,
        "kwargs": {},
    },
    "LMSort-v0": {
        "entry_point": "lm_envs.tasks.reordering:LMSortEnv",
        "vector_entry_point": "lm_envs.vector.tasks:LMSortVectorEnv",
        "reward_threshold": 0.95,
        "kwargs": {},
    },
    # Generation and known-entropy source ids are added below this line.
    "LMGenerate-v0": {
        "entry_point": "lm_envs.envs.generate:LMGenerateEnv",
        "vector_entry_point": "lm_envs.vector.generate:LMGenerateVectorEnv",
        "reward_threshold": None,
        "kwargs": {},
    },
    "MarkovNextToken-v0": {
        "entry_point": "lm_envs.sources.envs:MarkovNextTokenEnv",
        "vector_entry_point": "lm_envs.vector.sources:MarkovNextTokenVectorEnv",
        "reward_threshold": None,
        "kwargs": {},
    },
    "MarkovGenerate-v0": {
        "entry_point": "lm_envs.sources.envs:MarkovGenerateEnv",
        "vector_entry_point": "lm_envs.vector.sources:MarkovGenerateVectorEnv",
        "reward_threshold": None,
        "kwargs": {},
    },
    "GrammarNextToken-v0": {
        "entry_point": "lm_envs.sources.envs:GrammarNextTokenEnv",
        "vector_entry_point": "lm_envs.vector.sources:GrammarNextTokenVectorEnv",
        "reward_threshold": None,
        "kwargs": {},
    },
    "GrammarGenerate-v0": {
        "entry_point": "lm_envs.sources.envs:GrammarGenerateEnv",
        "vector_entry_point": "lm_envs.vector.sources:GrammarGenerateVectorEnv",
        "reward_threshold": None,
        "kwargs": {},
    },
}


def register_all() -> None:
    """Register every id in :data:`ENVIRONMENTS` (idempotent)."""
    for env_id, spec in ENVIRONMENTS.items():
        if env_id in registry:
            continue
        register(
            id=env_id,
            entry_point=spec["entry_point"],
            vector_entry_point=spec.get("vector_entry_point"),
            reward_threshold=spec.get("reward_threshold"),
            nondeterministic=False,
            max_episode_steps=spec.get("max_episode_steps"),
            kwargs=dict(spec.get("kwargs", {})),
        )
