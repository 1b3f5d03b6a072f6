"""Checks on every generated description: a text that fails one is re-asked, never put into the corpus.

Each check is a named predicate on the text in its context (prompt, whether the model stopped by itself, the texts
already accepted for the same image); ``failure_reason`` returns the first failing check's name. The names are the
reasons written to the failure report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    text: str
    prompt: str
    finished: bool  # the model emitted EOS before max_new_tokens
    siblings: tuple[str, ...] = ()  # accepted descriptions of the same image (other variants)


def normalise(text: str) -> str:
    """Lower case, words only: the form in which two texts count as the same."""
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


_GARBAGE = re.compile(r"[\ufffd\x00-\x08\x0b-\x1f\x7f]")  # replacement / control characters: undecodable bytes
_SENTENCE_END = (".", "!", "?", '"', "'", ")", "\u201d")
_REFUSAL = re.compile(
    r"\b(i\s*(?:'m|am)\s+(?:sorry|unable|not able)|i\s+apologi[sz]e|i\s+(?:cannot|can't|can\s+not|won't)\b"
    r"|as an ai\b|unable to (?:see|view|process|analy[sz]e|describe|determine))")


def _echo(candidate: Candidate) -> bool:
    """The prompt repeated back (whole, or a piece of it of three words or more) instead of an answer."""
    text, prompt = normalise(candidate.text), normalise(candidate.prompt)
    return text.startswith(prompt) or (len(text.split()) >= 3 and text in prompt)


CHECKS: dict[str, Callable[[Candidate], bool]] = {
    "empty": lambda c: not c.text.strip(),
    "malformed": lambda c: not re.search(r"[^\W\d_]", c.text) or bool(_GARBAGE.search(c.text)) or _echo(c),
    "refused": lambda c: bool(_REFUSAL.search(c.text[:200].lower().replace("\u2019", "'"))),
    "truncated": lambda c: not c.finished and not c.text.rstrip().endswith(_SENTENCE_END),
    "duplicate": lambda c: normalise(c.text) in {normalise(s) for s in c.siblings},
}
ALL_CHECKS: tuple[str, ...] = tuple(CHECKS)


def failure_reason(candidate: Candidate, checks: Sequence[str] = ALL_CHECKS) -> str | None:
    """The name of the first check in ``checks`` that ``candidate`` fails, or ``None`` when it passes them all."""
    return next((name for name in checks if CHECKS[name](candidate)), None)
