"""Agents for lm_envs: the custom DQN and the baselines it is measured against."""
