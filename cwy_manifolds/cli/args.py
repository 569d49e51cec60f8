"""Argument types, the help formatter and the parser class shared by the sub-commands."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = [
    "DefaultsFormatter",
    "Parser",
    "positive_float",
    "positive_int",
    "seed_int",
]

#: Seeds are non-negative integers below this (torch and NumPy generators take 64 bits).
SEED_LIMIT = 2**63


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        """Exit with code 2 and ``message`` on one line."""
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` for options with a default other than None or False."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default, text = action.default, action.help or ""
        if default is None or default is False or default is argparse.SUPPRESS:
            return text
        if isinstance(default, list | tuple):
            return f"{text} (default: {' '.join(map(str, default))})"
        return super()._get_help_string(action) or ""


def positive_int(text: str) -> int:
    """Parse a positive integer (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value}")
    return value


def seed_int(text: str) -> int:
    """Parse a seed: an integer with ``0 <= seed < 2**63`` (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer below 2**63; got {value}")
    return value


def positive_float(text: str) -> float:
    """Parse a positive finite number (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text}")
    return value
