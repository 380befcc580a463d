"""Torch and Stable-Baselines3 integration; the only part of lm_envs that imports torch.

Nothing heavy is imported with this package; import the submodules:

* :mod:`lm_envs.sb3.encoders`: token-window encoders (MLP, GRU, causal transformer) in plain torch.
* :mod:`lm_envs.sb3.vec_env`: ``LMVecEnv``, the SB3 ``VecEnv`` adapter over a native batch, and
  ``make_sb3_env``.
* :mod:`lm_envs.sb3.extractors`: ``TokenWindowExtractor``, an SB3 feature extractor over the
  encoders.
* :mod:`lm_envs.sb3.callbacks`: ``TokenAccuracyCallback``, greedy next-token accuracy on a
  held-out split.
"""
