"""Text that is not valid Unicode is refused where it enters, naming the field (never a crash downstream)."""

import pytest

from geovec.errors import GeovecInputError
from geovec.inputs import Interleaved, TextSegment, check_utf8, segment_from_dict


def test_surrogates_from_bad_bytes_or_json_are_refused_naming_the_field():
    assert check_utf8("text", "café ✓") == "café ✓"
    with pytest.raises(GeovecInputError, match=r"^text: not valid UTF-8 \(byte 0xe9 at character 3\)"):
        TextSegment(b"caf\xe9".decode("utf-8", "surrogateescape"))
    with pytest.raises(GeovecInputError, match=r"^segments\[0\].text: not valid UTF-8 \(lone surrogate U\+D800"):
        segment_from_dict({"type": "text", "text": "a\ud800b"}, "segments[0]")
    with pytest.raises(GeovecInputError, match=r"^instruction: not valid UTF-8 \(byte 0xff at character 0\)"):
        Interleaved((TextSegment("a port"),), instruction="\udcff retrieve")
