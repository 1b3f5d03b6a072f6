#!/usr/bin/env bash
# Vendors the web page's third-party files into src/geovec/web/static/vendor/ (served from the package: no CDN).
#   leaflet 1.9.4        (BSD-2-Clause)  -> vendor/leaflet/{leaflet.js,leaflet.css,LICENSE}
#   world-atlas 2.0.2    (ISC; data: Natural Earth, public domain) land-110m TopoJSON, converted to GeoJSON with
#   topojson-client 3.1.0 (ISC) at vendoring time -> vendor/land-110m.geojson (+ LICENSE-world-atlas)
# Needs node + npm (registry access). Re-run to refresh; the output is committed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/src/geovec/web/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent leaflet@1.9.4 world-atlas@2.0.2 topojson-client@3.1.0 >/dev/null
for pkg in leaflet-1.9.4 world-atlas-2.0.2 topojson-client-3.1.0; do
  mkdir "$pkg" && tar xzf "$pkg.tgz" -C "$pkg" --strip-components=1
done
mkdir -p "$DEST/leaflet"
cp leaflet-1.9.4/dist/leaflet.js leaflet-1.9.4/dist/leaflet.css leaflet-1.9.4/LICENSE "$DEST/leaflet/"
cp world-atlas-2.0.2/LICENSE "$DEST/LICENSE-world-atlas"
# TopoJSON -> GeoJSON, coordinates rounded to 0.01 degree (~1 km, far below the 110m data's own accuracy).
# Rings that cross the antimeridian (Chukotka, Fiji) are unwrapped past +-180 so Leaflet's flat map draws no
# lines across the whole world; a ring circling a pole (Antarctica) is kept as it is.
node -e '
const topojson = require("./topojson-client-3.1.0/dist/topojson-client.js");
const topo = JSON.parse(require("fs").readFileSync("world-atlas-2.0.2/land-110m.json", "utf8"));
const land = topojson.feature(topo, topo.objects.land);
const round = (c) => typeof c[0] === "number" ? c.map((v) => Math.round(v * 100) / 100) : c.map(round);
function unwrap(ring) {
  let off = 0;
  const offs = ring.map((p, i) => {
    if (i && Math.abs(p[0] - ring[i - 1][0]) > 180) off += p[0] < ring[i - 1][0] ? 360 : -360;
    return off;
  });
  if (off !== 0) return ring;
  const count = {};
  offs.forEach((o) => { count[o] = (count[o] || 0) + 1; });
  const base = Number(Object.keys(count).reduce((a, b) => (count[a] >= count[b] ? a : b)));
  return ring.map((p, i) => [p[0] + offs[i] - base, p[1]]);
}
for (const f of land.features) {
  const g = f.geometry;
  const polygons = g.type === "MultiPolygon" ? g.coordinates : [g.coordinates];
  polygons.forEach((rings) => rings.forEach((ring, i) => { rings[i] = unwrap(ring); }));
  g.coordinates = round(g.coordinates);
}
land.source = "Natural Earth 1:110m land (public domain) via world-atlas@2.0.2";
process.stdout.write(JSON.stringify(land));
' > "$DEST/land-110m.geojson"
ls -l "$DEST" "$DEST/leaflet"
