"""DQN: targets on hand-built batches, schedules, exploration, config checks, and short runs."""

from __future__ import annotations

import json
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import lm_envs  # noqa: F401  (registers the environment ids)
from agents.dqn import DQN, DQNConfig
from agents.dqn_loss import (
    masked_argmax,
    masked_max,
    polyak_update,
    soft_state_value,
    td_loss,
    td_target,
)
from agents.logger import Logger
from agents.networks import QNetwork
from agents.schedules import LinearSchedule, per_env_epsilons, sample_valid_actions


def make_env(corpus, num_envs=16, split="train", **kwargs):
    settings = dict(context_length=4, episode_length=32, split=split)
    settings.update(kwargs)
    return gym.make_vec(
        "LMNextToken-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        corpus=str(corpus),
        **settings,
    )


def quiet_config(**kwargs) -> DQNConfig:
    settings = dict(
        total_steps=3000,
        learning_starts=500,
        gamma=0.0,
        learning_rate=2e-3,
        batch_size=64,
        exploration_fraction=0.3,
        target_update_interval=160,
        buffer_size=4096,
        log_outputs=(),
    )
    settings.update(kwargs)
    return DQNConfig(**settings)


def validation_accuracy(agent: DQN, corpus, vector_steps: int = 60) -> float:
    """Step the validation env with greedy actions; the "match" reward is 1 per correct token."""
    env = make_env(corpus, num_envs=8, split="validation")
    obs, _ = env.reset(seed=1)
    hits = 0.0
    scored = 0
    for _ in range(vector_steps):
        actions = agent.predict(obs, env.unwrapped.action_masks())
        obs, rewards, _, _, infos = env.step(actions)
        scored_rows = infos["_target"]  # False on the autoreset steps
        hits += rewards[scored_rows].sum()
        scored += scored_rows.sum()
    return hits / scored


# ------------------------------------------------------------------------------------------
# Targets and losses on hand-built batches


def test_target_max_ignores_masked_actions():
    next_q = torch.tensor([[1.0, 9.0, 2.0], [5.0, 3.0, 4.0]])
    masks = torch.tensor([[True, False, True], [False, True, True]])
    targets = td_target(torch.tensor([1.0, 0.5]), torch.tensor([0.9, 0.9]), next_q, masks)
    torch.testing.assert_close(targets, torch.tensor([1.0 + 0.9 * 2.0, 0.5 + 0.9 * 4.0]))


def test_target_termination_vs_truncation():
    next_q = torch.tensor([[3.0, 1.0], [3.0, 1.0]])
    masks = torch.ones(2, 2, dtype=torch.bool)
    # Row 0 terminated inside its window (discount 0); row 1 was truncated after 2 steps and
    # bootstraps from its final observation with gamma ** 2.
    discounts = torch.tensor([0.0, 0.81])
    targets = td_target(torch.tensor([1.0, 1.0]), discounts, next_q, masks)
    torch.testing.assert_close(targets, torch.tensor([1.0, 1.0 + 0.81 * 3.0]))


def test_terminated_target_ignores_nonfinite():
    next_q = torch.tensor([[math.nan, math.inf]])
    targets = td_target(
        torch.tensor([2.0]), torch.tensor([0.0]), next_q, torch.ones(1, 2, dtype=torch.bool)
    )
    assert targets.item() == 2.0


def test_target_without_valid_action_is_return():
    masks = torch.zeros(1, 3, dtype=torch.bool)
    next_q = torch.tensor([[1.0, 2.0, 3.0]])
    assert masked_max(next_q, masks).item() == 0.0
    assert soft_state_value(next_q, masks, 0.5).item() == 0.0
    assert td_target(torch.tensor([1.5]), torch.tensor([0.9]), next_q, masks).item() == 1.5


def test_double_dqn_target():
    next_q_target = torch.tensor([[1.0, 10.0, 4.0]])
    next_q_online = torch.tensor([[0.0, 9.0, 5.0]])
    masks = torch.tensor([[True, False, True]])
    # The online net selects action 2 (1 is masked), the target net evaluates it: 4.
    targets = td_target(
        torch.tensor([0.0]), torch.tensor([0.5]), next_q_target, masks, next_q_online
    )
    assert targets.item() == pytest.approx(2.0)
    assert masked_argmax(next_q_online, masks).item() == 2


def test_soft_target():
    next_q = torch.tensor([[1.0, 2.0, 100.0]])
    masks = torch.tensor([[True, True, False]])
    alpha = 0.5
    expected = alpha * math.log(math.exp(1.0 / alpha) + math.exp(2.0 / alpha))
    targets = td_target(torch.tensor([1.0]), torch.tensor([0.5]), next_q, masks, soft_alpha=alpha)
    assert targets.item() == pytest.approx(1.0 + 0.5 * expected, rel=1e-6)
    # A small temperature tends to the hard max over valid actions.
    assert soft_state_value(next_q, masks, 1e-3).item() == pytest.approx(2.0, abs=1e-3)


def test_td_loss_kinds_and_weights():
    q_taken = torch.tensor([1.0, 4.0])
    targets = torch.tensor([0.5, 1.0])
    weights = torch.tensor([1.0, 0.5])
    mse, td_errors = td_loss(q_taken, targets, weights, "mse")
    torch.testing.assert_close(td_errors, torch.tensor([0.5, 3.0]))
    assert mse.item() == pytest.approx((0.25 + 0.5 * 9.0) / 2)
    huber, _ = td_loss(q_taken, targets, weights, "huber")
    assert huber.item() == pytest.approx((0.5 * 0.25 + 0.5 * 2.5) / 2)
    with pytest.raises(ValueError, match="'huber' or 'mse'"):
        td_loss(q_taken, targets, weights, "l1")


def test_dueling_head_is_mean_centred():
    torch.manual_seed(0)
    network = QNetwork(7, 4, encoder="mlp", dueling=True, embed_dim=8, hidden_dim=16)
    tokens = torch.randint(0, 7, (5, 4))
    q_values = network(tokens)
    state_values = network.value_head(network.encoder(tokens)).squeeze(1)
    torch.testing.assert_close(q_values.mean(dim=1), state_values)


def test_polyak_update_math():
    torch.manual_seed(0)
    source = torch.nn.Linear(3, 2)
    target = torch.nn.Linear(3, 2)
    before = [p.clone() for p in target.parameters()]
    polyak_update(source, target, 0.25)
    for old, new, online in zip(before, target.parameters(), source.parameters(), strict=True):
        torch.testing.assert_close(new, 0.25 * online + 0.75 * old)
    polyak_update(source, target, 1.0)
    for new, online in zip(target.parameters(), source.parameters(), strict=True):
        assert torch.equal(new, online)


# ------------------------------------------------------------------------------------------
# Schedules and exploration


@pytest.mark.parametrize(
    ("start", "end", "fraction", "total", "step", "expected"),
    [
        (1.0, 0.1, 0.5, 100, 0, 1.0),
        (1.0, 0.1, 0.5, 100, 25, 0.55),
        (1.0, 0.1, 0.5, 100, 50, 0.1),
        (1.0, 0.1, 0.5, 100, 10_000, 0.1),
        (1.0, 0.1, 0.0, 100, 0, 0.1),  # fraction 0: the end value at once
        (1.0, 0.1, 1.0, 1, 0, 1.0),  # a budget of one step
        (1.0, 0.1, 1.0, 1, 1, 0.1),
    ],
)
def test_linear_schedule(start, end, fraction, total, step, expected):
    assert LinearSchedule(start, end, fraction, total)(step) == pytest.approx(expected)


def test_linear_schedule_rejects_bad_fraction():
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        LinearSchedule(1.0, 0.0, 1.5, 10)


def test_per_env_epsilons():
    epsilons = per_env_epsilons(0.4, 5, 7.0)
    np.testing.assert_allclose(epsilons, 0.4 ** (1 + np.arange(5) / 4 * 7.0))
    assert epsilons[0] == pytest.approx(0.4)
    assert np.all(np.diff(epsilons) < 0)
    np.testing.assert_allclose(per_env_epsilons(0.3, 1, 7.0), [0.3])


def test_sample_valid_actions_uniform_over_valid():
    masks = np.zeros((20_000, 6), dtype=bool)
    masks[:, [1, 3, 4]] = True
    actions = sample_valid_actions(masks, np.random.default_rng(0))
    counts = np.bincount(actions, minlength=6) / len(actions)
    np.testing.assert_allclose(counts[[1, 3, 4]], 1 / 3, atol=0.02)
    assert counts[[0, 2, 5]].sum() == 0


def test_sample_valid_actions_empty_row():
    masks = np.ones((3, 4), dtype=bool)
    masks[2] = False
    with pytest.raises(ValueError, match="row 2 of the action masks has no valid action"):
        sample_valid_actions(masks, np.random.default_rng(0))


def test_exploration_and_greedy_respect_masks(abc_corpus):
    env = make_env(abc_corpus, num_envs=4)
    agent = DQN(env, quiet_config(exploration_final_eps=1.0), device="cpu")
    vocab = agent.vocab_size
    # Make the masked action 2 the best by far, so only the mask keeps greedy away from it.
    with torch.no_grad():
        agent.q_network.head.bias.zero_()
        agent.q_network.head.bias[2] = 100.0
    obs = np.zeros((500, 4), dtype=np.int32)
    masks = np.ones((500, vocab), dtype=bool)
    masks[:, 2] = False
    masks[:, 0] = False
    assert not np.isin(agent.predict(obs, masks, deterministic=False), [0, 2]).any()
    assert not np.isin(agent.predict(obs, masks, deterministic=True), [0, 2]).any()
    assert (agent.predict(obs, None, deterministic=True) == 2).all()


def test_training_takes_only_valid_actions(abc_corpus):
    taken = []

    class RecordActions(gym.vector.VectorWrapper):
        def step(self, actions):
            taken.append(np.array(actions))
            return self.env.step(actions)

    env = RecordActions(make_env(abc_corpus, num_envs=8))
    agent = DQN(env, quiet_config(learning_starts=64, exploration_fraction=1.0), device="cpu")
    agent.learn(1024)
    mask = env.unwrapped.action_masks()[0]
    actions = np.concatenate(taken)
    assert mask[actions].all()
    assert len(np.unique(actions)) > 1


# ------------------------------------------------------------------------------------------
# Config


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"gamma": 1.5}, ValueError, r"gamma must be a finite number in \[0.0, 1.0\]"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate must be a finite number in"),
        ({"learning_rate": math.inf}, ValueError, "learning_rate must be a finite number"),
        ({"tau": 0.0}, ValueError, r"tau must be a finite number in \(0.0, 1.0\]"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"n_step": 2.0}, TypeError, "n_step must be an int"),
        ({"encoder": "lstm"}, ValueError, "encoder must be one of"),
        ({"optimizer": "adamw"}, ValueError, "Did you mean 'adam'"),
        ({"dueling": 1}, TypeError, "dueling must be True or False"),
        ({"double_dqn": True, "soft_q_learning": True}, ValueError, "cannot both be True"),
        ({"log_outputs": ("csv",)}, ValueError, "set log_folder"),
        ({"log_outputs": "stdout"}, TypeError, r"write \('stdout',\)"),
        ({"log_outputs": ("wandb",)}, ValueError, "log_outputs entry must be one of"),
        ({"encoder": "transformer", "embed_dim": 30}, ValueError, "not divisible by num_heads"),
        ({"max_grad_norm": -1.0}, ValueError, "max_grad_norm must be a finite number"),
    ],
)
def test_config_rejects_bad_values(kwargs, error, message):
    with pytest.raises(error, match=message):
        DQNConfig(**kwargs)


def test_config_json_round_trip():
    config = DQNConfig(log_outputs=("stdout", "json"), log_folder="logs", max_grad_norm=None)
    data = json.loads(json.dumps(config.to_dict()))
    assert DQNConfig.from_dict(data) == config
    with pytest.raises(
        ValueError, match="unknown DQNConfig keys \\['gama'\\]. Did you mean 'gamma'"
    ):
        DQNConfig.from_dict({**data, "gama": 0.5})


# ------------------------------------------------------------------------------------------
# Agent construction and inference


def test_gamma_warning_on_next_token(abc_corpus):
    with pytest.warns(UserWarning, match="teacher-forced.*set gamma=0"):
        DQN(make_env(abc_corpus, num_envs=2), quiet_config(gamma=0.99), device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DQN(make_env(abc_corpus, num_envs=2), quiet_config(gamma=0.0), device="cpu")


def test_rejects_non_token_env():
    with pytest.raises(TypeError, match="1-D integer token windows"):
        DQN(gym.make("CartPole-v1"), quiet_config(), device="cpu")
    with pytest.raises(TypeError, match="env must be a gymnasium.Env"):
        DQN("LMNextToken-v0", quiet_config(), device="cpu")


def test_q_values_and_predict_shapes(abc_corpus):
    agent = DQN(make_env(abc_corpus, num_envs=2), quiet_config(), device="cpu")
    obs = np.zeros((5, 4), dtype=np.int32)
    q_values = agent.q_values(obs)
    assert q_values.shape == (5, agent.vocab_size)
    assert q_values.dtype == np.float32
    actions = agent.predict(obs)
    assert actions.shape == (5,)
    assert actions.dtype == np.int64
    assert agent.predict(obs[0]).shape == (1,)
    with pytest.raises(ValueError, match=r"obs must have shape \(batch, 4\)"):
        agent.q_values(np.zeros((2, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="outside 0 .. "):
        agent.q_values(np.full((1, 4), agent.vocab_size))
    with pytest.raises(TypeError, match="integer token ids"):
        agent.predict(np.zeros((1, 4)))


def test_predict_accepts_read_only_arrays(abc_corpus):
    agent = DQN(make_env(abc_corpus, num_envs=2), quiet_config(), device="cpu")
    obs = np.broadcast_to(np.zeros(4, dtype=np.int32), (6, 4))
    mask = np.ones(agent.vocab_size, dtype=bool)
    mask[0] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        actions = agent.predict(obs, np.broadcast_to(mask, (6, agent.vocab_size)))
    assert (actions != 0).all()


def test_priority_beta_anneals_to_one(abc_corpus):
    config = quiet_config(prioritized_replay=True, priority_beta_start=0.4, total_steps=1000)
    agent = DQN(make_env(abc_corpus, num_envs=2), config, device="cpu")
    assert agent.beta_schedule(0) == pytest.approx(0.4)
    assert agent.beta_schedule(500) == pytest.approx(0.7)
    assert agent.beta_schedule(5000) == pytest.approx(1.0)


def test_seed_matches_supervised_network(abc_corpus):
    from agents.baselines import SupervisedAgent, SupervisedConfig

    agent = DQN(make_env(abc_corpus, num_envs=2), quiet_config(hidden_dim=32), device="cpu", seed=5)
    supervised = SupervisedAgent(
        agent.vocab_size,
        4,
        np.ones(agent.vocab_size, dtype=bool),
        SupervisedConfig(encoder_kwargs={"embed_dim": 32, "hidden_dim": 32, "num_layers": 1}),
        device="cpu",
        seed=5,
    )
    for name, tensor in supervised.state_dict().items():
        assert torch.equal(tensor, agent.q_network.state_dict()[name]), name


# ------------------------------------------------------------------------------------------
# Learning


def test_learns_repetitive_corpus(abc_corpus):
    agent = DQN(make_env(abc_corpus), quiet_config(), device="cpu", seed=0)
    agent.learn()
    assert agent.num_timesteps == 3008
    assert agent.n_updates > 100
    assert validation_accuracy(agent, abc_corpus) > 0.9


@pytest.mark.slow
@pytest.mark.parametrize(
    "switches",
    [
        {"double_dqn": True},
        {"dueling": True},
        {"prioritized_replay": True},
        {"soft_q_learning": True, "soft_q_alpha": 0.01},
        {"n_step": 3, "gamma": 0.5},
        {"per_env_epsilon": True, "exploration_initial_eps": 0.4, "exploration_final_eps": 0.4},
        {"optimizer": "rmsprop", "loss": "mse", "tau": 0.5},
        {"encoder": "gru", "hidden_dim": 64},
    ],
)
def test_learns_with_each_switch(abc_corpus, switches):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gamma > 0 on LMNextToken
        agent = DQN(make_env(abc_corpus), quiet_config(**switches), device="cpu", seed=0)
    agent.learn()
    assert validation_accuracy(agent, abc_corpus) > 0.9


def test_single_env_is_wrapped(abc_corpus):
    env = gym.make("LMNextToken-v0", corpus=str(abc_corpus), context_length=4, episode_length=8)
    agent = DQN(env, quiet_config(learning_starts=16, batch_size=8), device="cpu")
    agent.learn(64)
    assert agent.num_envs == 1
    assert agent.num_timesteps == 64
    assert agent.n_updates == 64 - 16 + 1
    # The char tokenizer's <pad> (0) and <unk> (2) are masked, and the buffer learned that mask.
    assert not agent.replay.mask_table[0, [0, 2]].any()


def test_same_step_autoreset_stores_same_rows(abc_corpus):
    """Both autoreset modes must lay out the same episodes: steps, then the final observation."""
    columns = {}
    for mode in ("next_step", "same_step"):
        env = make_env(abc_corpus, num_envs=4, autoreset_mode=mode, episode_length=5)
        agent = DQN(env, quiet_config(learning_starts=10_000), device="cpu", seed=2)
        agent.learn(4 * 40)
        columns[mode] = agent.replay
    next_step, same_step = columns["next_step"], columns["same_step"]
    assert same_step.counts.min() > next_step.counts.max() - 4
    rows = int(next_step.counts.min())
    for name in ("obs", "ended", "terminated", "valid"):
        np.testing.assert_array_equal(
            getattr(next_step, name)[:rows], getattr(same_step, name)[:rows], err_msg=name
        )
    # Truncations occurred and each ended row is followed by a non-transition row.
    ended_rows, env_ids = np.nonzero(next_step.ended[: rows - 1])
    assert len(ended_rows) > 4
    assert not next_step.valid[ended_rows + 1, env_ids].any()


def test_same_step_sync_vector_env(abc_corpus):
    env = gym.vector.SyncVectorEnv(
        [
            lambda: gym.make(
                "LMNextToken-v0", corpus=str(abc_corpus), context_length=4, episode_length=3
            )
            for _ in range(2)
        ],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    agent = DQN(env, quiet_config(learning_starts=8, batch_size=8), device="cpu")
    agent.learn(40)
    final_rows = ~agent.replay.valid[: agent.replay.counts.min()]
    assert final_rows.sum() >= 2 * 6
    assert agent.n_updates > 0


def test_tiny_budgets(abc_corpus):
    env = make_env(abc_corpus, num_envs=4)
    agent = DQN(env, quiet_config(total_steps=1, exploration_fraction=0.0), device="cpu")
    agent.learn()
    assert agent.num_timesteps == 4
    assert agent.n_updates == 0  # learning_starts 500 is beyond the budget
    assert agent.exploration_rate == pytest.approx(0.05)
    assert agent.learn() is agent  # the budget is spent: nothing more to do
    assert agent.num_timesteps == 4
    agent = DQN(env, quiet_config(total_steps=1, learning_starts=0, batch_size=2), device="cpu")
    agent.learn(1)
    assert agent.n_updates == 0  # no step has its next observation stored yet
    agent.learn(4)
    assert agent.n_updates == 1


def test_callback_every_eval_interval_and_stop(abc_corpus):
    calls = []

    def callback(agent):
        calls.append(agent.num_timesteps)
        return len(calls) < 3

    agent = DQN(make_env(abc_corpus, num_envs=8), quiet_config(eval_interval=100), device="cpu")
    agent.learn(10_000, callback=callback)
    assert calls == [104, 200, 304]
    assert agent.num_timesteps == 304
    with pytest.raises(TypeError, match="callback must be callable"):
        agent.learn(8, callback=5)


def test_learn_logs_standard_keys(abc_corpus, tmp_path):
    logger = Logger(outputs=("json",), folder=tmp_path)
    agent = DQN(
        make_env(abc_corpus, num_envs=8),
        quiet_config(log_interval=400, learning_starts=100),
        device="cpu",
        logger=logger,
    )
    agent.learn(800, progress_bar=True)
    records = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [400, 800]
    for key in (
        "rollout/ep_rew_mean",
        "rollout/exploration_rate",
        "train/loss",
        "train/q_mean",
        "train/n_updates",
        "time/fps",
        "time/total_timesteps",
    ):
        assert key in records[-1], key
    assert records[-1]["train/n_updates"] == agent.n_updates


def test_amp_on_cpu_warns(abc_corpus):
    with pytest.warns(UserWarning, match="amp=True has no effect on the CPU"):
        agent = DQN(make_env(abc_corpus, num_envs=2), quiet_config(amp=True), device="cpu")
    agent.learn(32)


def test_device_auto_resolves(abc_corpus):
    agent = DQN(make_env(abc_corpus, num_envs=2), quiet_config(), device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert agent.device.type == expected
    assert next(agent.q_network.parameters()).device.type == expected


@pytest.mark.slow
def test_compile_runs(abc_corpus):
    agent = DQN(
        make_env(abc_corpus, num_envs=4),
        quiet_config(compile=True, learning_starts=16, batch_size=16),
        device="cpu",
    )
    before = agent.q_network.head.weight.detach().clone()
    agent.learn(64)
    assert agent.n_updates > 0
    assert not torch.equal(before, agent.q_network.head.weight)
