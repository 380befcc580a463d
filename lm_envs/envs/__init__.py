"""Single (non-batched) environment classes."""
