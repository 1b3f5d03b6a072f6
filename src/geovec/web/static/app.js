// geovec search page: plain JS over the JSON API (no build step). The map has no tiles (works offline): a
// bundled Natural Earth land outline is the background, result footprints and thumbnails are drawn on top.
"use strict";

const $ = (id) => document.getElementById(id);
const FOOTPRINT = { className: "footprint", color: "#1c7ed6", weight: 2, fillOpacity: 0.08 };
const ACTIVE = { color: "#e8590c", weight: 3, fillOpacity: 0.2 };

const map = L.map("map", { boxZoom: false, worldCopyJump: true, minZoom: 1, attributionControl: false })
  .setView([20, 0], 2);
const resultLayer = L.layerGroup().addTo(map);
const state = { within: null, areaRect: null, near: null, nearCircle: null, lastQuery: null, shapes: new Map(),
  canUseImages: false };

fetch("/static/vendor/land-110m.geojson").then((r) => r.json()).then((land) => {
  L.geoJSON(land, { interactive: false, style: { className: "land", color: "#b9ae97", weight: 1, fillColor: "#f4efe4", fillOpacity: 1 } })
    .addTo(map).bringToBack();
});

// --- talking to the API ---------------------------------------------------------------------------------------

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function topK() { return parseInt($("top-k").value, 10) || 10; }

// A query is remembered so drawing or clearing an area re-runs it with the new filter.
async function run(query) {
  state.lastQuery = query;
  showError("");
  $("status").textContent = "searching…";
  try {
    let body;
    if (query.kind === "text") {
      body = await api("/api/search", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text: query.text, top_k: topK(), within: state.within,
          ...(state.near ? { near: state.near.point, radius_km: state.near.radiusKm } : {}) }) });
    } else {
      const form = new FormData();
      form.append("image", query.blob, query.name);
      if (query.box) form.append("box", query.box.join(","));
      if (state.within) form.append("within", state.within.join(","));
      if (state.near) {
        form.append("near", state.near.point.join(","));
        form.append("radius_km", String(state.near.radiusKm));
      }
      form.append("top_k", String(topK()));
      body = await api("/api/search/image", { method: "POST", body: form });
    }
    render(body, query);
  } catch (err) {
    showError(err.message);
    $("status").textContent = "";
  }
}

// --- results: gallery cards linked with map shapes --------------------------------------------------------------

function footprintBounds(row) {
  if (!row.footprint) return null;
  const [minlon, minlat, maxlon, maxlat] = row.footprint;
  return L.latLngBounds([minlat, minlon], [maxlat, maxlon < minlon ? maxlon + 360 : maxlon]);  // antimeridian
}

function render(body, query) {
  resultLayer.clearLayers();
  state.shapes.clear();
  $("gallery").replaceChildren();
  const rows = body.results;
  $("status").textContent = body.message ||
    `${rows.length} result${rows.length === 1 ? "" : "s"} for ${query.label} in ${body.elapsed_ms} ms`;
  const all = [];
  rows.forEach((row, rank) => {
    const bounds = footprintBounds(row);
    let shape = null;
    if (bounds) {
      if (row.thumbnail_url) L.imageOverlay(row.thumbnail_url, bounds, { className: "thumb-overlay", opacity: 0.9 }).addTo(resultLayer);
      shape = L.rectangle(bounds, FOOTPRINT);
      all.push(bounds);
    } else if (row.lat != null) {
      shape = L.circleMarker([row.lat, row.lon], { ...FOOTPRINT, radius: 6 });
      all.push(L.latLngBounds([row.lat, row.lon], [row.lat, row.lon]));
    }
    const card = makeCard(row, rank);
    if (shape) {
      shape.bindTooltip(`#${rank + 1} ${row.id}`).addTo(resultLayer);
      shape.on("mouseover", () => highlight(row.id, true));
      shape.on("mouseout", () => highlight(row.id, false));
      shape.on("click", () => card.scrollIntoView({ block: "nearest" }));
      state.shapes.set(row.id, { shape, card });
    }
    $("gallery").append(card);
  });
  if (all.length) {
    const union = all.reduce((a, b) => a.extend(b), L.latLngBounds(all[0].getSouthWest(), all[0].getNorthEast()));
    map.fitBounds(union, { maxZoom: 12, padding: [20, 20] });
  }
}

function highlight(id, on) {
  const entry = state.shapes.get(id);
  if (!entry) return;
  entry.shape.setStyle(on ? ACTIVE : FOOTPRINT);
  if (on) entry.shape.bringToFront();
  entry.card.classList.toggle("active", on);
}

function makeCard(row, rank) {
  const card = document.createElement("div");
  card.className = "card";
  card.dataset.id = row.id;
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  if (row.thumbnail_url) {
    const img = document.createElement("img");
    img.src = row.thumbnail_url;
    img.alt = row.id;
    img.draggable = false;
    img.title = state.canUseImages ? "drag a box to search by this region" : "";
    thumb.append(img);
    if (state.canUseImages) enableBoxDrawing(thumb, img, row);
  } else {
    thumb.innerHTML = '<div class="none">no thumbnail</div>';
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.innerHTML = `<b>#${rank + 1}</b> <span class="score">${row.score.toFixed(3)}</span> <span class="id"></span><p></p>`;
  meta.querySelector(".id").textContent = row.id;
  meta.querySelector("p").textContent = (row.captions || [])[0] || "";
  card.append(thumb, meta);
  card.addEventListener("mouseenter", () => highlight(row.id, true));
  card.addEventListener("mouseleave", () => highlight(row.id, false));
  card.addEventListener("click", () => {
    const entry = state.shapes.get(row.id);
    if (entry && entry.shape.getBounds) map.fitBounds(entry.shape.getBounds(), { maxZoom: 12 });
    else if (entry) map.panTo(entry.shape.getLatLng());
  });
  return card;
}

// Mouse drag on a thumbnail -> a box in the image's own pixel coordinates -> image search with that box.
function enableBoxDrawing(thumb, img, row) {
  let start = null;
  const sel = document.createElement("div");
  sel.className = "selection";
  sel.hidden = true;
  thumb.append(sel);
  const point = (e) => {
    const r = img.getBoundingClientRect();
    return [Math.min(Math.max(e.clientX - r.left, 0), r.width), Math.min(Math.max(e.clientY - r.top, 0), r.height)];
  };
  const move = (e) => {
    const [x, y] = point(e);
    Object.assign(sel.style, { left: `${Math.min(x, start[0])}px`, top: `${Math.min(y, start[1])}px`,
      width: `${Math.abs(x - start[0])}px`, height: `${Math.abs(y - start[1])}px` });
  };
  const up = async (e) => {
    document.removeEventListener("mousemove", move);
    document.removeEventListener("mouseup", up);
    const [x, y] = point(e);
    const s = start;
    start = null;
    if (Math.abs(x - s[0]) < 4 || Math.abs(y - s[1]) < 4) { sel.hidden = true; return; }  // a click, not a box
    const sx = img.naturalWidth / img.clientWidth, sy = img.naturalHeight / img.clientHeight;
    const box = [Math.min(x, s[0]) * sx, Math.min(y, s[1]) * sy, Math.max(x, s[0]) * sx, Math.max(y, s[1]) * sy]
      .map((v) => Math.round(v));
    const blob = await (await fetch(row.thumbnail_url)).blob();
    run({ kind: "image", blob, name: `${row.id}.jpg`, box, label: `region [${box.join(", ")}] of ${row.id}` });
  };
  thumb.addEventListener("mousedown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation();
    start = point(e);
    move(e);
    sel.hidden = false;
    document.addEventListener("mousemove", move);
    document.addEventListener("mouseup", up);
  });
  thumb.addEventListener("click", (e) => e.stopPropagation());
}

// --- area filter: "Draw area" then drag, or shift-drag at any time ------------------------------------------

let drawing = false, areaStart = null;

function setDrawing(on) {
  drawing = on;
  $("map").classList.toggle("drawing", on);
  $("area-toggle").classList.toggle("active", on);
  if (on) map.dragging.disable(); else map.dragging.enable();
}

map.on("mousedown", (e) => {
  if (!drawing && !e.originalEvent.shiftKey) return;
  map.dragging.disable();
  areaStart = e.latlng;
  if (state.areaRect) state.areaRect.remove();
  const style = { className: "area", color: "#e8590c", dashArray: "6 4", fillOpacity: 0.05, interactive: false };
  state.areaRect = L.rectangle(L.latLngBounds(areaStart, areaStart), style).addTo(map);
});
map.on("mousemove", (e) => { if (areaStart) state.areaRect.setBounds(L.latLngBounds(areaStart, e.latlng)); });
map.on("mouseup", (e) => {
  if (!areaStart) return;
  const b = L.latLngBounds(areaStart, e.latlng);
  areaStart = null;
  setDrawing(false);
  const clamp = (v, lim) => Math.round(Math.min(Math.max(v, -lim), lim) * 1e4) / 1e4;
  const wrap = (lon) => clamp(((lon + 540) % 360) - 180, 180);
  const west = b.getEast() - b.getWest() >= 360 ? -180 : wrap(b.getWest());
  const east = b.getEast() - b.getWest() >= 360 ? 180 : wrap(b.getEast());
  setArea([west, clamp(b.getSouth(), 90), east, clamp(b.getNorth(), 90)]);
});

function setArea(within) {
  state.within = within;
  $("area-label").textContent = within ? `within ${within.map((v) => v.toFixed(2)).join(", ")}` : "";
  $("area-clear").hidden = !within;
  if (!within && state.areaRect) { state.areaRect.remove(); state.areaRect = null; }
  if (state.lastQuery) run(state.lastQuery);
}

$("area-toggle").addEventListener("click", () => setDrawing(!drawing));
$("area-clear").addEventListener("click", () => setArea(null));

// --- near a place: the name resolves server-side (GET /api/place, the gazetteer of `geovec search --near`) -----

async function setPlace(name) {
  showError("");
  if (!name) { setNear(null); return; }
  try {
    const place = await api(`/api/place?name=${encodeURIComponent(name)}`);
    const radiusKm = parseFloat($("place-radius").value) || 50;
    setNear({ point: [place.lat, place.lon], radiusKm, label: place.label });
  } catch (err) {
    showError(err.message);
  }
}

function setNear(near) {
  state.near = near;
  if (state.nearCircle) { state.nearCircle.remove(); state.nearCircle = null; }
  $("place-label").textContent = near ? `near ${near.label} (${near.point.map((v) => v.toFixed(2)).join(", ")})` : "";
  $("place-clear").hidden = !near;
  if (near) {
    const style = { className: "near", color: "#e8590c", dashArray: "6 4", fillOpacity: 0.05, interactive: false };
    state.nearCircle = L.circle(near.point, { ...style, radius: near.radiusKm * 1000 }).addTo(map);
    map.fitBounds(state.nearCircle.getBounds(), { padding: [20, 20] });
  }
  if (state.lastQuery) run(state.lastQuery);
}

$("place-form").addEventListener("submit", (e) => { e.preventDefault(); setPlace($("place-name").value.trim()); });
$("place-clear").addEventListener("click", () => { $("place-name").value = ""; setNear(null); });

// --- query forms and index info ---------------------------------------------------------------------------------

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("query-text").value.trim();
  if (!text) { showError("text: type what you are looking for"); return; }
  run({ kind: "text", text, label: `"${text}"` });
});

$("image-search").addEventListener("click", () => {
  const file = $("image-file").files[0];
  if (!file) { showError("image: choose an image file first"); return; }
  run({ kind: "image", blob: file, name: file.name, box: null, label: `image ${file.name}` });
});

api("/api/info").then((info) => {
  state.canUseImages = info.modalities.includes("image");
  $("image-search").disabled = $("image-file").disabled = !state.canUseImages;
  if (!state.canUseImages) $("image-search").title = `model ${info.model.name} embeds no images`;
  $("info").textContent = `${info.items.toLocaleString()} items · model ${info.model.name || "?"}`;
  if (info.bounds) {
    const [w, s, e, n] = info.bounds;
    map.fitBounds([[s, w], [n, e]], { maxZoom: 10, padding: [20, 20] });
  }
}).catch((err) => showError(`cannot load index info: ${err.message}`));
