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
    # Generation and known-entropy source ids are added below this line.
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
