"""Native batched (``gymnasium.vector.VectorEnv``) environment classes."""
