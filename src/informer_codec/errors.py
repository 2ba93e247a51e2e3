"""The one error type users see, with the exit code the CLI gives it.

Exit codes (documented in ``informer --help`` and the README):
0 success, 1 bad input or a failed decode, 2 usage error.
"""

from __future__ import annotations


class InformerError(Exception):
    """A problem with the user's input or file; its message is one line for the user."""

    exit_code = 1


class InputError(InformerError):
    """An input image that cannot be read or is not supported."""


class CorruptStreamError(InformerError):
    """A compressed file that is damaged, truncated or internally inconsistent."""


class UnsupportedError(InformerError):
    """A well-formed file this version cannot decode (newer format, unknown model)."""


class LimitError(InformerError):
    """An image larger than the configured pixel or dimension limit."""


class WeightsError(InformerError):
    """Missing weights, or weights other than those a file was encoded with."""
