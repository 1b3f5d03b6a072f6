"""The ``geovec serve`` web app: a JSON search API over one index plus a map page served from the package.

Search goes through ``geovec.query.Searcher`` (the same code as the CLI and the Python API), created once per app so
the model loads once, behind a ``QueryBatcher``: concurrent requests are embedded and ranked together on the
batcher's worker thread (and worker processes), never on the event loop (``POST /api/search``, a FastAPI route that
reads and checks its own body in ``JsonSearch`` and skips FastAPI's dependency layer, awaits its result; the image
upload endpoint is a plain ``def`` that FastAPI runs in its threadpool). Both take the CLI's ``instruction`` and
``exact``, and both are documented in the OpenAPI schema (``/openapi.json``, ``/docs``).
Repeated queries come from a query-embedding cache.
Every ``GeovecError`` becomes ``{"error": message}`` with HTTP 400, a body that does not match the schema (or is not
UTF-8, nests too deep, holds a number too long to read) 422, a body over the size limit 413, a JSON search or upload
whose body does not arrive in time 408.
Thumbnails are looked up by record id in the index (ids are never used as paths) and must resolve inside the index
folder, so neither a crafted id nor a record pointing elsewhere can read other files.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any, Optional, Sequence
from urllib.parse import quote

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geovec.errors import GeovecError, GeovecInputError
from geovec.index import Record
from geovec.models.base import Embedder
from geovec.query import (DEFAULT_REPLY_TIMEOUT_S, MAX_TOP_K, QueryBatcher, Searcher, SearchRequest, SearchResult,
                          SearchWorkers, parse_numbers)
from geovec.threads import available_memory, current_threads, processes_that_fit, resident_memory

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # a JSON search is a few hundred bytes; this leaves room for long texts
DEFAULT_QUERY_CACHE = 1024  # query vectors kept (1.5 MB at 384-d)
DEFAULT_BODY_TIMEOUT_S = 10.0  # a JSON search arrives in one packet; a client this slow is stalled or hostile
JSON_EXAMPLE = '{"text": "a harbour", "top_k": 10}'
_MULTIPART_SLACK = 64 * 1024  # form fields and boundaries around the image in an upload request
EMPTY_AREA_MESSAGE = "no indexed item lies in that area: widen or move the area filter"
SEARCH_PATH, IMAGE_PATH = "/api/search", "/api/search/image"
COMPONENT_REF = "#/components/schemas/{model}"  # where OpenAPI keeps the schemas an operation refers to


class SearchBody(BaseModel):
    """``POST /api/search``: the JSON form of ``SearchRequest`` (no image: uploads use ``/api/search/image``)."""

    model_config = ConfigDict(extra="forbid")
    text: Optional[str] = None
    point: Optional[tuple[float, float]] = Field(None, description="(lat, lon) as part of the query")
    within: Optional[tuple[float, float, float, float]] = Field(None, description="minlon, minlat, maxlon, maxlat")
    near: Optional[tuple[float, float]] = Field(None, description="(lat, lon) filter centre")
    radius_km: Optional[float] = None
    top_k: StrictInt = 10  # strict: JSON's true or 2.5 is a mistake, not 1 or 2
    instruction: str | None = Field(None, description="task instruction the query is embedded with (default: the "
                                                     "index's query instruction; \"\": none)")
    exact: StrictBool = Field(False, description="brute-force search even where the index has an ANN graph")


class SearchHit(BaseModel):
    """One row of a search's ``results`` (documentation of the answer: the route builds it as a plain dict)."""

    id: str
    score: float
    source: str | None = None
    bbox: list[float] | None = Field(None, description="pixel box x1, y1, x2, y2 within source")
    lat: float | None = None
    lon: float | None = None
    footprint: list[float] | None = Field(None, description="minlon, minlat, maxlon, maxlat")
    captions: list[str] = []
    extra: dict[str, Any] = {}
    thumbnail_url: str | None = None


class SearchAnswer(BaseModel):
    """What a search answers: its hits, best first."""

    results: list[SearchHit]
    elapsed_ms: float
    message: str | None = Field(None, description="why ``results`` is empty, where it is")


class ErrorAnswer(BaseModel):
    """Every refusal: one line that names the field or input and says what to do."""

    error: str


def _errors(**described: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for refusals, ``e413="..."`` for 413."""
    return {int(code[1:]): {"model": ErrorAnswer, "description": text} for code, text in described.items()}


REFUSED = ("a query geovec refuses: an empty text, a latitude of 95, a top_k over the limit, a text over the model's "
           "window")
SCHEMA_ERROR = "a field of the wrong type or an unknown field"
SEARCH_ERRORS = _errors(
    e400=REFUSED, e408="the body did not arrive within the server's body timeout", e411="no Content-Length header",
    e413="a body over the server's limit for a JSON search",
    e422=f"{SCHEMA_ERROR}, or a body that is not JSON, not UTF-8, nested too deeply or holds a number too long to read")
IMAGE_ERRORS = _errors(e400=f"{REFUSED}, or an image geovec cannot decode",
                       e408="the upload did not arrive within the server's body timeout",
                       e413="an image over the server's upload limit", e422=f"{SCHEMA_ERROR}, or no image")
SEARCH_BODY_OPENAPI = {"requestBody": {"required": True, "content": {"application/json": {  # see _document_search_body
    "schema": {"$ref": COMPONENT_REF.format(model=SearchBody.__name__)}, "example": json.loads(JSON_EXAMPLE)}}}}


def _read_image(upload: UploadFile, limit: int) -> Image.Image:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"image: upload is larger than the {limit:,}-byte limit")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise GeovecInputError("image", f"cannot read image {upload.filename!r}: not an image format geovec "
                                        "can decode (PNG, JPEG, TIFF, WebP ...)") from None
    except (OSError, Image.DecompressionBombError) as exc:
        raise GeovecInputError("image", f"cannot read image {upload.filename!r}: {exc}") from None


class UploadLimit:
    """Refuses an oversized image upload by its Content-Length before it is read (the endpoint re-checks the file),
    and one whose body does not arrive within ``body_timeout_s`` (408): a client that announces more than it sends
    must not hold the request open until it gives up.

    Plain ASGI rather than ``@app.middleware("http")``: that form runs every request through extra tasks and
    streams, a measurable share of a search's cost under many concurrent users.
    """

    def __init__(self, app: ASGIApp, max_upload_bytes: int, body_timeout_s: float) -> None:
        self.app, self.max_upload_bytes, self.body_timeout_s = app, max_upload_bytes, body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != IMAGE_PATH:
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_upload_bytes + _MULTIPART_SLACK:
            await _error(413, f"image: upload is larger than the {self.max_upload_bytes:,}-byte limit")(
                scope, receive, send)
            return
        late = _late_body_message(length, self.body_timeout_s, "image upload")
        await self.app(scope, _receive_within(receive, self.body_timeout_s, late), send)


def _receive_within(receive: Receive, timeout_s: float, late: str) -> Receive:
    """``receive`` whose body messages must all arrive within ``timeout_s`` of the first call, else a 408 with
    ``late``; once the body is complete (a later call waits for the client to go away) it has no deadline."""
    loop = asyncio.get_running_loop()
    deadline, complete = loop.time() + timeout_s, False

    async def receive_in_time() -> Message:
        nonlocal complete
        if complete:
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
        except asyncio.TimeoutError:
            raise HTTPException(408, late) from None
        complete = not message.get("more_body", False)
        return message

    return receive_in_time


def _late_body_message(length: str, timeout_s: float, what: str) -> str:
    """The 408 message: how much was announced, the deadline, and what to do."""
    announced = f"the {int(length):,} bytes its Content-Length announces" if length.isdigit() else "the body"
    return f"body: {announced} did not arrive within {timeout_s:g} s: send the whole {what} at once"


class RequestRoute(APIRoute):
    """A route whose endpoint takes the ``Request`` and returns a ``Response`` itself: FastAPI documents it and
    routes to it, but runs none of its dependency solving or response validation.

    Why: with many users the server's event loop handles every request between two batches while the cores that
    embed wait, so its time per request is on every user's latency. A plain ``@app.post`` route took ~65 us of it
    for a refused body against ~27 us for the raw ASGI answer before it; this route ~44 us (~34 us with
    ``_read_body_within``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


class JsonSearch:
    """``POST /api/search``: the body read and checked here rather than by FastAPI's body parameter, so that a
    missing Content-Length (411), an oversized (413) or late (408) body is refused before it is read or parsed,
    and every refusal says in the user's terms what to fix (``SearchBody`` documents the body in OpenAPI)."""

    def __init__(self, web: WebSearch, max_body_bytes: int, body_timeout_s: float) -> None:
        self.web, self.max_body_bytes, self.body_timeout_s = web, max_body_bytes, body_timeout_s

    async def answer(self, request: Request) -> JSONResponse:
        length = request.headers.get("content-length", "")
        if not length.isdigit():
            return _error(411, "body: send a Content-Length header with the JSON search")
        if int(length) > self.max_body_bytes:
            return _error(413, f"body: {int(length):,} bytes is larger than the {self.max_body_bytes:,}-byte limit "
                               "for a JSON search")
        try:
            body = await _read_body_within(request.receive, self.body_timeout_s)
        except asyncio.TimeoutError:
            return _error(408, _late_body_message(length, self.body_timeout_s, "JSON search"))
        try:
            fields = SearchBody.model_validate(json.loads(body)).model_dump()
        except ValidationError as exc:
            return _error(422, _validation_message(exc.errors()))
        except (ValueError, RecursionError) as exc:
            return _error(422, _unreadable_json_message(exc))
        return JSONResponse(await self.web.run_async(SearchRequest(**fields)))


async def _read_body_within(receive: Receive, timeout_s: float) -> bytes:
    """``_read_body`` with a deadline (``TimeoutError``): ``asyncio.timeout`` where there is one (Python 3.11+), as
    ``asyncio.wait_for`` there runs the read in a task of its own, a fifth of a refused request's event-loop time."""
    if sys.version_info < (3, 11):
        return await asyncio.wait_for(_read_body(receive), timeout_s)
    async with asyncio.timeout(timeout_s):
        return await _read_body(receive)


async def _read_body(receive: Receive) -> bytes:
    """The request's whole body (what came, if the client went away first)."""
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    return body


def _unreadable_json_message(exc: ValueError | RecursionError) -> str:
    """Why ``json.loads`` could not read a body, in the user's terms (its own messages name Python internals)."""
    if isinstance(exc, json.JSONDecodeError):
        problem = f"not valid JSON ({exc.msg} at character {exc.pos})"
    elif isinstance(exc, UnicodeDecodeError):
        problem = f"not valid UTF-8 (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r})"
    elif isinstance(exc, RecursionError):
        problem = "JSON nested too deeply to read"
    else:  # Python's limit on the digits of an int it converts from text (sys.get_int_max_str_digits)
        problem = "a number in it has too many digits to read"
    return f"body: {problem}; send an object like {JSON_EXAMPLE}"


class WebSearch:
    """The app's state: one ``Searcher`` behind a ``QueryBatcher``, and the rules for turning hits into JSON."""

    def __init__(self, searcher: Searcher, batcher: QueryBatcher) -> None:
        self.searcher, self.batcher = searcher, batcher
        folder = searcher.store.folder  # None for a server index: nothing to serve thumbnails from
        self.root = folder.resolve() if folder is not None else None

    def thumbnail_path(self, record: Record) -> Optional[Path]:
        """The record's thumbnail file if it exists inside the index folder, else None (always, for a server index)."""
        relative = record.extra.get("thumbnail")
        if self.root is None or not isinstance(relative, str) or not relative.strip():
            return None
        path = (self.root / relative).resolve()
        return path if path.is_relative_to(self.root) and path.is_file() else None

    def run(self, request: SearchRequest) -> dict[str, Any]:
        """Search from a worker thread (blocks until the request's batch is done)."""
        return self.present(self.batcher.search(request))

    async def run_async(self, request: SearchRequest) -> dict[str, Any]:
        """Search from the event loop: validated here, embedded and ranked on the batcher's thread."""
        return self.present(await asyncio.wrap_future(self.batcher.submit(request)))

    def present(self, result: SearchResult) -> dict[str, Any]:
        request = result.request
        rows = []
        for hit in result.hits:
            row = hit.to_dict()
            has_thumb = self.thumbnail_path(hit.record) is not None
            item_id = hit.record.extra.get("best_description_id", hit.id)  # an image of a description index
            row["thumbnail_url"] = f"/api/thumbnail/{quote(item_id, safe='')}" if has_thumb else None
            rows.append(row)
        response: dict[str, Any] = {"results": rows, "elapsed_ms": round(result.elapsed_ms, 2)}
        if not rows:
            located = request.geo_filter() is not None
            response["message"] = EMPTY_AREA_MESSAGE if located else "the index is empty"
        return response

    def info(self) -> dict[str, Any]:
        store, embedder = self.searcher.store, self.searcher.embedder
        return {"items": len(store), "dim": store.dim, "model": store.model,
                "modalities": sorted(getattr(embedder, "modalities", ())), "bounds": store.bounds(),
                "max_top_k": MAX_TOP_K, "query_cache": self.searcher.cache.stats(),
                "batching": self.batcher.stats(), "threads": current_threads(),
                "precision": self.searcher.precision, "query_pass": self.searcher.query_pass_info(),
                "exact_kernel": store.exact_kernel()}


def place_named(name: str) -> dict[str, Any]:
    """``GET /api/place?name=``: the gazetteer's place (the page's place box sets its near filter from it); an
    unknown or ambiguous name is the CLI's ``--near`` message as a 400 on ``name``."""
    from geovec.places import resolve_place

    return resolve_place(name, "name").to_dict()


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _document_search_body(app: FastAPI) -> None:
    """Adds ``SearchBody`` (and any model it refers to) to the OpenAPI components, where ``POST /api/search``'s
    request body refers to it: FastAPI lists only the models of the parameters it parses itself."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # built once, then FastAPI's cached copy
        body = SearchBody.model_json_schema(ref_template=COMPONENT_REF)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(body.pop("$defs", {}), **{SearchBody.__name__: body})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_message(errors: Sequence[Any]) -> str:
    """Pydantic's first complaint as ``field: problem`` (the location without FastAPI's 'body'/'query'/'form')."""
    first = errors[0]
    location = [part for part in first.get("loc", ()) if part not in ("body", "query", "form")]
    return f"{'.'.join(map(str, location)) or 'request'}: {first.get('msg', 'invalid')}"


def create_app(index_path: str | Path, model_path: str | Path | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, *, embedder: Embedder | None = None,
               max_batch: int = 32, max_wait_ms: float = 5.0, query_cache: int = DEFAULT_QUERY_CACHE,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, precision: str = "auto", workers: int = 1,
               worker_timeout_s: float = DEFAULT_REPLY_TIMEOUT_S,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> FastAPI:
    """The FastAPI app over the index at ``index_path`` (opened and its model loaded now, once).

    ``max_batch=1, query_cache=0`` answers one request at a time with no cache (the path before batching).
    ``workers``: processes that compute a batch together (see ``SearchWorkers``; 1: this one alone), fewer where
    the memory available cannot hold their copies of the model and vectors (``/api/info`` says how many run);
    ``worker_timeout_s``: how long past its share of a batch a worker may take before it is killed and dropped.
    ``body_timeout_s``: how long a JSON search's body or an image upload may take to arrive (then 408).
    """
    if workers < 1:
        raise GeovecInputError("workers", f"must be >= 1 process, got {workers}")
    if not body_timeout_s > 0:
        raise GeovecInputError("body_timeout", f"must be > 0 seconds, got {body_timeout_s}")
    searcher = Searcher(index_path, embedder=embedder, model_path=model_path, query_cache=query_cache,
                        precision=precision)
    if workers > 1:  # each worker needs about what this process holds once its vectors are loaded
        searcher.warm_up()
        workers = processes_that_fit(workers, resident_memory(), available_memory())
    pool = SearchWorkers(searcher, workers - 1, threads=current_threads(), reply_timeout_s=worker_timeout_s) \
        if workers > 1 else None
    web = WebSearch(searcher, QueryBatcher(searcher, max_batch=max_batch, max_wait_ms=max_wait_ms, workers=pool))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        web.batcher.close()
        web.searcher.close()

    app = FastAPI(title="geovec", lifespan=lifespan)
    app.state.web = web
    json_search = JsonSearch(web, max_body_bytes, body_timeout_s)

    async def search(request: Request) -> Response:
        """Search with text, a place or both, with optional area filters. Body: ``SearchBody`` as JSON."""
        return await json_search.answer(request)

    # the first route after FastAPI's docs: routing tries each route in turn, and searches are most requests
    app.router.add_api_route(SEARCH_PATH, search, methods=["POST"], response_model=SearchAnswer,
                             responses=SEARCH_ERRORS, openapi_extra=SEARCH_BODY_OPENAPI,
                             route_class_override=RequestRoute)
    _document_search_body(app)
    app.mount("/static", StaticFiles(packages=[("geovec.web", "static")]), name="static")

    @app.exception_handler(GeovecError)
    async def geovec_error(_: Request, exc: GeovecError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_form(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405 and request.scope["path"] == SEARCH_PATH:
            return _error(405, f"method {request.method} is not allowed here: POST a JSON search like {JSON_EXAMPLE}")
        return _error(exc.status_code, str(exc.detail))

    app.add_middleware(UploadLimit, max_upload_bytes=max_upload_bytes, body_timeout_s=body_timeout_s)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return files("geovec.web").joinpath("static", "index.html").read_text(encoding="utf-8")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return web.info()

    @app.get("/api/place")
    def place(name: str) -> dict[str, Any]:
        return place_named(name)

    @app.post(IMAGE_PATH, response_model=SearchAnswer, responses=IMAGE_ERRORS)
    def search_image(image: UploadFile = File(...), box: Optional[str] = Form(None), text: Optional[str] = Form(None),
                     point: Optional[str] = Form(None), within: Optional[str] = Form(None),
                     near: Optional[str] = Form(None), radius_km: Optional[float] = Form(None),
                     top_k: int = Form(10), instruction: str | None = Form(None),
                     exact: bool = Form(False)) -> JSONResponse:
        """Search with an uploaded image (``box``: a pixel region of it), optional text and the same filters."""
        fields = {"box": (box, 4), "point": (point, 2), "within": (within, 4), "near": (near, 2)}
        request = SearchRequest(image=_read_image(image, max_upload_bytes), text=text or None, radius_km=radius_km,
                                top_k=top_k, instruction=instruction, exact=exact,
                                **{name: parse_numbers(name, *value) for name, value in fields.items()})
        return JSONResponse(web.run(request))

    @app.get("/api/thumbnail/{item_id:path}")
    def thumbnail(item_id: str) -> FileResponse:
        record = web.searcher.store.get(item_id)
        if record is None:
            raise HTTPException(404, f"no item with id {item_id!r} in the index")
        path = web.thumbnail_path(record)
        if path is None:
            raise HTTPException(404, f"item {item_id!r} has no thumbnail inside the index folder")
        return FileResponse(path)

    return app
