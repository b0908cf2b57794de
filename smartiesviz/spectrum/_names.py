"""Name normalisation and close-match suggestions shared by the registry lookups."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_BAND_NUMBER = re.compile(r"^b0*(\d+)(a?)$")


def normalize_name(name: str) -> str:
    """Canonical lookup key: case-insensitive, ``-``/space → ``_``, ``B08``/``B8`` → ``b8``,
    ``B08A``/``B8A`` → ``b8a``."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    match = _BAND_NUMBER.match(key)
    if match:
        key = f"b{int(match.group(1))}{match.group(2)}"
    return key


def suggest(key: str, choices: Iterable[str]) -> str:
    """A sentence naming the closest choices (compared by normalised key), or the full list."""
    choices = list(choices)
    by_key = {normalize_name(c): c for c in choices}
    close = difflib.get_close_matches(normalize_name(key), list(by_key), n=3, cutoff=0.5)
    if close:
        return " Did you mean " + " or ".join(repr(by_key[c]) for c in close) + "?"
    return " Known: " + ", ".join(choices) + "."
