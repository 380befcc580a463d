"""Torch and Stable-Baselines3 integration; the only part of lm_envs that imports torch.

Submodules:

* :mod:`lm_envs.sb3.encoders`: token-window encoders (MLP, GRU, causal transformer) in plain torch.
"""
