"""Every quality check on hand-written texts: each failure kind is caught, and good descriptions pass."""

import pytest

from geovec.caption import ALL_CHECKS, Candidate, failure_reason, get_prompt_set
from geovec.errors import GeovecInputError

PROMPT = "Describe this remote sensing image in one sentence."
GOOD = "Many planes are parked near the terminal of an airport."


@pytest.mark.parametrize("text, finished, siblings, reason", [
    (GOOD, True, (), None),
    ("A river runs through green farmland", True, (), None),  # no full stop, but the model ended it itself
    ("", True, (), "empty"),
    ("   \n", True, (), "empty"),
    ("12 34 ... !!", True, (), "malformed"),
    ("\ufffd\ufffdan\u02aeC\ufffdk", True, (), "malformed"),  # undecodable bytes of a random model
    ("Describe this remote sensing image in one sentence.", True, (), "malformed"),  # the prompt echoed
    ("describe this remote sensing image", True, (), "malformed"),  # a piece of it
    ("Describe this remote sensing image in one sentence. An airport.", True, (), "malformed"),
    (GOOD, True, ("A beach.", "many planes are parked near the terminal of an airport"), "duplicate"),
    ("Many planes are parked near the terminal of an", False, (), "truncated"),
    ("Many planes are parked near the terminal.", False, (), None),  # hit the limit exactly at a sentence end
    ("I'm sorry, I cannot describe this image.", True, (), "refused"),
    ("I am unable to see the image you sent.", True, (), "refused"),
    ("As an AI language model, I cannot view images.", True, (), "refused"),
    ("I can\u2019t help with that.", True, (), "refused"),
])
def test_checks(text, finished, siblings, reason):
    assert failure_reason(Candidate(text, PROMPT, finished, siblings)) == reason


def test_only_the_checks_asked_for_run():
    truncated = Candidate("Many planes are parked near", PROMPT, finished=False)
    assert failure_reason(truncated) == "truncated"
    assert failure_reason(truncated, [c for c in ALL_CHECKS if c != "truncated"]) is None


def test_prompt_sets_are_versioned_data():
    rsrt = get_prompt_set("rsrt-v1")
    assert [p.kind for p in rsrt.first(None)] == ["summary", "objects", "relations", "directions", "detailed"]
    assert [p.kind for p in rsrt.first(2)] == ["summary", "objects"]
    with pytest.raises(GeovecInputError, match="variants: expected 1 to 5"):
        rsrt.first(9)
    with pytest.raises(GeovecInputError, match="unknown prompt set 'rsrt-v0'"):
        get_prompt_set("rsrt-v0")
