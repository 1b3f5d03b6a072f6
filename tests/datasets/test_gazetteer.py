"""The gazetteer split and tasks: held-out cities and country by rule, candidates from the right countries, and
scores an oracle and a blind embedder of the same inputs get (fixture: tests/data/geonames, make_gazetteer.py)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from fixture_data import FIXTURES

from geovec.bench import get_task
from geovec.bench.evaluate import evaluate_data
from geovec.datasets import DatasetError
from geovec.datasets.gazetteer import HELD_OUT_COUNTRY, read_gazetteer
from geovec.inputs import PointSegment, TextSegment
from geovec.models.base import BaseEmbedder
from geovec.models.cache import EmbeddingCache
from geovec.places import package_data_dir

FOLDER = FIXTURES / "geonames"
TASKS = [f"gazetteer-{d}{s}" for s in ("", "-within-country", "-held-out-country")
         for d in ("place-to-point", "point-to-place")]


def ids(cities) -> set[int]:
    return {c.geonameid for c in cities}


def test_held_out_cities_and_country_are_disjoint_from_training():
    split = read_gazetteer(FOLDER)
    train, held, country = ids(split.train), ids(split.held_out), ids(split.held_out_country)
    assert not train & held and not train & country and not held & country
    assert len(train | held | country) == 252 and len(country) == 12 and len(held) == 28
    assert {c.country_code for c in split.held_out_country} == {HELD_OUT_COUNTRY}
    assert HELD_OUT_COUNTRY not in {c.country_code for c in split.train + split.held_out}


def test_a_citys_side_of_the_split_depends_on_its_id_alone(tmp_path):
    """Dropping half the cities moves none of the others across the split (the draw is keyed by geonameid)."""
    whole = read_gazetteer(FOLDER)
    cities = json.loads((FOLDER / "cities15000.json").read_text(encoding="utf-8"))
    shutil.copytree(FOLDER, tmp_path / "geonames")
    kept = dict(list(cities.items())[::2])
    (tmp_path / "geonames" / "cities15000.json").write_text(json.dumps(kept), encoding="utf-8")
    half = read_gazetteer(tmp_path / "geonames")
    assert ids(half.held_out) == ids(whole.held_out) & {int(k) for k in kept}


def test_the_real_split_holds_out_a_tenth_and_poland():
    split = read_gazetteer(package_data_dir())
    total = len(split.train) + len(split.held_out)
    assert 0.09 < len(split.held_out) / total < 0.11 and len(split.held_out_country) == 363


def _country_of(split, item) -> str:
    segment = item.segments[0]
    for c in split.train + split.held_out + split.held_out_country:
        if isinstance(segment, PointSegment) and (c.lat, c.lon) == (segment.lat, segment.lon) or \
                isinstance(segment, TextSegment) and split.text(c) == segment.text:
            return c.country_code
    raise AssertionError(item)


@pytest.mark.parametrize("task", TASKS)
def test_candidates_come_from_the_countries_the_setting_says(task):
    split = read_gazetteer(FOLDER)
    queries = get_task(task).load(FIXTURES)
    held = ids(split.held_out_country if "held-out-country" in task else split.held_out)
    assert {int(q.id) for q in queries} <= held and len(queries) >= 12
    for q in queries:
        home = _country_of(split, q.query)
        others = [_country_of(split, c) for k, c in enumerate(q.candidates) if k not in q.positives]
        other_countries = not task.endswith("country")  # the main setting; the variants stay within one
        assert others and all((o != home) == other_countries for o in others), (task, q.id)


class Globe(BaseEmbedder):
    """Where a point or a place text is, as a unit vector on the sphere: the answer every gazetteer task asks for
    (``blind``: every input at the same place, so scores are chance)."""

    name = "globe"
    modalities = frozenset({"text", "point"})
    dim = 3

    def __init__(self, blind: bool = False) -> None:
        split = read_gazetteer(FOLDER)
        self.where = {split.text(c): (c.lat, c.lon) for c in split.train + split.held_out + split.held_out_country}
        self.blind = blind

    def embed_batch(self, items):
        out = []
        for item in items:
            s = item.segments[0]
            lat, lon = (0.0, 0.0) if self.blind else (s.lat, s.lon) if isinstance(s, PointSegment) else \
                self.where[s.text]
            lat, lon = math.radians(lat), math.radians(lon)
            out.append([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])
        return np.asarray(out, np.float32)


@pytest.mark.parametrize("task", TASKS)
def test_tasks_score_an_oracle_perfectly_and_a_blind_model_at_chance(task, tmp_path):
    meta, data = get_task(task).metadata, get_task(task).load(FIXTURES)
    scores = []
    for model, file_name in ((Globe(), "right.sqlite"), (Globe(blind=True), "blind.sqlite")):
        cache = EmbeddingCache(tmp_path / file_name)
        scores.append(evaluate_data(meta, data, model, cache).scores["main_score"])
        cache.close()
    chance = 100 * np.mean([len(q.positives) / len(q.candidates) for q in data])
    assert scores[0] == 100.0 and scores[1] <= max(2 * chance, 35), (task, scores, chance)


def test_a_folder_without_the_held_out_country_is_refused(tmp_path):
    shutil.copytree(FOLDER, tmp_path / "geonames")
    cities = json.loads((FOLDER / "cities15000.json").read_text(encoding="utf-8"))
    (tmp_path / "geonames" / "cities15000.json").write_text(json.dumps(
        {k: v for k, v in cities.items() if v["countrycode"] != "PL"}), encoding="utf-8")
    with pytest.raises(DatasetError, match="task gazetteer-point-to-place: .*cities15000.json: no city of the "
                                           "held-out country PL"):
        get_task("gazetteer-point-to-place").load(tmp_path)


def test_a_data_root_without_geonames_runs_the_tasks_on_the_packaged_gazetteer(tmp_path):
    """The gazetteer ships with geovec[places]: no user copies it under GEOVEC_DATA for the tasks to run."""
    task = get_task("gazetteer-place-to-point-held-out-country")
    assert task.data_present(tmp_path)
    data = task.load(tmp_path)
    split = read_gazetteer(package_data_dir())
    assert len(data) == 363 and {_country_of(split, q.query) for q in data} == {HELD_OUT_COUNTRY}
