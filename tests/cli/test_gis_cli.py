"""``geovec search --format geojson`` and ``geovec index export|import`` as a user runs them: real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from gis_index import HARBOUR, build_gis_index

pq = pytest.importorskip("pyarrow.parquet")


def geovec(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEOVEC_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "geovec.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.strip().count("\n") == 0, result.stderr


@pytest.fixture(scope="module")
def gis_home(tmp_path_factory, tiny_clip_checkpoint):
    home = tmp_path_factory.mktemp("gis-cli")
    return home, build_gis_index(home, tiny_clip_checkpoint)


@pytest.mark.slow
def test_search_prints_a_geojson_feature_collection_and_json_is_unchanged(gis_home):
    home, index = gis_home
    query = ("search", "--index", str(index), "--text", HARBOUR, "--top-k", "5")
    result = geovec(*query, "--format", "geojson", home=home)
    assert result.returncode == 0, result.stderr
    collection = json.loads(result.stdout)
    assert collection["type"] == "FeatureCollection" and collection["query"]["text"] == HARBOUR
    first = collection["features"][0]
    assert first["id"] == "harbour-point" and first["properties"]["rank"] == 1
    assert first["geometry"] == {"type": "Point", "coordinates": [4.14, 51.95]}  # lon, lat
    as_json, as_format = geovec(*query, "--json", home=home), geovec(*query, "--format", "json", home=home)
    assert as_json.returncode == as_format.returncode == 0 and as_json.stdout == as_format.stdout
    assert [r["id"] for r in json.loads(as_json.stdout)["results"]] == [f["id"] for f in collection["features"]]


def test_unknown_or_contradictory_formats_are_one_line_errors(gis_home):
    home, index = gis_home
    query = ("search", "--index", str(index), "--text", "x")
    one_line_error(geovec(*query, "--format", "kml", home=home),
                   "error: --format: expected one of table, json, geojson, got 'kml'")
    one_line_error(geovec(*query, "--json", "--format", "geojson", home=home), "error: --json: means --format json")


@pytest.mark.slow
def test_export_and_import_rebuild_an_index_that_answers_the_same(gis_home, tmp_path):
    home, index = gis_home
    exported = geovec("index", "export", str(index), str(tmp_path / "idx.parquet"), home=home)
    assert exported.returncode == 0 and "wrote 19 items (16-d vectors)" in exported.stderr, exported.stderr
    imported = geovec("index", "import", str(tmp_path / "idx.parquet"), "--index", str(tmp_path / "copy"), "--ann",
                      home=home)
    assert imported.returncode == 0 and "imported 19 items (16-d, model clip)" in imported.stderr, imported.stderr
    assert (tmp_path / "copy" / "ann.faiss").is_file()
    answers = [geovec("search", "--index", str(where), "--text", HARBOUR, "--exact", "--json", home=home)
               for where in (index, tmp_path / "copy")]
    assert answers[0].returncode == answers[1].returncode == 0
    assert json.loads(answers[0].stdout) == json.loads(answers[1].stdout)


def test_export_and_import_errors_are_one_line(gis_home, tmp_path):
    home, index = gis_home
    one_line_error(geovec("index", "export", str(tmp_path / "nowhere"), str(tmp_path / "x.parquet"), home=home),
                   "no geovec index at")
    assert geovec("index", "export", str(index), str(tmp_path / "idx.parquet"), home=home).returncode == 0
    table = pq.read_table(tmp_path / "idx.parquet")
    pq.write_table(table.drop_columns(["embedding"]), tmp_path / "no-vectors.parquet")
    one_line_error(geovec("index", "import", str(tmp_path / "no-vectors.parquet"), "--index", str(tmp_path / "a"),
                          home=home), "no 'embedding' column")
    meta = json.loads(table.schema.metadata[b"geovec"])
    meta["model"] = {"name": "minilm"}  # 384-d vectors by its registry entry, but the file holds 16-d ones
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, b"geovec": json.dumps(meta)}),
                   tmp_path / "wrong-model.parquet")
    one_line_error(geovec("index", "import", str(tmp_path / "wrong-model.parquet"), "--index", str(tmp_path / "b"),
                          home=home), "holds 16-d vectors, but model 'minilm' makes 384-d ones")
    one_line_error(geovec("index", "import", str(tmp_path / "idx.parquet"), "--index", str(index), home=home),
                   "an index is already there; import builds a new one")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
