"""Corpus specs: where text comes from, and how it is cut into train/validation/test splits.

A spec is one of:

* ``"pydoc"`` (the default): the language-reference topics that ship with CPython in
  ``pydoc_data``, real English prose present on every install;
* a path to a UTF-8 text file (one document) or a folder of ``.txt`` files (one document each);
* ``"hf:NAME"`` or ``"hf:NAME:CONFIG"``: a Hugging Face ``datasets`` dataset read from the local
  cache only (needs the ``hf`` extra), with its ``"text"`` column as documents.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from lm_envs.errors import UnknownCorpusError, suggest

DEFAULT_CORPUS = "pydoc"
EMBEDDED_CORPORA = ("pydoc",)
SPLITS = ("train", "validation", "test")
# Fractions of the corpus given to each split, in SPLITS order.
SPLIT_FRACTIONS = (0.9, 0.05, 0.05)
# A corpus with at least this many documents is split by whole documents. A smaller corpus is
# cut inside each document at line boundaries, so a single-file corpus still gets three splits.
MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT = 20


@dataclass(frozen=True)
class Corpus:
    """A named list of documents and their content fingerprint."""

    name: str
    documents: tuple[str, ...]
    fingerprint: str = field(default="", compare=False)

    def split(self, split: str) -> list[str]:
        """Return the documents of one split (``"train"``, ``"validation"`` or ``"test"``)."""
        return split_documents(self.documents, split)


def load_corpus(spec: str | os.PathLike = DEFAULT_CORPUS) -> Corpus:
    """Resolve a corpus spec to its documents.

    Raises:
        UnknownCorpusError: the spec names no embedded corpus and no existing path.
        ValueError: the corpus is empty, or a file is not valid UTF-8.
        TypeError: the spec is not a string or path.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(
            f"corpus must be a string or path, got {type(spec).__name__} ({spec!r}); "
            f"use {DEFAULT_CORPUS!r}, a file or folder path, or 'hf:NAME'."
        )
    text_spec = os.fspath(spec)
    if text_spec in EMBEDDED_CORPORA and not Path(text_spec).exists():
        documents = _load_pydoc()
    elif text_spec.startswith("hf:"):
        documents = _load_hf(text_spec[3:])
    else:
        path = Path(text_spec).expanduser()
        if not path.exists():
            raise UnknownCorpusError(
                f"corpus {text_spec!r} is neither an embedded corpus {list(EMBEDDED_CORPORA)} "
                f"nor an existing file or folder.{suggest(text_spec, EMBEDDED_CORPORA)} "
                "Pass a path to a UTF-8 .txt file or a folder of them."
            )
        documents = _load_path(path)
    documents = tuple(doc for doc in documents if doc)
    if not documents or not any(doc.strip() for doc in documents):
        raise ValueError(
            f"corpus {text_spec!r} contains no text; give a corpus with at least one non-empty "
            "document."
        )
    return Corpus(name=text_spec, documents=documents, fingerprint=_fingerprint(documents))


def split_documents(documents: tuple[str, ...] | list[str], split: str) -> list[str]:
    """Return one split of ``documents``: deterministic, and disjoint from the other splits.

    Corpora with many documents are split by whole documents, ordered by a hash of their
    content, so the assignment does not depend on file order. Exact duplicate documents are
    kept once, so the same text can never land in two splits. Smaller corpora are split inside
    each document at line boundaries: the first 90% of its lines train, the next 5% validate,
    the last 5% test.
    """
    if split not in SPLITS:
        raise ValueError(
            f"split must be one of {list(SPLITS)}, got {split!r}.{suggest(split, SPLITS)}"
        )
    index = SPLITS.index(split)
    unique = list(dict.fromkeys(documents))
    if len(unique) >= MIN_DOCUMENTS_FOR_DOCUMENT_SPLIT:
        ordered = sorted(unique, key=lambda doc: hashlib.sha256(doc.encode("utf-8")).digest())
        start, stop = _split_bounds(len(ordered), index)
        return ordered[start:stop]
    pieces = []
    for doc in documents:
        lines = doc.splitlines(keepends=True)
        if len(lines) < len(SPLITS):
            # Too few lines to cut: cut by characters instead.
            start, stop = _split_bounds(len(doc), index)
            piece = doc[start:stop]
        else:
            start, stop = _split_bounds(len(lines), index)
            piece = "".join(lines[start:stop])
        if piece:
            pieces.append(piece)
    return pieces


def _split_bounds(n: int, index: int) -> tuple[int, int]:
    """Return [start, stop) of split ``index`` over ``n`` items; each split gets one item if it can."""
    validation = max(1, round(n * SPLIT_FRACTIONS[1])) if n >= 3 else 0
    test = max(1, round(n * SPLIT_FRACTIONS[2])) if n >= 3 else 0
    train = n - validation - test
    bounds = (0, train, train + validation, n)
    return bounds[index], bounds[index + 1]


def _fingerprint(documents: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for doc in documents:
        data = doc.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def _load_pydoc() -> list[str]:
    from pydoc_data import topics

    return [topics.topics[name] for name in sorted(topics.topics)]


def _read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not valid UTF-8: byte 0x{data[error.start]:02x} at offset {error.start} "
            f"({error.reason}); re-encode the file as UTF-8, e.g. with `iconv -t UTF-8`."
        ) from None


def _load_path(path: Path) -> list[str]:
    if path.is_file():
        return [_read_utf8(path)]
    files = sorted(p for p in path.rglob("*.txt") if p.is_file())
    if not files:
        raise ValueError(
            f"folder {str(path)!r} contains no .txt files; put UTF-8 .txt files in it or pass "
            "a file path."
        )
    return [_read_utf8(p) for p in files]


@contextlib.contextmanager
def _hub_offline():
    """Keep the Hugging Face libraries offline for the duration of the block.

    The libraries copy the environment variables into module constants when ``datasets`` is
    first imported. Setting the variables is therefore not enough after that import, so the
    constants are set too. Both are restored afterwards.
    """
    saved_env = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    os.environ.update({key: "1" for key in saved_env})
    import datasets
    import huggingface_hub.constants as hub_constants

    saved_constants = [
        (module, name, getattr(module, name))
        for module, name in (
            (datasets.config, "HF_HUB_OFFLINE"),
            (datasets.config, "HF_DATASETS_OFFLINE"),
            (hub_constants, "HF_HUB_OFFLINE"),
        )
        if hasattr(module, name)
    ]
    for module, name, _ in saved_constants:
        setattr(module, name, True)
    try:
        yield datasets
    finally:
        for module, name, value in saved_constants:
            setattr(module, name, value)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _load_hf(name_and_config: str) -> list[str]:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise ImportError(
            "corpus 'hf:...' needs the Hugging Face datasets package; install it with "
            "`pip install 'lm-envs[hf]'`."
        ) from None
    name, _, config = name_and_config.partition(":")
    if not name:
        raise ValueError("corpus 'hf:' needs a dataset name, e.g. 'hf:wikitext:wikitext-2-raw-v1'.")
    # The product never downloads at run time, so only the local cache is read.
    with _hub_offline() as datasets:
        try:
            if Path(name).exists():
                loaded = datasets.load_from_disk(name)
            else:
                loaded = datasets.load_dataset(name, config or None)
        except (FileNotFoundError, ConnectionError, ValueError) as error:
            raise UnknownCorpusError(
                f"Hugging Face dataset {name_and_config!r} is not in the local cache ({error}). "
                "Download it once with datasets.load_dataset on a machine with network access, "
                "or save it with Dataset.save_to_disk and pass 'hf:PATH'."
            ) from None
    if isinstance(loaded, datasets.DatasetDict):
        parts = [loaded[key] for key in sorted(loaded)]
    else:
        parts = [loaded]
    documents = []
    for part in parts:
        if "text" not in part.column_names:
            raise ValueError(
                f"Hugging Face dataset {name_and_config!r} has no 'text' column "
                f"(columns: {part.column_names}); rename the text column to 'text'."
            )
        documents.extend(str(text) for text in part["text"])
    return documents
