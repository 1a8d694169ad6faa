"""The two errors a user sees without a traceback: the CLI prints their message and exits 2."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration file or override is wrong; the message names the file and key."""


class InputError(ValueError):
    """Bad input: a data file, an annotation, a marks file or a request body. The message names the
    file, row or key and says what is wrong."""
