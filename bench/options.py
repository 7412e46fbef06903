"""Parsers of command-line values: each accepts only what the option can mean and otherwise raises
`argparse.ArgumentTypeError` with one line (the CLI prints it and exits with status 2 before any work).

Numbers must be finite: "nan", "inf" and "1e999" are refused, not passed on to a timer or a schedule.
"""

from __future__ import annotations

import argparse
import math
import os


def _number(text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def most_threads() -> int:
    """The most CPU threads an option may ask for: this machine's CPUs. More never gives a meaningful
    number, and a huge count crashes torch's thread pool (a segmentation fault, not a line)."""
    return os.cpu_count() or 1


def check_threads(threads: int) -> int:
    if threads > most_threads():
        raise argparse.ArgumentTypeError(
            f"expected at most {most_threads()} threads (this machine's CPUs), got {threads}"
        )
    return threads


def cpu_threads(text: str) -> int:
    """A thread count for work done on this machine: a positive integer, at most its CPUs."""
    return check_threads(positive_int(text))


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a confidence level, a share)."""
    value = _number(text, float)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def hw(text: str) -> tuple[int, int]:
    """'512x1024' -> (512, 1024), both positive."""
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 512x1024), got {text!r}")
    return positive_int(parts[0]), positive_int(parts[1])


def positive_floats(text: str) -> tuple[float, ...]:
    """'0.5,1,1.5' -> (0.5, 1.0, 1.5), each positive and finite."""
    values = tuple(positive_float(v) for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}")
    return values
