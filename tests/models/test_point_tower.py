"""geovec-mini's GeoCLIP point tower: the real GeoCLIP weights from the pip package, upstream's own source code as
the reference, real forward passes, and a real interpreter without geoclip for the error."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from shipped_vectors import IMAGE, RECORDED, shipped_vectors
from tolerances import assert_float32_close

from geovec.errors import GeovecError
from geovec.inputs import BoxSegment, ImageSegment, Interleaved, PointSegment, TextSegment
from geovec.models import load_model
from geovec.models.geoclip_location import LocationEncoder, frozen_location_encoder, location_features
from geovec.models.mini import GeovecMini, MiniSettings, export_embedded, load_embedded
from geovec.models.trainable import EncoderEmbedder, load_encoder

TINY = {"num_layers": 2, "image_size": 64, "patch_size": 16, "stem_widths": (16, 32)}
POINTS = {"point_tower": "geoclip", "point_tokens": 2}


def _geoclip_root() -> Path:
    try:
        return Path(str(importlib.metadata.distribution("geoclip").locate_file("geoclip")))
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("geoclip is not installed (pip install --no-deps geoclip==1.3.0)")


def _image() -> ImageSegment:
    if not IMAGE.is_file():
        pytest.skip(f"RSICD image not found: {IMAGE}")
    return ImageSegment(IMAGE)


@pytest.fixture(scope="module")
def tiny() -> GeovecMini:
    _geoclip_root()
    return GeovecMini.initial(**TINY, **POINTS).eval()


UPSTREAM = "_geovec_test_upstream_geoclip"  # the private name upstream's modules run under


def _load_upstream(root: Path) -> type[torch.nn.Module]:
    """Upstream's LocationEncoder class, run from its own source files: stub parent packages in sys.modules (so
    ``geoclip/__init__.py``, which imports torchvision, never runs) and the real ``model/misc.py``, ``model/rff/``
    and ``model/location_encoder.py`` under a private name."""
    for package, folder in ((UPSTREAM, root), (f"{UPSTREAM}.model", root / "model")):
        stub = types.ModuleType(package)
        stub.__path__ = [str(folder)]
        sys.modules[package] = stub
    for module, path, is_package in (("misc", "model/misc.py", False), ("rff", "model/rff/__init__.py", True),
                                     ("location_encoder", "model/location_encoder.py", False)):
        full = f"{UPSTREAM}.model.{module}"
        spec = importlib.util.spec_from_file_location(
            full, root / path, submodule_search_locations=[str((root / path).parent)] if is_package else None)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[full] = loaded
        spec.loader.exec_module(loaded)  # rff/__init__.py imports its layers.py and functional.py
    return sys.modules[f"{UPSTREAM}.model.location_encoder"].LocationEncoder


@pytest.fixture()
def upstream() -> torch.nn.Module:
    """Upstream's LocationEncoder with the package weights (it reads them itself); its modules are removed after."""
    root = _geoclip_root()
    pytest.importorskip("pandas")  # upstream's misc.py reads CSVs with it
    try:
        yield _load_upstream(root)().eval()
    finally:
        for name in [n for n in sys.modules if n == UPSTREAM or n.startswith(UPSTREAM + ".")]:
            del sys.modules[name]


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # upstream's rff/functional.py
def test_location_encoder_equals_upstream_on_a_grid_of_points(upstream):
    ours = frozen_location_encoder()
    assert list(ours.state_dict()) == list(upstream.state_dict())
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in upstream.state_dict().items())
    lat, lon = torch.meshgrid(torch.linspace(-89.5, 89.5, 19), torch.linspace(-180, 180, 25), indexing="ij")
    grid = torch.stack((lat.flatten(), lon.flatten()), dim=1)  # 475 points, pole to pole, both antimeridians
    with torch.no_grad():
        expected = upstream(grid)
    actual = location_features(grid)
    assert actual.shape == (len(grid), 512)
    assert_float32_close(actual, expected, terms=1024, what="GeoCLIP location features")
    assert "geoclip" not in sys.modules  # the package itself was never imported (it needs torchvision)


@pytest.mark.slow
def test_shipped_weights_have_no_point_tower_and_give_the_recorded_vectors():
    """The shipped model (point_tower None) loads strictly and gives the vectors recorded before the tower."""
    model = load_model("geovec-mini")
    shipped = model.encoder
    assert shipped.settings.point_tower is None and not hasattr(shipped, "point_projection")
    assert not any(key.startswith("point_") for key in shipped.state_dict())
    point_only = shipped.prepare([Interleaved((PointSegment(51.9, 4.48),))])
    assert "point_features" not in point_only and bool((point_only["image_slots"] < 0).all())  # text only
    if not IMAGE.is_file():
        pytest.skip(f"RSICD image not found: {IMAGE}")
    recorded = np.load(RECORDED)
    revision, vectors = shipped_vectors(model)
    assert revision == str(recorded["revision"]), \
        "the shipped weights changed since the reference: re-record with tests/models/shipped_vectors.py"
    assert_float32_close(vectors, recorded["vectors"], terms=1536, what="shipped geovec-mini vectors")


def test_each_point_adds_its_geoclip_tokens_after_its_loc_text(tiny):
    item = Interleaved((_image(), BoxSegment((10, 20, 110, 120), "pixel"), PointSegment(52.1, 4.3),
                        TextSegment("harbour")), instruction="Find the place")
    batch = tiny.prepare([item, Interleaved((TextSegment("a bridge"), PointSegment(-33.87, 151.21)))])
    slots, ids, per_image = batch["image_slots"], batch["input_ids"], tiny.settings.tokens_per_image
    images = 2 * per_image  # the image and its box's crop come first in the token table, then the points
    first = int((slots[0] == images).nonzero()[0])
    assert slots[0, first:first + 2].tolist() == [images, images + 1]  # point_tokens=2, contiguous
    text_before = tiny.tokenizer.decode(ids[0, :first][slots[0, :first] < 0])
    assert text_before.endswith("< loc > 52. 1000, 4. 3000 < / loc >")  # right after its <loc> text
    assert tiny.tokenizer.decode(ids[0, first + 2:first + 3]) == "harbour"
    assert sorted(slots[1][slots[1] >= 0].tolist()) == [images + 2, images + 3]
    assert torch.equal(batch["point_features"], location_features(torch.tensor([[52.1, 4.3], [-33.87, 151.21]])))


@pytest.mark.slow
def test_points_beside_cached_and_fresh_images_read_their_own_tokens(tmp_path):
    """All three kinds in one batch (cached whole images, box crops from pixels, points): the table has them in
    that order and each slot reads its own tokens, so the feature cache still gives the fresh vectors."""
    _geoclip_root()
    lite = GeovecMini.initial(num_layers=1, vision="efficientnet-lite0", **POINTS).eval()
    paths = [str(_image().source), str(IMAGE.with_name("bridge_2.jpg"))]
    items = [Interleaved((ImageSegment(path), PointSegment(51.9 + i, 4.48), BoxSegment((10, 10, 120, 90), "pixel")))
             for i, path in enumerate(paths)] + [Interleaved((PointSegment(-33.87, 151.21),))]
    with torch.no_grad():
        fresh = lite.embed(items)
        lite.use_feature_cache(tmp_path / "cache", paths, show_progress=False)
        batch = lite.prepare(items)
        cached = lite.embed(items)
    per_image, images = lite.settings.tokens_per_image, 4 * lite.settings.tokens_per_image  # 2 whole + 2 crops
    assert batch["image_features"].shape[0] == 2 and batch["pixel_values"].shape[0] == 2
    first = batch["image_slots"][0][batch["image_slots"][0] >= 0].tolist()  # cached image, its point, its crop
    assert first == [*range(2 * per_image, 3 * per_image), images, images + 1, *range(per_image)]
    assert batch["image_slots"][2][batch["image_slots"][2] >= 0].tolist() == [images + 4, images + 5]
    assert torch.allclose(fresh, cached, atol=1e-5)


def test_the_point_tokens_carry_the_point_into_the_vector(tiny):
    """Same text, other GeoCLIP features: the vector moves; and nearby points move it less than far ones."""
    items = [Interleaved((PointSegment(lat, lon), TextSegment("harbour"))) for lat, lon in
             ((51.90, 4.48), (51.92, 4.47), (-33.87, 151.21))]
    initial = tiny.point_projection.weight.detach().clone()
    with torch.no_grad():
        tiny.point_projection.weight.mul_(50.0)  # a trained-like share of the vector (init is small on purpose)
        try:
            batch = tiny.prepare(items[:1] * 3)  # three identical texts
            batch["point_features"] = location_features(torch.tensor([[51.90, 4.48], [51.92, 4.47], [-33.87, 151.21]]))
            same_text = torch.nn.functional.normalize(tiny(batch), dim=-1)
        finally:
            tiny.point_projection.weight.copy_(initial)
    near, far = float(same_text[0] @ same_text[1]), float(same_text[0] @ same_text[2])
    assert far < near < 1.0 - 1e-4, (near, far)


def test_bfloat16_serving_keeps_the_point_projection_in_float32(tmp_path):
    """A bfloat16 copy of the embedder leaves the point projection's weights in float32 and its vectors close."""
    _geoclip_root()
    embedder = EncoderEmbedder(GeovecMini.initial(**TINY, **POINTS), "geovec-mini")
    items = [Interleaved((PointSegment(51.9 + 0.01 * i, 4.48), TextSegment("harbour"))) for i in range(3)]
    full = embedder.encode(items)
    half_embedder = embedder.with_precision("bfloat16")
    assert half_embedder.precision == "bfloat16"
    half = half_embedder.encode(items)
    assert embedder.encoder.point_projection.weight.dtype == torch.float32
    assert np.all((full * half).sum(-1) > 0.999)


@pytest.mark.slow
def test_save_reload_and_shipping_keep_the_point_tower_and_leave_geoclip_out(tiny, tmp_path):
    items = [Interleaved((PointSegment(51.9, 4.48), TextSegment("harbour")), instruction="Find the place"),
             Interleaved((_image(), PointSegment(52.0, 5.0)))]
    folder = tiny.save(tmp_path / "mini")
    from safetensors.torch import load_file

    saved = load_file(str(folder / "model.safetensors"))
    assert {"point_projection.weight", "point_projection.bias"} <= set(saved)
    assert not any("LocEnc" in key for key in saved)  # GeoCLIP's 9.4M frozen weights come from its package
    assert json.loads((folder / "geovec_encoder.json").read_text())["point_tower"] == "geoclip"
    with torch.no_grad():
        before = tiny.embed(items).numpy()
        assert np.array_equal(load_encoder(folder).eval().embed(items).numpy(), before)
        shipped = load_embedded(export_embedded(folder, tmp_path / "shipped")).eval()
        assert torch.all((shipped.embed(items) * torch.from_numpy(before)).sum(-1) > 0.9999)
    assert "point_projection.weight" not in json.loads((tmp_path / "shipped" / "geovec_encoder.json").read_text())[
        "from_packages"]


def test_bad_point_tower_settings_are_refused():
    with pytest.raises(GeovecError, match="unknown point tower 'satclip'"):
        MiniSettings(point_tower="satclip")
    with pytest.raises(GeovecError, match=r"point_tokens must be a whole number in \[1, 16\], got 0"):
        MiniSettings(point_tower="geoclip", point_tokens=0)


def _site_without_geoclip(target: Path) -> Path:
    """A real site-packages without geoclip: links to every other entry of this interpreter's one."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    target.mkdir()
    for entry in purelib.iterdir():
        if not entry.name.lower().startswith("geoclip"):
            (target / entry.name).symlink_to(entry)
    return target


@pytest.mark.slow
def test_without_geoclip_a_point_tower_checkpoint_embeds_text_and_names_the_install_for_a_point(tiny, tmp_path):
    """GeoCLIP loads at the first point, so a model with the tower serves text and images where geoclip is not
    installed; a point query is a one-line error naming the install command, and writes nothing."""
    folder = tiny.save(tmp_path / "mini")
    site = _site_without_geoclip(tmp_path / "site")
    src = Path(__file__).resolve().parents[2] / "src"
    code = ("import site, sys; site.addsitedir(sys.argv.pop(1)); sys.path.insert(0, sys.argv.pop(1)); "
            "from geovec.cli.main import main; sys.argv[0] = 'geovec'; main()")
    env = {**os.environ, "GEOVEC_HOME": str(tmp_path / "home")}

    def embed(item: object, name: str) -> subprocess.CompletedProcess:
        inputs = tmp_path / f"{name}.jsonl"
        inputs.write_text(json.dumps(item) + "\n")
        command = [sys.executable, "-S", "-c", code, str(site), str(src), "embed", str(inputs), "-o",
                   str(tmp_path / f"{name}.npy"), "--model", "geovec-mini", "--model-path", str(folder)]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)

    text = embed("a harbour", "text")
    assert text.returncode == 0, text.stderr
    assert np.load(tmp_path / "text.npy").shape == (1, tiny.dim)
    point = embed({"segments": [{"type": "point", "lat": 51.9, "lon": 4.5}]}, "point")
    assert point.returncode == 2, point.stderr
    expected = ("error: point_tower 'geoclip' needs the pip package geoclip, which is not installed: "
                "install it with pip install --no-deps geoclip==1.3.0")
    assert point.stderr.strip().splitlines()[-1:] == [expected]
    assert not (tmp_path / "point.npy").exists()
    probe = ("import site, sys; site.addsitedir(sys.argv[1]); import importlib.util as u; "
             "print(u.find_spec('geovec'), u.find_spec('geoclip'))")
    check = subprocess.run([sys.executable, "-S", "-c", probe, str(site)], capture_output=True, text=True, env=env,
                           timeout=60, check=True)
    assert check.stdout.split()[-1] == "None"  # the environment really lacks geoclip (and has geovec)


def test_location_encoder_loads_upstreams_weights_strictly():
    """A state dict that misses a capsule is refused: our module has exactly upstream's parameters."""
    _geoclip_root()
    state = dict(frozen_location_encoder().state_dict())
    state.pop("LocEnc2.head.0.bias")
    with pytest.raises(RuntimeError, match="LocEnc2.head.0.bias"):
        LocationEncoder().load_state_dict(state, strict=True)
