"""Synthetic token sources with exactly known optimal next-token accuracy and cross-entropy."""

from lm_envs.sources.base import SourceOptimum, SourceVocabulary, TokenSource
from lm_envs.sources.grammar import DEFAULT_GRAMMAR, GrammarSource
from lm_envs.sources.markov import MarkovSource

__all__ = [
    "DEFAULT_GRAMMAR",
    "GrammarSource",
    "MarkovSource",
    "SourceOptimum",
    "SourceVocabulary",
    "TokenSource",
]
