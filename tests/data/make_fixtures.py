"""Write the tiny benchmark fixtures under tests/data/, one folder per dataset in its published layout.

Run ``python tests/data/make_fixtures.py`` after changing it and commit the output (torchgeo habit): the files are
seeded and small (16x16 to 64x64 pixels, < 200 kB in all), and tests/data works as a data root on which every
registered RSMEB task loads. ``write_image`` and ``write_geotiff`` are imported by the tests to build bad-data cases.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

HERE = Path(__file__).resolve().parent
EARTH_RADIUS_M = 6378137.0
SIZE = 16
_rng = np.random.default_rng(0)


def write_image(path: Path, colour: tuple[int, int, int] = (120, 120, 120), size: tuple[int, int] = (SIZE, SIZE),
                **save) -> Path:
    """A seeded noisy solid colour, format from the suffix (jpg/tif/png)."""
    w, h = size
    pixels = np.clip(np.array(colour) + _rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **save)
    return path


def write_geotiff(path: Path, epsg: int, origin: tuple[float, float], pixel: float, size: int = SIZE,
                  pixel_is_point: bool = False) -> Path:
    """A north-up GeoTIFF with real GeoTIFF tags: tie point (0, 0) -> ``origin`` (upper-left corner), square
    pixels of ``pixel`` CRS units; geographic keys for EPSG:4326, projected keys otherwise."""
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    geographic = epsg == 4326
    keys = [1, 1, 0, 3, 1024, 0, 1, 2 if geographic else 1, 1025, 0, 1, 2 if pixel_is_point else 1,
            2048 if geographic else 3072, 0, 1, epsg]
    for tag, value, kind in ((33550, (pixel, pixel, 0.0), TiffTags.DOUBLE),
                             (33922, (0.0, 0.0, 0.0, origin[0], origin[1], 0.0), TiffTags.DOUBLE),
                             (34735, tuple(keys), TiffTags.SHORT)):
        ifd[tag] = value
        ifd.tagtype[tag] = kind
    return write_image(path, (90, 140, 90), (size, size), tiffinfo=ifd)


def mercator(lat: float, lon: float) -> tuple[float, float]:
    """Forward Web Mercator (the tests check the reader's inverse against the round numbers put in here)."""
    return (EARTH_RADIUS_M * math.radians(lon),
            EARTH_RADIUS_M * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)))


def _fresh(root: Path, name: str) -> Path:
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


COLOURS = [(200, 60, 60), (60, 180, 60), (60, 60, 200)]
SCENES = {  # dataset folder -> (class folders under it, file-name pattern, suffix)
    "UCMerced_LandUse/Images": (["agricultural", "denseresidential", "tenniscourt"], "{c}{i:02d}", ".tif"),
    "AID": (["Airport", "BareLand", "DenseResidential"], "{l}_{i}", ".jpg"),
    "NWPU-RESISC45": (["airplane", "dense_residential", "golf_course"], "{c}_{i:03d}", ".jpg"),
    "EuroSAT_RGB": (["AnnualCrop", "Forest", "SeaLake"], "{c}_{i}", ".jpg"),
    "WHU-RS19": (["Airport", "footballField", "railwayStation"], "{c}_{i:02d}", ".jpg"),
    "RSSCN7": (["aGrass", "bField", "dRiverLake"], "{c}{i:03d}", ".jpg"),
    "PatternNet/images": (["airplane", "dense_residential", "sparse_residential"], "{n}{i:03d}", ".jpg"),
}
PATTERNNET_IMAGES = 4  # per class, PatternCom needs a few


def scenes(root: Path) -> None:
    for folder, (classes, pattern, suffix) in SCENES.items():
        base = _fresh(root, folder.split("/")[0]) / "/".join(folder.split("/")[1:])
        count = PATTERNNET_IMAGES if folder.startswith("PatternNet") else 2
        for colour, c in zip(COLOURS, classes):
            for i in range(1, count + 1):
                name = pattern.format(c=c if folder != "RSSCN7" else c[0], l=c.lower(), n=c.replace("_", ""), i=i)
                write_image(base / c / f"{name}{suffix}", colour)


PATTERNCOM = {  # attribute -> rows (image, value); classes from the file-name prefix, dense+sparse merged
    "color": [("airplane001.jpg", "white"), ("airplane002.jpg", "white"), ("airplane003.jpg", "red"),
              ("airplane004.jpg", "gray")],
    "context": [("airplane001.jpg", "on grass"), ("airplane003.jpg", "on concrete")],
    "density": [("denseresidential001.jpg", "dense"), ("denseresidential002.jpg", "dense"),
                ("sparseresidential001.jpg", "sparse")],
    "existence": [("denseresidential003.jpg", "with pool"), ("denseresidential004.jpg", "without pool")],
    "quantity": [("airplane002.jpg", "one"), ("airplane004.jpg", "two")],
    "shape": [("sparseresidential002.jpg", "curved roads"), ("sparseresidential003.jpg", "straight roads")],
}


def patterncom(root: Path) -> None:
    folder = root / "PatternNet" / "PatternCom"
    folder.mkdir(parents=True, exist_ok=True)
    for attribute, rows in PATTERNCOM.items():
        (folder / f"{attribute}.csv").write_text("".join(f"{n},{attribute},{v}\n" for n, v in rows), encoding="utf-8")


CAPTIONED = [("airport_1.jpg", "test", ["many planes near a terminal", "an airport", "", "runways", "planes"]),
             ("beach_2.jpg", "test", ["a beach", "sand and sea", "waves", "a long beach", "yellow sand"]),
             ("00003.jpg", "test", ["some buildings", "a town", "roofs", "houses", "streets"]),
             ("river_4.jpg", "train", ["a river", "water", "a bridge", "trees", "a curved river"])]


def karpathy(root: Path) -> None:
    for folder, json_name, images in (("RSITMD", "dataset_RSITMD.json", "images"),
                                      ("UCM_captions", "dataset.json", "imgs"),
                                      ("Sydney_captions", "dataset.json", "imgs")):
        base = _fresh(root, folder)
        records = []
        for k, (name, split, caps) in enumerate(CAPTIONED):
            write_image(base / images / name, COLOURS[k % 3])
            records.append({"filename": name, "imgid": k, "split": split,
                            "sentences": [{"raw": c, "tokens": c.split(), "imgid": k, "sentid": 5 * k + j}
                                          for j, c in enumerate(caps)]})
        (base / json_name).write_text(json.dumps({"images": records, "dataset": folder.lower()}, indent=1))


def amfmn(root: Path) -> None:
    """rs_caption_splits/{rsicd,rsitmd} (caption-aligned test file names) + rsicd/images: the shared-data layout."""
    test = [c for c in CAPTIONED if c[1] == "test"]
    captions = _fresh(root, "rs_caption_splits")
    for dataset in ("rsicd", "rsitmd"):
        splits = captions / dataset
        splits.mkdir()
        (splits / "test_caps.txt").write_text("".join(f"{c}\n" for _, _, caps in test for c in caps))
        (splits / "test_filename.txt").write_text("".join(f"{n}\n" for n, _, caps in test for _ in caps))
    images = _fresh(root, "rsicd") / "images"
    for k, (name, _, _) in enumerate(CAPTIONED):
        write_image(images / name, COLOURS[k % 3])


VQA = [  # (question id, image id, type, question, answer); ids 0 and 3 are inactive stubs as in the real files
    (1, 1, "presence", "Is there a road?", "yes"),
    (2, 1, "count", "How many buildings are there?", "12"),
    (4, 2, "presence", "Is there a water area?", "no"),
    (5, 2, "count", "How many roads are there?", "3"),
    (6, 2, "rural_urban", "Is it a rural or an urban area", "rural"),
    (7, 1, "comp", "Is the number of roads equal to the number of buildings?", "no"),
]


def rsvqa(folder: Path, prefix: str, split: str, images: str, rows: list = VQA, image_ids: tuple = (1, 2)) -> None:
    for image_id in image_ids:
        write_image(folder / images / f"{image_id}.tif", COLOURS[image_id % 3])
    questions = [{"id": 0, "active": False}, {"id": 3, "active": False}]
    answers = [{"id": 0, "active": False}, {"id": 3, "active": False}]
    for qid, image_id, kind, text, answer in rows:
        questions.append({"id": qid, "date_added": 0.0, "img_id": image_id, "people_id": 0, "type": kind,
                          "question": text, "answers_ids": [qid], "active": True})
        answers.append({"id": qid, "date_added": 0.0, "question_id": qid, "people_id": 0, "answer": answer,
                        "active": True})
    images_json = [{"id": 0, "active": False}] + [
        {"id": i, "people_id": 0, "original_name": f"tile_{i}", "questions_ids": [q[0] for q in rows if q[1] == i],
         "active": True} for i in image_ids]
    for kind, rows in (("questions", questions), ("answers", answers), ("images", images_json)):
        (folder / f"{prefix}_split_{split}_{kind}.json").write_text(json.dumps({kind: rows}))


RSVG = {  # xml number -> objects (name, box, description); test.txt lists object indices 0 and 2
    1: [("vehicle", (4, 6, 20, 18), "the vehicle on the upper left"),
        ("storagetank", (36, 30, 56, 50), "the storage tank on the lower right")],
    2: [("windmill", (10, 12, 30, 40), "the windmill in the middle")],
}


def _object_xml(name: str, box: tuple[int, ...], description: str) -> str:
    corners = "".join(f"      <{c}>{v}</{c}>\n" for c, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return (f"  <object>\n    <name>{name}</name>\n    <pose>Unspecified</pose>\n    <bndbox>\n{corners}"
            f"    </bndbox>\n    <description>{description}</description>\n  </object>\n")


def dior_rsvg(root: Path) -> None:
    base = _fresh(root, "DIOR-RSVG")
    (base / "Annotations").mkdir()
    for number, objects in RSVG.items():
        name = f"{number:05d}.jpg"
        write_image(base / "JPEGImages" / name, COLOURS[number], (64, 64))
        body = "".join(_object_xml(*obj) for obj in objects)
        (base / "Annotations" / f"{number:05d}.xml").write_text(
            f"<annotation>\n  <filename>{name}</filename>\n  <source>\n    <database>DIOR</database>\n  </source>\n"
            f"  <size>\n    <width>64</width>\n    <height>64</height>\n    <depth>3</depth>\n  </size>\n{body}"
            "</annotation>\n")
    (base / "test.txt").write_text("0\n2\n")
    (base / "train.txt").write_text("1\n")


# GeoTIFF tiles, (epsg, centre lat, centre lon, pixel size); the upper-left corner is put 8 pixels up-left of the
# centre, so centres are exactly these round numbers.
TILES = {"0": (3857, 0.0, 0.0, 10.0), "1": (3857, 50.0, 5.0, 100.0), "2": (4326, 52.0, 5.0, 0.01)}


def geotiffs(root: Path) -> None:
    base = _fresh(root, "rsvqa_lr")
    for name, (epsg, lat, lon, pixel) in TILES.items():
        x, y = mercator(lat, lon) if epsg == 3857 else (lon, lat)
        write_geotiff(base / f"{name}.tif", epsg, (x - SIZE / 2 * pixel, y + SIZE / 2 * pixel), pixel)


TREE_BOXES = [(2, 3, 10, 12), (14, 2, 30, 14), (4, 18, 16, 30), (20, 20, 31, 32)]


def deepforest(root: Path) -> None:
    base = _fresh(root, "deepforest")
    write_image(base / "OSBS_029.tif", (70, 110, 60), (32, 32))
    (base / "OSBS_029.csv").write_text("image_path,xmin,ymin,xmax,ymax,label\n" + "".join(
        f"OSBS_029.tif,{x1},{y1},{x2},{y2},Tree\n" for x1, y1, x2, y2 in TREE_BOXES))


# Training splits (read by geovec.train.data): RSICD/RSITMD AMFMN train files (image-aligned file names, as
# published) over images disjoint from the test ones, and an RSVQA-LR train split on images 3 and 4 (the test split
# uses 1 and 2; the geo tiles are 0-2).
CAPTION_TRAIN = [("river_4.jpg", ["a river", "water", "a bridge", "trees", "a curved river"]),
                 ("river_5.jpg", ["a river with a bridge", "a green river", "water and trees", "a river",
                                  "a winding river"]),
                 ("airport_6.jpg", ["an airport", "planes on an apron", "a runway", "a terminal", "two planes"]),
                 ("airport_7.jpg", ["many planes", "an airport", "a long runway", "planes parked", "an apron"]),
                 ("beach_8.jpg", ["a beach", "white sand", "a beach with waves", "the sea", "a coast"]),
                 ("00009.jpg", ["some houses", "a village", "roads and houses", "buildings", "a small town"])]
VQA_TRAIN = [
    (8, 3, "presence", "Is there a building?", "yes"),
    (9, 3, "count", "How many water areas are there?", "0"),
    (10, 4, "presence", "Is there a road?", "no"),
    (11, 4, "count", "How many buildings are there?", "5"),
    (12, 4, "rural_urban", "Is it a rural or an urban area", "urban"),
]


def train_splits(root: Path) -> None:
    for k, (name, _) in enumerate(CAPTION_TRAIN):
        if name != "river_4.jpg":  # river_4 is already in both image folders
            for images in (root / "rsicd" / "images", root / "RSITMD" / "images"):
                write_image(images / name, COLOURS[k % 3])
    for dataset in ("rsicd", "rsitmd"):
        splits = root / "rs_caption_splits" / dataset
        (splits / "train_caps.txt").write_text("".join(f"{c}\n" for _, caps in CAPTION_TRAIN for c in caps))
        (splits / "train_filename.txt").write_text("".join(f"{n}\n" for n, _ in CAPTION_TRAIN))
    rsvqa(root / "RSVQA-LR", "LR", "train", "Images_LR", VQA_TRAIN, (3, 4))


# Mosaic tiles (geovec.datasets.mosaics needs one scene class per tile, four per 2x2 scene): two more RSICD test
# images and two more train images of new classes, appended to the rsicd AMFMN split files only. Their pixels come
# from their own generator, so adding them changed no other fixture file.
MOSAIC_TILES = [("farmland_10.jpg", "test", (200, 180, 60), ["green farmland", "fields in rows", "farmland",
                                                               "square fields", "crops"]),
                ("pond_11.jpg", "test", (40, 90, 160), ["a pond", "a small pond with trees", "water", "a blue pond",
                                                         "a round pond"]),
                ("farmland_12.jpg", "train", (180, 200, 80), ["farmland", "many fields", "brown fields",
                                                                "fields and a road", "green crops"]),
                ("pond_13.jpg", "train", (30, 80, 170), ["a pond", "a pond near a road", "dark water",
                                                          "a pond with grass", "two ponds"])]


def mosaic_tiles(root: Path) -> None:
    draw = np.random.default_rng(23)
    splits = root / "rs_caption_splits" / "rsicd"
    for name, split, colour, caps in MOSAIC_TILES:
        pixels = np.clip(np.array(colour) + draw.integers(-30, 31, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "rsicd" / "images" / name)
        with (splits / f"{split}_caps.txt").open("a") as captions:
            captions.write("".join(f"{c}\n" for c in caps))
        with (splits / f"{split}_filename.txt").open("a") as names:
            names.write("".join(f"{name}\n" for _ in (caps if split == "test" else caps[:1])))


def main(root: Path = HERE) -> None:
    scenes(root)
    patterncom(root)
    karpathy(root)
    amfmn(root)
    rsvqa(_fresh(root, "RSVQA-LR"), "LR", "test", "Images_LR")
    hr = _fresh(root, "RSVQA-HR")
    for split in ("test", "test_phili"):
        rsvqa(hr, "USGS", split, "Data")
    dior_rsvg(root)
    geotiffs(root)
    deepforest(root)
    train_splits(root)  # last, so the seeded pixels of everything above stay as they were
    mosaic_tiles(root)


if __name__ == "__main__":
    main()
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"fixtures written under {HERE} ({total / 1024:.0f} kB)")
