"""The types of the command line's values: each turns what was typed into a value, or into
a usage error that quotes it as typed."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any


def choice(values: Sequence[str]) -> Callable[[str], str]:
    """An argument type matching ``values`` in any case (``--priority high`` is ``HIGH``).
    Anything else passes through unchanged, for the parser's ``invalid choice`` error to
    quote it as typed."""
    folded = {value.casefold(): value for value in values}

    def convert(text: str) -> str:
        return folded.get(text.casefold(), text)

    return convert


def one_of(values: Sequence[str]) -> dict[str, Any]:
    """``add_argument`` keywords for an option taking one of ``values``, in any case:
    ``parser.add_argument("--priority", **one_of(PRIORITIES))``."""
    return {"type": choice(values), "choices": values}


def iterations(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be 1 to 1000, not {value}")
    return value


def name_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"give NAME=VALUE, not {text!r}")
    return name, value


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def finite_float(text: str) -> float:
    """A float option's value; ``nan`` and ``inf`` are a usage error (JSON cannot carry
    them, and no option means them)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value
