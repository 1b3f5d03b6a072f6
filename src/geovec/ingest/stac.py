"""Local STAC items: which asset of an item holds the picture to chip, and what to remember about the item.

Only local hrefs (relative to the item file, absolute paths, ``file://``) are read; there is no network access,
so an item whose chosen asset is remote is reported as a failure instead of being fetched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from geovec.errors import GeovecError

IMAGE_TYPES = ("image/tiff", "image/png", "image/jpeg", "image/jp2")
ASSET_PREFERENCE = ("visual", "rgb", "image", "data")  # asset roles or keys, best first (never "thumbnail")


@dataclass(frozen=True)
class StacAsset:
    item_path: Path
    item_id: str
    asset_key: str
    path: Path  # the local raster file
    metadata: dict  # what goes into Record.extra["stac"]


def is_stac_item(data: object) -> bool:
    return isinstance(data, dict) and data.get("type") == "Feature" and "stac_version" in data \
        and isinstance(data.get("assets"), dict)


def read_item(path: Path) -> dict | None:
    """The item in a JSON file; None when the file is valid JSON but not a STAC item."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeovecError(f"{path}: not a readable JSON file ({exc})") from None
    return data if is_stac_item(data) else None


def local_path(href: str, base: Path) -> Path | None:
    """The file an href names, or None when it is remote."""
    url = urlparse(href)
    if url.scheme == "file":
        return Path(unquote(url.path))
    if url.scheme and len(url.scheme) > 1:  # http, s3, ... (a one-letter scheme is a Windows drive)
        return None
    return (base / href).resolve()


def _rank(key: str, asset: dict) -> int | None:
    roles = set(asset.get("roles") or ())
    if "thumbnail" in roles or "overview" in roles:
        return None
    media = str(asset.get("type", "")).split(";")[0].strip()
    if media and media not in IMAGE_TYPES and not media.startswith("image/tiff"):
        return None
    for rank, name in enumerate(ASSET_PREFERENCE):
        if name in roles or key.lower() == name:
            return rank
    return len(ASSET_PREFERENCE)


def pick_asset(path: Path, data: dict) -> StacAsset:
    """The item's visual/RGB asset (by role, then key); raises naming the item when none is usable or local."""
    ranked = sorted((rank, key) for key, asset in data["assets"].items()
                    if isinstance(asset, dict) and "href" in asset and (rank := _rank(key, asset)) is not None)
    if not ranked:
        raise GeovecError(f"{path}: STAC item {data.get('id')!r} has no image asset (looked for roles/keys "
                          f"{', '.join(ASSET_PREFERENCE)})")
    key = ranked[0][1]
    href = data["assets"][key]["href"]
    file = local_path(href, path.parent)
    if file is None:
        raise GeovecError(f"{path}: asset {key!r} href {href!r} is remote; only local files are ingested")
    props = data.get("properties") or {}
    metadata = {"item": data.get("id"), "collection": data.get("collection"), "asset": key,
                "datetime": props.get("datetime"), "item_path": str(path)}
    return StacAsset(path, str(data.get("id")), key, file, {k: v for k, v in metadata.items() if v is not None})


def referenced_files(path: Path, data: dict) -> set[Path]:
    """Every local file the item's assets name (so a folder walk does not ingest them a second time)."""
    files = (local_path(a["href"], path.parent) for a in data["assets"].values() if isinstance(a, dict) and "href" in a)
    return {f for f in files if f is not None}
