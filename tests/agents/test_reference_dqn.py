"""The single-file reference DQN: same weights as agents.dqn.DQN, argument checks, script run."""

from __future__ import annotations

import warnings
from dataclasses import replace

import gymnasium as gym
import pytest
import torch

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.dqn import DQN
from agents.reference_dqn import Args, library_config, linear_schedule, main, parse_args, train
from agents.schedules import LinearSchedule


@pytest.fixture
def small_args(tiny_corpus) -> Args:
    """A budget that crosses learning_starts, several target syncs and a few episode ends."""
    return Args(
        seed=3,
        corpus=str(tiny_corpus),
        context_length=6,
        episode_length=20,
        num_envs=4,
        total_timesteps=600,
        learning_rate=3e-3,
        buffer_size=400,
        gamma=0.5,
        target_network_frequency=50,
        batch_size=16,
        exploration_fraction=0.5,
        learning_starts=80,
        embed_dim=8,
        hidden_dim=16,
        log_interval=10_000,
        eval_tokens=50,
        device="cpu",
    )


def library_weights(args: Args) -> dict[str, torch.Tensor]:
    env = gym.make_vec(
        "LMNextToken-v0",
        num_envs=args.num_envs,
        vectorization_mode="vector_entry_point",
        corpus=args.corpus,
        tokenizer=args.tokenizer,
        context_length=args.context_length,
        episode_length=args.episode_length,
        split="train",
        reward="match",
    )
    with warnings.catch_warnings():
        # gamma > 0 on LMNextToken-v0 warns; the tests use it to exercise the target network.
        warnings.simplefilter("ignore", UserWarning)
        agent = DQN(env, library_config(args), device="cpu", seed=args.seed)
    agent.learn()
    assert agent.num_timesteps == args.total_timesteps
    assert agent.n_updates > 0
    return agent.q_network.state_dict()


def assert_same_weights(reference: dict, library: dict) -> None:
    assert reference.keys() == library.keys()
    for name in reference:
        torch.testing.assert_close(reference[name], library[name], rtol=0, atol=0, msg=name)


def test_reference_matches_library_with_bootstrap(small_args):
    reference = train(small_args).state_dict()
    assert_same_weights(reference, library_weights(small_args))


def test_reference_matches_library_gamma_zero_soft_sync(small_args):
    args = replace(small_args, gamma=0.0, tau=0.5, train_frequency=2, seed=0)
    reference = train(args).state_dict()
    assert_same_weights(reference, library_weights(args))


def test_reference_training_changes_weights(small_args):
    torch.manual_seed(small_args.seed)
    trained = train(small_args).state_dict()
    args = replace(small_args, total_timesteps=small_args.learning_starts)
    untrained = train(args).state_dict()
    assert not torch.equal(trained["head.weight"], untrained["head.weight"])


def test_reference_seed_changes_weights(small_args):
    first = train(small_args).state_dict()
    second = train(replace(small_args, seed=small_args.seed + 1)).state_dict()
    assert not torch.equal(first["head.weight"], second["head.weight"])


@pytest.mark.parametrize(
    ("step", "fraction"), [(0, 0.5), (100, 0.5), (299, 0.5), (300, 0.5), (900, 0.5), (5, 0.0)]
)
def test_linear_schedule_matches_library(step, fraction):
    expected = LinearSchedule(1.0, 0.05, fraction, 600)(step)
    assert linear_schedule(1.0, 0.05, fraction, 600, step) == expected


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_envs": 0}, ValueError, "num_envs must be >= 1"),
        ({"buffer_size": 10, "num_envs": 8}, ValueError, "buffer_size must be >= 16"),
        ({"gamma": 1.5}, ValueError, r"gamma must be in \[0, 1\]"),
        ({"tau": 0.0}, ValueError, "tau must be > 0"),
        ({"tau": 2.0}, ValueError, r"tau must be in \(0, 1\]"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate must be > 0"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
    ],
)
def test_args_reject_bad_values(kwargs, error, message):
    with pytest.raises(error, match=message):
        Args(**kwargs)


def test_parse_args_maps_every_field():
    args = parse_args(["--total-timesteps", "123", "--gamma", "0.25", "--corpus", "x.txt"])
    assert args.total_timesteps == 123
    assert args.gamma == 0.25
    assert args.corpus == "x.txt"
    assert args.seed == Args().seed


def test_main_runs_and_reports_accuracy(tiny_corpus, capsys):
    argv = [
        "--corpus",
        str(tiny_corpus),
        "--context-length",
        "4",
        "--num-envs",
        "4",
        "--total-timesteps",
        "400",
        "--learning-starts",
        "100",
        "--buffer-size",
        "400",
        "--batch-size",
        "16",
        "--hidden-dim",
        "16",
        "--log-interval",
        "200",
        "--eval-tokens",
        "40",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    output = capsys.readouterr().out
    assert "global_step=200 " in output
    assert "global_step=400 " in output
    assert "validation accuracy=" in output
    assert "over 40 tokens" in output
