"""Exceptions that carry a message a user can act on.

Every error geovec raises on bad input is a ``GeovecError``; the CLI prints its message as one line and exits
non-zero, so messages must name the offending input and say what is wrong with it.
"""

from __future__ import annotations


class GeovecError(Exception):
    """Base class for errors caused by the user's input, data or configuration (not by a bug)."""


class GeovecInputError(GeovecError, ValueError):
    """An input (segment, query, box, coordinate, image) is invalid.

    ``field`` names the offending field (e.g. ``segments[2].bbox_xyxy``) so the message can point at it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")

    def __reduce__(self):  # pickled whole (it crosses from a search worker process), not as its one message
        return type(self), (self.field, self.problem)


class UnsupportedInputError(GeovecError):
    """An embedder was given a segment kind it cannot embed (never silently dropped)."""


class GeovecIndexError(GeovecError):
    """Problems opening, writing or querying a vector index."""
