"""The exceptions talkingface raises on purpose: each one is a message for the user.

The CLI prints a :class:`TalkingFaceError` as one line and exits non-zero; anything else is a bug
and gets a traceback with ``--debug``.
"""

from __future__ import annotations


class TalkingFaceError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""

    exit_code = 2


class InputError(TalkingFaceError, ValueError):
    """A bad input file or array: missing, unreadable, empty, silent, no face found."""


class ConfigError(TalkingFaceError, ValueError):
    """A bad configuration: unknown stage, unknown field, wrongly typed value."""


class CompatibilityError(TalkingFaceError, ValueError):
    """Two stages that cannot be connected (refused when the graph is built, before any load)."""


class ContractError(TalkingFaceError, ValueError):
    """Data that breaks a stage-boundary contract (wrong shape, dtype, rate or names)."""


class PluginError(TalkingFaceError, RuntimeError):
    """A plugin that cannot be registered (duplicate name, bad class, misspelled hook)."""
