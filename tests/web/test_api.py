"""The web API over a real index and a tiny random CLIP: every route, filters, and every error path."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from geovec.cli.serve import register
from geovec.query import Searcher, SearchRequest
from geovec.web import create_app


@pytest.fixture(scope="module")
def client(web_index):
    with TestClient(create_app(web_index.path)) as test_client:
        yield test_client


def test_page_and_static_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "/static/vendor/leaflet/leaflet.js" in page.text
    for name in ("app.js", "app.css", "vendor/leaflet/leaflet.js", "vendor/leaflet/leaflet.css",
                 "vendor/leaflet/LICENSE", "vendor/LICENSE-world-atlas"):
        assert client.get(f"/static/{name}").status_code == 200, name
    land = client.get("/static/vendor/land-110m.geojson")
    assert len(land.content) < 300_000 and land.json()["type"] == "FeatureCollection"
    assert "cdn" not in page.text.lower() and "http" not in client.get("/static/app.js").text


def test_info_reports_size_model_and_data_bounds(client, web_index):
    info = client.get("/api/info").json()
    assert info["items"] == len(web_index.ids()) and info["dim"] == 16 and info["model"]["name"] == "clip"
    assert "image" in info["modalities"]
    assert info["exact_kernel"]["kernel"] == "numpy-float32"  # a small index: numpy float32, nothing to measure
    minlon, minlat, maxlon, maxlat = info["bounds"]
    assert minlon == pytest.approx(2.1) and minlat == pytest.approx(41.4) and maxlat == pytest.approx(52.05)
    assert maxlon == pytest.approx(5.0 + 5 * 0.05)  # the east edge of the 5th nl tile


def test_text_search_is_the_shared_searcher_with_thumbnail_urls(client, web_index):
    body = client.post("/api/search", json={"text": "a harbour", "top_k": 5}).json()
    precision = client.get("/api/info").json()["precision"]  # "auto": bfloat16 where the CPU has it natively
    with Searcher(web_index.path, precision=precision) as searcher:
        direct = searcher.search(SearchRequest(text="a harbour", top_k=5))
    assert [r["id"] for r in body["results"]] == [h.id for h in direct.hits]
    assert [r["score"] for r in body["results"]] == pytest.approx([h.score for h in direct.hits], abs=1e-5)
    assert body["elapsed_ms"] >= 0 and "message" not in body
    everything = {r["id"]: r for r in client.post("/api/search", json={"text": "x", "top_k": 50}).json()["results"]}
    assert set(everything) == web_index.ids()
    row = everything["nl/tile-1"]
    assert row["thumbnail_url"] == "/api/thumbnail/nl%2Ftile-1" and len(row["footprint"]) == 4
    assert row["captions"] == [web_index.caption("nl/tile-1")] and row["lat"] and row["lon"]
    assert everything["nl-3"]["thumbnail_url"] is None  # no thumbnail
    assert everything["nl-4"]["thumbnail_url"] is None  # thumbnail outside the index folder


def test_area_and_radius_filters(client, web_index):
    within = client.post("/api/search", json={"text": "port", "top_k": 50, "within": web_index.region_box("es")}).json()
    assert {r["id"] for r in within["results"]} == web_index.ids("es")
    near = client.post("/api/search", json={"text": "port", "near": [52.0, 5.0], "radius_km": 8}).json()
    assert {r["id"] for r in near["results"]} and {r["id"] for r in near["results"]} <= web_index.ids("nl")


def test_place_resolves_names_with_the_gazetteer_and_refuses_unknown_or_ambiguous_ones(client):
    found = client.get("/api/place", params={"name": "den haag"})
    assert found.status_code == 200
    assert found.json() | {"lat": round(found.json()["lat"], 2), "lon": round(found.json()["lon"], 2)} == {
        "name": "The Hague", "region": None, "country": "The Netherlands", "country_code": "NL", "lat": 52.08,
        "lon": 4.3, "population": found.json()["population"], "geonameid": 2747373,
        "label": "The Hague, The Netherlands"}
    unknown = client.get("/api/place", params={"name": "Xanadu"})
    assert (unknown.status_code, unknown.json()) == (400, {"error": "name: no known place named 'Xanadu'"})
    ambiguous = client.get("/api/place", params={"name": "Valencia"})
    assert ambiguous.status_code == 400
    assert ambiguous.json()["error"].startswith("name: 'Valencia' names 4 places: Valencia, 07, Venezuela (1,619,470")
    assert client.get("/api/place").status_code == 422


def test_area_without_data_gives_empty_results_and_a_message(client):
    response = client.post("/api/search", json={"text": "port", "within": [-150, -40, -120, -10]})
    assert response.status_code == 200
    assert response.json()["results"] == [] and "no indexed item lies in that area" in response.json()["message"]


def test_image_search_with_box_text_and_filter(client, web_index):
    image = web_index.query_image.read_bytes()
    whole = client.post("/api/search/image", files={"image": ("q.jpg", image, "image/jpeg")}, data={"top_k": "3"})
    assert whole.status_code == 200 and len(whole.json()["results"]) == 3
    within = ",".join(map(str, web_index.region_box("nl")))
    region = client.post("/api/search/image", files={"image": ("q.jpg", image, "image/jpeg")},
                         data={"box": "10,5,50,40", "text": "boats", "within": within, "top_k": "50"})
    assert {r["id"] for r in region.json()["results"]} == web_index.ids("nl")
    assert region.json()["results"][0]["score"] != whole.json()["results"][0]["score"]


def test_thumbnail_is_served_by_id(client, web_index):
    response = client.get("/api/thumbnail/nl%2Ftile-1")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content == (web_index.path / "thumbs" / "1.jpg").read_bytes()


@pytest.mark.parametrize("url, message", [
    ("/api/thumbnail/no-such-id", "no item with id"),
    ("/api/thumbnail/nl-3", "has no thumbnail"),  # record without one
    ("/api/thumbnail/nl-4", "has no thumbnail"),  # record whose thumbnail points outside the index folder
    ("/api/thumbnail/..%2F" + "outside-secret.jpg", "no item with id"),  # traversal in the id
    ("/api/thumbnail/..%2F..%2F..%2F..%2Fetc%2Fpasswd", "no item with id"),
    ("/api/thumbnail/%2Fetc%2Fpasswd", "no item with id"),
])
def test_thumbnail_refuses_unknown_ids_and_paths_outside_the_index(client, web_index, url, message):
    response = client.get(url)
    assert response.status_code == 404 and message in response.json()["error"]
    assert response.content != web_index.outside_file.read_bytes()


@pytest.mark.parametrize("body, status, message", [
    ({}, 400, "empty query"),
    ({"text": "   "}, 400, "text: empty query text"),
    ({"text": "x", "top_k": 0}, 400, "top_k: must be between 1 and"),
    ({"text": "x", "within": [0, 0, 1, 95]}, 400, "latitude 95 is outside"),
    ({"text": "x", "near": [52, 4]}, 400, "go together"),
    ({"text": "x", "point": [1]}, 422, "point"),
    ({"text": "x", "top_k": "many"}, 422, "top_k"),
    ({"text": "x", "colour": "red"}, 422, "colour"),
])
def test_bad_search_requests_give_a_json_error(client, body, status, message):
    response = client.post("/api/search", json=body)
    assert response.status_code == status and message in response.json()["error"], response.json()


def test_bad_json_body_is_422_with_a_message_that_says_what_is_wrong(client):
    response = client.post("/api/search", content=b"{not json", headers={"content-type": "application/json"})
    message = response.json()["error"]
    assert response.status_code == 422 and message.startswith("body: not valid JSON (Expecting property name")
    assert "at character 1" in message and '{"text": "a harbour"' in message


def test_over_long_query_text_is_refused_and_huge_bodies_are_413(client):
    long_text = client.post("/api/search", json={"text": "harbour " * 12_500})  # 100 kB
    assert long_text.status_code == 400
    assert long_text.json()["error"].startswith("text: query text is 100,000 characters long; at most 10,000")
    over_window = client.post("/api/search", json={"text": "boats " * 100})  # 100 tokens; tiny CLIP reads 77
    assert over_window.status_code == 400 and "model 'clip' reads at most 77" in over_window.json()["error"]
    huge = client.post("/api/search", json={"text": "x" * 2_000_000})  # 2 MB
    assert huge.status_code == 413 and "larger than the 1,048,576-byte limit" in huge.json()["error"]


def test_info_counts_query_cache_hits_and_misses(web_index):
    with TestClient(create_app(web_index.path, query_cache=8)) as fresh:
        for text in ("a harbour", "a harbour", "dunes", "a harbour"):
            assert fresh.post("/api/search", json={"text": text}).status_code == 200
        info = fresh.get("/api/info").json()
    assert info["query_cache"] == {"entries": 2, "capacity": 8, "hits": 2, "misses": 2}
    assert info["batching"]["queries"] == 4 and info["threads"] >= 1
    # "auto" (create_app's default) says what it chose: a model whose passes were never quality-checked runs as trained
    assert info["query_pass"]["query_pass"] == "transformers/float32" and info["precision"] == "float32"
    assert info["query_pass"]["summary"].startswith("query pass: transformers/float32")


@pytest.mark.parametrize("upload, data, message", [
    (b"this is not an image", {}, "cannot read image 'q.jpg': not an image format geovec can decode"),
    (None, {"box": "1,2,3"}, "box: expected 4 comma-separated numbers"),
    (None, {"box": "0,0,500,500"}, "outside the 80x60 image"),
    (None, {"within": "a,b,c,d"}, "within: expected 4"),
])
def test_bad_image_requests_give_400(client, web_index, upload, data, message):
    image = upload if upload is not None else web_index.query_image.read_bytes()
    response = client.post("/api/search/image", files={"image": ("q.jpg", image, "image/jpeg")}, data=data)
    assert response.status_code == 400 and message in response.json()["error"], response.json()
    assert "object at 0x" not in response.json()["error"]  # no Python object in a user's message


def test_image_search_needs_a_file(client):
    response = client.post("/api/search/image", data={"text": "boats"})
    assert response.status_code == 422 and "image" in response.json()["error"]


def test_uploads_over_the_limit_are_413(web_index):
    with TestClient(create_app(web_index.path, max_upload_bytes=1000)) as small:
        image = web_index.query_image.read_bytes()
        assert len(image) > 1000
        just_over = small.post("/api/search/image", files={"image": ("q.jpg", image, "image/jpeg")})
        huge = small.post("/api/search/image", files={"image": ("q.jpg", b"\0" * 200_000, "image/jpeg")})
        for response in (just_over, huge):  # read by the endpoint / refused by Content-Length before parsing
            assert response.status_code == 413 and "larger than the 1,000-byte limit" in response.json()["error"]
        long_body = {"text": "a harbour" + " " * 5000}  # over the upload limit, within the JSON body limit
        assert small.post("/api/search", json=long_body).status_code == 200  # JSON search is unaffected


def test_serve_command_is_registered_with_its_options():
    app = typer.Typer()
    register(app)
    app.command("other")(lambda: None)  # a second command so typer keeps `serve` as a subcommand
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--index", "--host", "--port", "--model-path", "--max-upload-mb"):
        assert option in result.output


def test_serve_refuses_a_missing_index_with_a_geovec_error(tmp_path):
    app = typer.Typer()
    register(app)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "no geovec index" in str(result.exception)


def test_json_errors_are_json(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and json.loads(response.content) == {"error": "Not Found"}
    wrong_method = client.get("/api/search", params={"text": "boats"})
    assert wrong_method.status_code == 405 and "POST a JSON search" in wrong_method.json()["error"]


def test_serve_refuses_a_host_or_port_it_cannot_listen_on_in_one_line(web_index):
    """Before the model loads: a typo'd address or a taken port is a one-line error and exit code 2."""
    def serve(*options: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "geovec.cli.main", "serve", "--index", str(web_index.path),
                               *options], capture_output=True, text=True, timeout=120, check=False)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        in_use = serve("--port", port)
    bad_host = serve("--host", "999.1.1.1", "--port", port)
    for result, start in [(bad_host, "error: host: '999.1.1.1' is not an address or a name this machine can resolve"),
                          (in_use, f"error: port: {port} on 127.0.0.1 is already in use")]:
        assert result.returncode == 2 and result.stderr.startswith(start), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert "choose another with --port" in in_use.stderr
