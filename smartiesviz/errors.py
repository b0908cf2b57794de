"""Errors that mean "the user asked for something impossible", as opposed to a bug.

``smartiesviz.cli.main`` prints these as one ``error: <message>`` line and exits with status 2;
``--debug`` shows the traceback. Raise :class:`UserError` (or a plain ``ValueError`` /
``FileNotFoundError``) with a message that names the file, key or value at fault and, where one
exists, the fix.
"""

from __future__ import annotations


class UserError(ValueError):
    """A user mistake: a bad file, key or value. The message names it (and the fix if known)."""
