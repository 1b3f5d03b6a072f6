"""The ``gazetteer-places`` training source: training-split cities only, both directions, refused if it leaks."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from geovec.datasets.gazetteer import HELD_OUT_COUNTRY, read_gazetteer
from geovec.inputs import Interleaved, PointSegment, TextSegment
from geovec.instructions import PLACE_TO_POINT, POINT_TO_PLACE
from geovec.train.data import SOURCES, LeakError, Source, build_training_data
from geovec.train.examples import read_examples

FIXTURES = Path(__file__).resolve().parents[1] / "data"


def test_examples_use_training_cities_only_in_both_directions(tmp_path):
    manifest = build_training_data(["gazetteer-places"], tmp_path, FIXTURES, hard_negatives=2, show_progress=False)
    split = read_gazetteer(FIXTURES / "geonames")
    examples = list(read_examples(tmp_path / "train.jsonl"))
    assert manifest["counts"] == {"gazetteer-places": 2 * len(split.train)} == {"gazetteer-places": 424}
    used = {int(i.removeprefix("GeoNames:")) for e in examples for i in e.source_ids}
    assert used == {c.geonameid for c in split.train}  # every training city, negatives included; nothing else
    assert not used & {c.geonameid for c in split.held_out + split.held_out_country}
    texts = {s.text for e in examples for side in (e.query, e.positive, *e.negatives) for s in side.segments
             if isinstance(s, TextSegment)}
    assert not any(t.endswith(", Poland") for t in texts) and HELD_OUT_COUNTRY == "PL"
    directions = Counter((type(e.query.segments[0]), type(e.positive.segments[0]), e.query.instruction,
                          e.positive.instruction) for e in examples)
    assert directions == {(TextSegment, PointSegment, PLACE_TO_POINT.query, PLACE_TO_POINT.candidate): 212,
                          (PointSegment, TextSegment, POINT_TO_PLACE.query, POINT_TO_PLACE.candidate): 212}
    assert all(len(e.negatives) == 2 for e in examples)


def test_validation_cities_are_kept_out_of_every_example_and_ranked_as_the_bench_asks(tmp_path):
    build_training_data(["gazetteer-places"], tmp_path, FIXTURES, hard_negatives=2, validation_images=40,
                        show_progress=False)
    split = read_gazetteer(FIXTURES / "geonames")
    records = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    held = {int(i.removeprefix("GeoNames:")) for r in records for i in r["items"]}
    used = {int(i.removeprefix("GeoNames:")) for e in read_examples(tmp_path / "train.jsonl") for i in e.source_ids}
    assert len(held) == 40 and not used & held and used | held == {c.geonameid for c in split.train}
    tasks = Counter(r["task"] for r in records)
    assert tasks["gazetteer-place-to-point"] == 40 and 0 < tasks["gazetteer-place-to-point-within-country"] <= 40
    cities = {c.geonameid: c for c in split.train}
    for r in records:
        city, query = cities[int(r["id"])], Interleaved.from_dict(r["query"])
        assert query.instruction == PLACE_TO_POINT.query and query.segments[0].text == split.text(city)
        points = [Interleaved.from_dict(c).segments[0] for c in r["candidates"]]
        assert {(p.lat, p.lon) for p in (points[k] for k in r["positives"])} == {(city.lat, city.lon)}
        assert r["items"] == [f"GeoNames:{r['id']}"]
        at = {(c.lat, c.lon): c.country_code for c in cities.values()}
        countries = {at[(p.lat, p.lon)] for k, p in enumerate(points) if k not in r["positives"]}
        assert countries == {city.country_code} if r["task"].endswith("within-country") else \
            city.country_code not in countries


def test_the_leak_check_refuses_held_out_cities(tmp_path, monkeypatch):
    def leaky(job):  # a careless source: "trains" on a held-out city and one of the held-out country
        split = read_gazetteer(job.path)
        return [job.example("gazetteer-place-to-point", *_pair(split, city), [], [str(city.geonameid)])
                for city in (split.held_out[0], split.held_out_country[0])]

    monkeypatch.setitem(SOURCES, "leaky", Source("leaky", "GeoNames", ("gazetteer-place-to-point",), "geonames",
                                                 leaky))
    with pytest.raises(LeakError, match=r"uses 2 RSMEB test item\(s\): GeoNames:2521978 \(test item of "
                                        r"gazetteer-place-to-point, .*-within-country; used by leaky\); "
                                        r"GeoNames:756135 \(test item of gazetteer-place-to-point-held-out-country, "
                                        r"gazetteer-point-to-place-held-out-country; used by leaky\)"):
        build_training_data(["leaky"], tmp_path, FIXTURES, show_progress=False)
    assert not (tmp_path / "train.jsonl").exists()


def _pair(split, city) -> tuple[Interleaved, Interleaved]:
    return (Interleaved((TextSegment(split.text(city)),)), Interleaved((PointSegment(city.lat, city.lon),)))
