"""Exceptions that callers may want to catch by type."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return a " Did you mean 'x'?" hint for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {matches[0]!r}?" if matches else ""


class UnknownCorpusError(ValueError):
    """A corpus spec that names no known corpus, file or folder."""
