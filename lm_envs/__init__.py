"""lm_envs: language-modeling tasks as Gymnasium environments.

Importing the package registers every environment id, e.g. ``gym.make("LMNextToken-v0")``.
"""

from lm_envs.corpora import Corpus, load_corpus
from lm_envs.data import OBS_DTYPE, load_corpus_data, load_windows
from lm_envs.errors import UnknownCorpusError
from lm_envs.ngram import NGramModel, fit_ngram
from lm_envs.registration import ENVIRONMENTS, register_all
from lm_envs.tokenizer import LMTokenizer, load_tokenizer

register_all()

__version__ = "0.1.0"
__all__ = [
    "ENVIRONMENTS",
    "OBS_DTYPE",
    "Corpus",
    "LMTokenizer",
    "NGramModel",
    "UnknownCorpusError",
    "fit_ngram",
    "load_corpus",
    "load_corpus_data",
    "load_tokenizer",
    "load_windows",
]
