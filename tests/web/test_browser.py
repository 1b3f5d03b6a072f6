"""The map page in a real headless Chromium (Playwright) against a real uvicorn server over a tiny-CLIP index."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser test drives it",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from geovec.web import create_app  # noqa: E402


@pytest.fixture(scope="module")
def server_url(web_index, serve):
    with serve(create_app(web_index.path)) as url:
        yield url


@pytest.fixture(scope="module")
def page(server_url):
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server_url)
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=6)
    page.mouse.up()


def map_point(page, lat: float, lon: float) -> tuple[float, float]:
    """Page pixel of a lat/lon on the Leaflet map (to aim real mouse drags)."""
    box = page.locator("#map").bounding_box()
    point = page.evaluate(f"(() => map.latLngToContainerPoint([{lat}, {lon}]))()")
    return box["x"] + point["x"], box["y"] + point["y"]


def gallery_ids(page) -> set[str]:
    return set(page.locator("#gallery .card").evaluate_all("cards => cards.map(c => c.dataset.id)"))


def test_search_area_filter_upload_and_region_search(page, web_index, server_url):
    expect = playwright_api.expect
    every = web_index.ids()
    expect(page.locator("#info")).to_contain_text(f"{len(every)} items")

    # a text query: N cards in the gallery and N footprints (with thumbnails inside) on the map
    page.fill("#top-k", str(len(every)))
    page.fill("#query-text", "boats in a harbour")
    page.press("#query-text", "Enter")
    expect(page.locator("#gallery .card")).to_have_count(len(every))
    expect(page.locator("#map path.footprint")).to_have_count(len(every))
    expect(page.locator("#map img.thumb-overlay")).to_have_count(len(every) - 2)  # nl-3: none, nl-4: outside
    assert gallery_ids(page) == every

    # hovering a card highlights its footprint
    page.locator('#gallery .card[data-id="es-1"]').hover()
    expect(page.locator("#gallery .card.active")).to_have_count(1)

    # an area filter drawn over the Spanish tiles keeps only them
    minlon, minlat, maxlon, maxlat = web_index.region_box("es", margin=0.3)
    page.click("#area-toggle")
    drag(page, map_point(page, maxlat, minlon), map_point(page, minlat, maxlon))
    expect(page.locator("#gallery .card")).to_have_count(len(web_index.ids("es")))
    expect(page.locator("#map path.footprint")).to_have_count(len(web_index.ids("es")))
    assert gallery_ids(page) == web_index.ids("es")
    expect(page.locator("#area-label")).to_contain_text("within")

    # clearing it brings everything back; an uploaded image is a query too
    page.click("#area-clear")
    expect(page.locator("#gallery .card")).to_have_count(len(every))
    page.set_input_files("#image-file", str(web_index.query_image))
    page.click("#image-search")
    expect(page.locator("#status")).to_contain_text("image query.jpg")
    expect(page.locator("#gallery .card")).to_have_count(len(every))

    # dragging a box on a result's image searches by that region, in the image's pixel coordinates
    image = page.locator("#gallery .card .thumb img").first
    expect(image).to_be_visible()
    thumbnail = httpx.get(server_url + image.get_attribute("src")).content
    box = image.bounding_box()
    with page.expect_response("**/api/search/image") as response_info:
        drag(page, (box["x"] + 0.25 * box["width"], box["y"] + 0.25 * box["height"]),
             (box["x"] + 0.75 * box["width"], box["y"] + 0.75 * box["height"]))
    response = response_info.value
    assert response.status == 200
    expect(page.locator("#status")).to_contain_text("region [16, 12, 48, 36]")  # the middle of a 64x48 thumbnail
    same = [httpx.post(f"{server_url}/api/search/image", files={"image": ("t.jpg", thumbnail, "image/jpeg")},
                       data={"top_k": str(len(every)), **box}).json()["results"]
            for box in ({"box": "16,12,48,36"}, {})]
    assert response.json()["results"] == same[0] != same[1]  # the server searched by exactly that region

    # the API's errors are shown on the page
    page.fill("#top-k", "5000")
    page.press("#query-text", "Enter")
    expect(page.locator("#error")).to_contain_text("top_k: must be between 1 and 1000")


def test_place_box_filters_near_the_named_place_and_shows_unknown_names(page, web_index):
    expect = playwright_api.expect
    every = web_index.ids()
    page.fill("#top-k", str(len(every)))
    page.fill("#query-text", "boats in a harbour")
    page.press("#query-text", "Enter")
    expect(page.locator("#gallery .card")).to_have_count(len(every))

    # "Rotterdam" resolves on the server; 100 km around it holds the Dutch tiles, not the ones at Barcelona
    page.fill("#place-radius", "100")
    page.fill("#place-name", "Rotterdam")
    page.press("#place-name", "Enter")
    expect(page.locator("#place-label")).to_have_text("near Rotterdam, The Netherlands (51.92, 4.48)")
    expect(page.locator("#gallery .card")).to_have_count(len(web_index.ids("nl")))
    assert gallery_ids(page) == web_index.ids("nl")
    assert page.locator("#map path.near").count() == 1

    # an unknown name is the server's message on the page; the filter in force stays as it was
    page.fill("#place-name", "Xanadu")
    page.press("#place-name", "Enter")
    # (the first miss reads the 5,000+ cities too: seconds on a loaded machine)
    expect(page.locator("#error")).to_have_text("name: no known place named 'Xanadu'", timeout=30_000)
    expect(page.locator("#place-label")).to_contain_text("near Rotterdam")

    page.click("#place-clear")
    expect(page.locator("#gallery .card")).to_have_count(len(every))
    expect(page.locator("#map path.near")).to_have_count(0)
