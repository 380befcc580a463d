from __future__ import annotations

import sys
import types
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from tokenizers import Tokenizer, decoders, models

import lm_envs  # noqa: F401  (registers the ids)
from lm_envs.corpora import load_corpus
from lm_envs.data import OBS_DTYPE, load_corpus_data, load_windows
from lm_envs.envs.generate import LMGenerateEnv, distinct_n
from lm_envs.ngram import NGramModel
from lm_envs.reference import LOG_PROB_FLOOR, HFCausalLMReference
from lm_envs.tokenizer import load_tokenizer
from lm_envs.validation import parse_autoreset_mode

SMALL = {"context_length": 16, "prompt_length": 4, "max_new_tokens": 8}


def make_env(corpus, **kwargs) -> LMGenerateEnv:
    return gym.make("LMGenerate-v0", corpus=str(corpus), **{**SMALL, **kwargs}).unwrapped


def token_id(env, text: str) -> int:
    (token,) = env.tokenizer.encode(text).tolist()
    assert token != env.tokenizer.unk_id, f"{text!r} is not in the test vocabulary"
    return int(token)


def valid_action(env, rng) -> int:
    return int(rng.choice(np.flatnonzero(env.action_masks())))


def assert_vector_matches_single(env_id, kwargs, num_envs, seed, steps, autoreset_mode, policy):
    """Step a native batch and single envs seeded seed + i with the same actions; compare all."""
    vec = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode=autoreset_mode,
        **kwargs,
    )
    singles = [gym.make(env_id, **kwargs).unwrapped for _ in range(num_envs)]
    assert vec.metadata["autoreset_mode"] == parse_autoreset_mode(autoreset_mode)
    vec_obs, vec_info = vec.reset(seed=seed)
    for i, env in enumerate(singles):
        obs, info = env.reset(seed=seed + i)
        np.testing.assert_array_equal(vec_obs[i], obs)
        for key in vec_info:
            if not key.startswith("_"):
                assert vec_info[key][i] == info[key]

    needs_reset = np.zeros(num_envs, dtype=bool)
    episode_ends = 0
    for _ in range(steps):
        actions = np.array([policy(env) for env in singles])
        vec_obs, vec_rewards, vec_term, vec_trunc, infos = vec.step(actions)
        assert vec_obs.dtype == OBS_DTYPE
        for i, env in enumerate(singles):
            if needs_reset[i]:
                obs, _ = env.reset()
                reward, terminated, truncated, info = 0.0, False, False, {}
            else:
                obs, reward, terminated, truncated, info = env.step(int(actions[i]))
            assert (bool(vec_term[i]), bool(vec_trunc[i])) == (terminated, truncated)
            assert vec_rewards[i] == pytest.approx(reward, rel=1e-6, abs=1e-6)
            for key, value in info.items():
                if key != "action_mask":
                    assert infos[f"_{key}"][i], key
                    assert infos[key][i] == pytest.approx(value), key
            if terminated or truncated:
                episode_ends += 1
                if autoreset_mode == "same_step":
                    assert infos["_final_obs"][i]
                    np.testing.assert_array_equal(infos["final_obs"][i], obs)
                    obs, _ = env.reset()
            np.testing.assert_array_equal(vec_obs[i], obs)
            needs_reset[i] = autoreset_mode == "next_step" and (terminated or truncated)
    assert episode_ends > 0


# ---- spaces, prompts and masks ----


def test_reset_shows_prompt_right_aligned(tiny_corpus):
    env = make_env(tiny_corpus)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert obs.dtype == OBS_DTYPE
    pad = env.tokenizer.pad_id
    assert np.all(obs[:12] == pad)
    assert np.all(obs[12:] != pad)
    prompt = env.tokenizer.decode(obs[12:])
    documents = load_corpus(str(tiny_corpus)).split("train")
    assert any(prompt in document for document in documents)
    np.testing.assert_array_equal(info["action_mask"], env.action_masks())


def test_prompt_length_zero_starts_empty(tiny_corpus):
    env = make_env(tiny_corpus, prompt_length=0)
    obs, _ = env.reset(seed=0)
    assert np.all(obs == env.tokenizer.pad_id)


def test_action_mask_pad_invalid_eos_valid(tiny_corpus):
    env = make_env(tiny_corpus)
    mask = env.action_masks()
    assert mask.dtype == bool
    assert mask.shape == (env.action_space.n,)
    assert not mask[env.tokenizer.pad_id]
    assert not mask[env.tokenizer.unk_id]
    assert mask[env.tokenizer.eos_id]


def test_context_advances_with_agent_token(tiny_corpus):
    env = make_env(tiny_corpus)
    obs, _ = env.reset(seed=1)
    action = token_id(env, "語")
    next_obs, *_ = env.step(action)
    np.testing.assert_array_equal(next_obs[:-1], obs[1:])
    assert next_obs[-1] == action


# ---- rewards ----


def test_reward_equals_independent_ngram_log_prob(tiny_corpus):
    env = make_env(tiny_corpus, reference_order=3)
    data = load_corpus_data(str(tiny_corpus), "char", None)
    train = load_windows(str(tiny_corpus), "char", None, "train", 2)
    model = NGramModel(3, data.tokenizer.vocab_size, data.tokenizer.pad_id).fit(train)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=2)
    for _ in range(30):
        action = valid_action(env, rng)
        expected = np.log(model.distribution(obs[None, :])[0, action])
        obs_next, reward, terminated, truncated, info = env.step(action)
        assert reward == pytest.approx(max(expected, LOG_PROB_FLOOR), rel=1e-9)
        assert info["log_prob"] == reward
        obs = obs_next
        if terminated or truncated:
            obs, _ = env.reset()


def test_pad_action_gets_floor_reward(tiny_corpus):
    env = make_env(tiny_corpus)
    env.reset(seed=0)
    _, reward, *_ = env.step(env.tokenizer.pad_id)
    assert reward == LOG_PROB_FLOOR


def test_repetition_penalty_within_window(tiny_corpus):
    env = make_env(tiny_corpus, repetition_penalty=2.0, repetition_window=2, max_new_tokens=8)
    env.reset(seed=0)
    a, b, c = token_id(env, "a"), token_id(env, "t"), token_id(env, "c")
    repeated = []
    for action in (a, a, b, c, a, c):
        _, reward, _, _, info = env.step(action)
        repeated.append(info["repeated"])
        assert reward == pytest.approx(info["log_prob"] - 2.0 * info["repeated"])
    # a a: repeated; b, c: new; a: last two are b c, outside the window; c: within it.
    assert repeated == [False, True, False, False, False, True]


def test_no_penalty_by_default(tiny_corpus):
    env = make_env(tiny_corpus)
    env.reset(seed=0)
    a = token_id(env, "a")
    env.step(a)
    _, reward, _, _, info = env.step(a)
    assert reward == info["log_prob"]


# ---- episode end ----


def test_eos_terminates_with_continuation(tiny_corpus):
    env = make_env(tiny_corpus)
    env.reset(seed=0)
    for char in "机器😀":
        _, _, terminated, truncated, info = env.step(token_id(env, char))
        assert not terminated
        assert not truncated
        assert "continuation" not in info
    _, _, terminated, truncated, info = env.step(env.tokenizer.eos_id)
    assert terminated
    assert not truncated
    assert info["continuation"] == "机器😀"
    assert info["distinct_1"] == 1.0
    assert info["distinct_2"] == 1.0


def test_max_new_tokens_truncates(tiny_corpus):
    env = make_env(tiny_corpus, max_new_tokens=5)
    env.reset(seed=0)
    a = token_id(env, "a")
    for _ in range(4):
        _, _, terminated, truncated, _ = env.step(a)
        assert not terminated
        assert not truncated
    _, _, terminated, truncated, info = env.step(a)
    assert truncated
    assert not terminated
    assert info["continuation"] == "aaaaa"


def test_distinct_n_on_hand_built_sequence(tiny_corpus):
    assert distinct_n([1, 2, 1, 2, 3], 1) == pytest.approx(3 / 5)
    assert distinct_n([1, 2, 1, 2, 3], 2) == pytest.approx(3 / 4)
    assert distinct_n([7], 2) == 0.0
    assert distinct_n([], 1) == 0.0
    env = make_env(tiny_corpus, max_new_tokens=5)
    env.reset(seed=0)
    for char in "tatac":
        _, _, _, truncated, info = env.step(token_id(env, char))
    assert truncated
    assert info["continuation"] == "tatac"
    assert info["distinct_1"] == pytest.approx(3 / 5)
    assert info["distinct_2"] == pytest.approx(3 / 4)


def test_eos_excluded_from_distinct(tiny_corpus):
    env = make_env(tiny_corpus)
    env.reset(seed=0)
    env.step(token_id(env, "a"))
    _, _, terminated, _, info = env.step(env.tokenizer.eos_id)
    assert terminated
    assert info["distinct_1"] == 1.0
    assert info["distinct_2"] == 0.0


def test_partial_utf8_continuation_decodes(tiny_corpus):
    env = make_env(tiny_corpus, tokenizer="byte")
    env.reset(seed=0)
    first_byte = "😀".encode()[0] + 2  # byte ids start after <pad> and <eos>
    env.step(first_byte)
    _, _, terminated, _, info = env.step(env.tokenizer.eos_id)
    assert terminated
    assert info["continuation"] == "\ufffd"


def test_step_after_end_warns(tiny_corpus):
    env = make_env(tiny_corpus)
    env.reset(seed=0)
    env.step(env.tokenizer.eos_id)
    with pytest.warns(UserWarning, match="call reset"):
        _, reward, terminated, _, _ = env.step(5)
    assert reward == 0.0
    assert terminated


# ---- render, determinism, checkers ----


def test_render_marks_last_token(tiny_corpus):
    env = make_env(tiny_corpus, render_mode="ansi")
    obs, _ = env.reset(seed=4)
    assert env.render() == env.tokenizer.decode(obs[obs != env.tokenizer.pad_id])
    env.step(token_id(env, "😀"))
    text = env.render()
    assert "[[😀]]" in text
    assert "(log_prob -" in text


def test_render_without_mode_warns(tiny_corpus):
    env = make_env(tiny_corpus)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def _rollout(env, seed, steps):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    record = [obs.tolist()]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(valid_action(env.unwrapped, rng))
        record.append((obs.tolist(), reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            record.append(obs.tolist())
    return record


def test_reset_seed_determinism(tiny_corpus):
    first = _rollout(make_env(tiny_corpus, repetition_penalty=1.0), 9, 60)
    second = _rollout(make_env(tiny_corpus, repetition_penalty=1.0), 9, 60)
    assert first == second
    other = _rollout(make_env(tiny_corpus, repetition_penalty=1.0), 10, 60)
    assert first != other


OPTIONS = [
    {},
    {"prompt_length": 0},
    {"repetition_penalty": 0.5, "repetition_window": 3},
    {"reference_order": 1},
    {"tokenizer": "byte", "split": "validation"},
    {"render_mode": "ansi"},
]


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_check_env_passes(tiny_corpus, options):
    env = gym.make("LMGenerate-v0", corpus=str(tiny_corpus), **{**SMALL, **options})
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        check_env(env.unwrapped, skip_render_check="render_mode" not in options)
    sb3_check_env(env.unwrapped, warn=True)


# ---- native batch ----


@pytest.mark.parametrize("autoreset_mode", ["next_step", "same_step"])
def test_batch_equals_single_envs(tiny_corpus, autoreset_mode):
    rng = np.random.default_rng(0)
    eos = load_corpus_data(str(tiny_corpus), "char", None).tokenizer.eos_id

    def policy(env):
        # End some episodes early with <eos> so both end kinds occur.
        return eos if rng.random() < 0.1 else valid_action(env, rng)

    kwargs = {"corpus": str(tiny_corpus), **SMALL, "max_new_tokens": 5, "repetition_penalty": 1.0}
    assert_vector_matches_single("LMGenerate-v0", kwargs, 4, 21, 30, autoreset_mode, policy)


def test_batch_reports_continuation_masks(tiny_corpus):
    vec = gym.make_vec(
        "LMGenerate-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        corpus=str(tiny_corpus),
        **{**SMALL, "max_new_tokens": 3},
    )
    vec.reset(seed=0)
    eos = vec.unwrapped.tokenizer.eos_id
    a = int(vec.unwrapped.tokenizer.encode("a")[0])
    _, _, terminated, _, infos = vec.step(np.array([eos, a]))
    assert terminated.tolist() == [True, False]
    assert infos["_continuation"].tolist() == [True, False]
    assert infos["continuation"][0] == ""
    masks = vec.unwrapped.action_masks()
    assert masks.shape == (2, vec.single_action_space.n)


def test_batch_render_returns_one_text_per_env(tiny_corpus):
    vec = gym.make_vec(
        "LMGenerate-v0",
        num_envs=3,
        vectorization_mode="vector_entry_point",
        corpus=str(tiny_corpus),
        render_mode="ansi",
        **SMALL,
    )
    vec.reset(seed=0)
    vec.step(np.full(3, 5))
    texts = vec.render()
    assert len(texts) == 3
    assert all("[[" in text for text in texts)


# ---- bad arguments ----


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prompt_length": 20}, ValueError, r"prompt_length must be in \[0, 16\], got 20"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens must be >= 1"),
        ({"repetition_penalty": -1.0}, ValueError, "repetition_penalty must be a finite"),
        ({"repetition_penalty": "big"}, TypeError, "repetition_penalty must be a number"),
        ({"repetition_window": 0}, ValueError, "repetition_window must be >= 1"),
        (
            {"context_length": 2, "prompt_length": 2, "reference_order": 5},
            ValueError,
            "reference_order=5 needs context_length >= 4",
        ),
        ({"reference": "ngarm"}, ValueError, "reference must be 'ngram' or a folder"),
        ({"reference": 3}, TypeError, "reference must be 'ngram' or a folder path"),
        ({"split": "tset"}, ValueError, "Did you mean 'test'"),
        ({"device": "gpu"}, ValueError, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ({"render_mode": "human"}, ValueError, "render_mode must be one of"),
    ],
)
def test_bad_arguments_rejected(tiny_corpus, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_env(tiny_corpus, **kwargs)


def test_batch_rejects_unknown_argument(tiny_corpus):
    with pytest.raises(TypeError, match=r"unexpected arguments \['episode_length'\]"):
        gym.make_vec(
            "LMGenerate-v0",
            num_envs=2,
            vectorization_mode="vector_entry_point",
            corpus=str(tiny_corpus),
            episode_length=4,
        )


def test_bad_actions_rejected(tiny_corpus):
    env = make_env(tiny_corpus)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="out of range"):
        env.step(env.action_space.n)
    with pytest.raises(TypeError, match="integer token id"):
        env.step(1.5)


def test_prompt_longer_than_documents_rejected(tmp_path):
    corpus = tmp_path / "short.txt"
    corpus.write_text("ab\ncd\nef\ngh\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has prompt_length=8 tokens; lower prompt_length"):
        LMGenerateEnv(corpus=str(corpus), context_length=8, prompt_length=8)


# ---- Hugging Face reference ----


def test_hf_reference_without_transformers_names_install(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    with pytest.raises(ImportError, match="pip install transformers"):
        make_env(tiny_corpus, reference=str(model_dir))


class TinyCausalLM(torch.nn.Module):
    """A stand-in for a transformers causal LM: logits depend on the last attended token."""

    def __init__(self, vocab_size: int, eos_token_id: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(vocab_size, 8)
        self.head = torch.nn.Linear(8, vocab_size)
        self.config = types.SimpleNamespace(eos_token_id=eos_token_id, bos_token_id=None)
        self.calls: list[dict] = []

    def get_output_embeddings(self):
        return self.head

    def forward(self, input_ids, attention_mask, position_ids):
        self.calls.append(
            {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
        )
        hidden = self.embed(input_ids) + 0.1 * position_ids[..., None]
        return types.SimpleNamespace(logits=self.head(hidden))


def install_fake_transformers(monkeypatch, model):
    loads = []

    class AutoModelForCausalLM:
        @staticmethod
        def from_pretrained(path, **kwargs):
            loads.append((path, kwargs))
            return model

    module = types.ModuleType("transformers")
    module.AutoModelForCausalLM = AutoModelForCausalLM
    monkeypatch.setitem(sys.modules, "transformers", module)
    return loads


def save_model_tokenizer(tiny_corpus, folder) -> int:
    """Write a char tokenizer.json without <pad>/<eos>, as a model's own file; return its size."""
    text = "".join(load_corpus(str(tiny_corpus)).documents)
    vocab = {"[UNK]": 0}
    for char in sorted(set(text)):
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.decoder = decoders.Fuse()
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    return len(vocab)


def test_hf_reference_scores_with_model(tiny_corpus, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    model_vocab = save_model_tokenizer(tiny_corpus, folder)
    model = TinyCausalLM(model_vocab, eos_token_id=0)
    loads = install_fake_transformers(monkeypatch, model)
    env = make_env(
        tiny_corpus, tokenizer=str(folder / "tokenizer.json"), reference=str(folder), device="cpu"
    )
    assert loads == [(str(folder), {"local_files_only": True})]
    # <pad> and <eos> were appended after the model's ids.
    assert env.tokenizer.pad_id == model_vocab
    assert env.tokenizer.eos_id == model_vocab + 1

    obs, _ = env.reset(seed=0)
    action = token_id(env, "a")
    _, reward, *_ = env.step(action)
    call = model.calls[-1]
    attended = call["attention_mask"][0].numpy().astype(bool)
    assert attended.tolist() == [False] * 12 + [True] * 4
    assert call["position_ids"][0, -4:].tolist() == [0, 1, 2, 3]
    with torch.no_grad():
        logits = model.head(model.embed(torch.as_tensor(obs[-1:], dtype=torch.long)) + 0.3)
        expected = torch.log_softmax(logits, dim=-1)[0, action].item()
    assert reward == pytest.approx(expected, rel=1e-5)


def test_hf_reference_maps_eos_and_pad(tiny_corpus, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    model_vocab = save_model_tokenizer(tiny_corpus, folder)
    model = TinyCausalLM(model_vocab, eos_token_id=3)
    install_fake_transformers(monkeypatch, model)
    tokenizer = load_tokenizer(str(folder / "tokenizer.json"))
    reference = HFCausalLMReference(folder, tokenizer, device="cpu")
    contexts = np.full((2, 4), tokenizer.pad_id, dtype=OBS_DTYPE)
    contexts[:, -1] = 5
    scores = reference.log_prob(contexts, np.array([tokenizer.eos_id, tokenizer.pad_id]))
    with torch.no_grad():
        logits = model.head(model.embed(torch.tensor([5])))
        expected_eos = torch.log_softmax(logits, dim=-1)[0, 3].item()
    assert scores[0] == pytest.approx(expected_eos, rel=1e-5)
    assert scores[1] == -np.inf


def test_hf_reference_needs_model_tokenizer(tiny_corpus, tmp_path, monkeypatch):
    folder = tmp_path / "model"
    save_model_tokenizer(tiny_corpus, folder)
    install_fake_transformers(monkeypatch, TinyCausalLM(10, eos_token_id=0))
    with pytest.raises(ValueError, match="pass tokenizer=.*tokenizer.json"):
        make_env(tiny_corpus, reference=str(folder))
