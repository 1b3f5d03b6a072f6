"""The inference copy of geovec-mini's frozen EfficientNet trunk (batch norm folded, padding fixed, optionally in
ONNX Runtime) computes what the original modules compute, on real RSICD images, and training never uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from geovec.config import data_dir
from geovec.errors import GeovecError
from geovec.models.folded_trunk import onnxruntime_available
from geovec.models.vision import LITE_MEAN, LITE_STD, EfficientNetTower

RUNTIMES = ["folded", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    not onnxruntime_available(), reason="the onnx extra (onnxruntime, onnx) is not installed"))]


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    folder = data_dir() / "rsicd" / "images"
    if not folder.is_dir():
        pytest.skip(f"RSICD images not found under {folder}")
    images = [Image.open(folder / name).convert("RGB").resize((224, 224), Image.BICUBIC)
              for name in ("airport_1.jpg", "bridge_2.jpg", "beach_3.jpg", "forest_4.jpg", "river_5.jpg")]
    values = np.stack([np.asarray(image, dtype=np.float32) / 255 for image in images]).transpose(0, 3, 1, 2)
    mean, std = np.array(LITE_MEAN, np.float32)[:, None, None], np.array(LITE_STD, np.float32)[:, None, None]
    return torch.from_numpy((values - mean) / std)


@pytest.fixture(scope="module")
def tower() -> EfficientNetTower:
    return EfficientNetTower("efficientnet-lite0", 224, trainable_blocks=2, hidden=384).eval()


def _trunk(tower: EfficientNetTower, pixels: torch.Tensor, runtime: str) -> torch.Tensor:
    tower.trunk_runtime = runtime
    try:
        with torch.inference_mode():
            return tower.trunk(pixels)
    finally:
        tower.trunk_runtime = "auto"


def _assert_float32_close(found: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float32 rounding, relative to the features' magnitude (they reach ~15 after ReLU6 + skips)."""
    assert found.shape == expected.shape
    error = (found - expected).abs().max().item()
    assert error <= 1e-5 * expected.abs().max().item(), error


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inference_trunk_equals_the_original_modules_on_real_images(tower, pixels, runtime):
    expected = _trunk(tower, pixels, "modules")
    _assert_float32_close(_trunk(tower, pixels, runtime), expected)
    # a batch of 5 is not a multiple of the CPU chunk (4): every image still gets its own features
    _assert_float32_close(_trunk(tower, pixels[3:], runtime), expected[3:])


def test_a_frozen_head_conv_folds_too(pixels):
    """trainable_blocks=0 freezes the 1x1 head convolution and its batch norm as well."""
    tower = EfficientNetTower("efficientnet-lite0", 224, trainable_blocks=0, hidden=384).eval()
    _assert_float32_close(_trunk(tower, pixels[:2], "folded"), _trunk(tower, pixels[:2], "modules"))


def test_training_runs_the_original_modules(tower, pixels):
    expected = _trunk(tower, pixels[:2], "modules")
    trained = EfficientNetTower("efficientnet-lite0", 224, trainable_blocks=2, hidden=384).train()
    assert trained.inference_runtime(pixels.device) == "modules"
    assert torch.equal(trained.trunk(pixels[:2]), expected)  # bit for bit: the same modules ran
    assert trained.folded.stamp is None  # the folded copy was never even built


def test_the_folded_copy_follows_changed_weights(pixels):
    """Loading other statistics or weights into the frozen modules refreshes the folded copy before its next use."""
    tower = EfficientNetTower("efficientnet-lite0", 224, trainable_blocks=2, hidden=384).eval()
    before = _trunk(tower, pixels[:2], "folded")
    with torch.no_grad():
        tower.frozen[3]._bn1.running_mean.add_(0.5)
        tower.frozen[0][0].weight.mul_(1.1)
    after = _trunk(tower, pixels[:2], "folded")
    _assert_float32_close(after, _trunk(tower, pixels[:2], "modules"))
    assert (after - before).abs().max() > 0.1


def test_an_unknown_trunk_runtime_is_refused(tower, pixels):
    with pytest.raises(GeovecError, match="trunk_runtime must be one of auto, modules, folded, onnxruntime"):
        _trunk(tower, pixels[:1], "tensorrt")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_copied_tower_builds_its_own_inference_trunk(tower, pixels, runtime):
    """Training deep-copies the model to merge LoRA adapters, possibly after evaluating it: the ONNX Runtime
    session (which cannot be copied) and the folded tensors stay behind, and the copy computes the same."""
    import copy

    expected = _trunk(tower, pixels[:2], runtime)
    copied = copy.deepcopy(tower)
    assert copied.folded.units is copied.frozen and copied.folded.stamp is None
    _assert_float32_close(_trunk(copied, pixels[:2], runtime), expected)


def _tower(tower: EfficientNetTower, pixels: torch.Tensor, runtime: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole tower's image tokens for ``pixels``, and the top's for their trunk features (cached features)."""
    tower.trunk_runtime = runtime
    try:
        with torch.inference_mode():
            return tower(pixels), tower.top(tower.trunk(pixels))
    finally:
        tower.trunk_runtime = "auto"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_inference_folds_the_trainable_units_too_and_computes_the_same_tokens(tower, pixels, runtime):
    """In eval mode the last MBConv block and the head conv run batch-norm-folded (with ONNX Runtime: in the
    trunk's graph), never through their modules; the image tokens equal the modules' up to float32 rounding."""
    expected, expected_top = _tower(tower, pixels, "modules")
    calls = []
    hooks = [unit.register_forward_hook(lambda *_: calls.append(1)) for unit in tower.trainable]
    try:
        found, found_top = _tower(tower, pixels, runtime)
    finally:
        for hook in hooks:
            hook.remove()
    assert not calls
    _assert_float32_close(found, expected)
    _assert_float32_close(found_top, expected_top)


def test_training_runs_the_trainable_modules_with_gradients(pixels):
    trained = EfficientNetTower("efficientnet-lite0", 224, trainable_blocks=2, hidden=384).train()
    calls = []
    hooks = [unit.register_forward_hook(lambda *_: calls.append(1)) for unit in trained.trainable]
    trained(pixels[:2]).sum().backward()
    for hook in hooks:
        hook.remove()
    assert len(calls) == len(trained.trainable)
    assert all(p.grad is not None for p in trained.trainable.parameters())
    assert trained.folded_top.stamp is None and trained.onnx_backbone.stamp is None  # never built


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_folded_top_follows_trained_weights(pixels, runtime):
    """After a training step changes the trainable units, evaluation computes with the new weights."""
    tower = EfficientNetTower("efficientnet-lite0", 224, trainable_blocks=2, hidden=384).eval()
    before, _ = _tower(tower, pixels[:2], runtime)
    with torch.no_grad():
        tower.trainable[0]._bn2.running_var.mul_(2.0)
        tower.trainable[1][0].weight.mul_(1.2)
    after, after_top = _tower(tower, pixels[:2], runtime)
    expected, expected_top = _tower(tower, pixels[:2], "modules")
    _assert_float32_close(after, expected)
    _assert_float32_close(after_top, expected_top)
    assert (after - before).abs().max() > 1e-3
