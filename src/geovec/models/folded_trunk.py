"""An inference-only copy of EfficientNet-Lite's frozen units, for CPU serving and ingest.

Why: on a CPU the frozen trunk is most of an image's cost, and in the original modules every convolution is
followed by a separate batch-norm pass and preceded by a zero-padding copy, each a memory-bound sweep over the
whole activation. Here batch norm is folded into the convolution's weights and bias (from the running statistics,
once), the TensorFlow-style "same" padding becomes the convolution's own padding where it is symmetric (an
explicit pad remains only for the stride-2 convolutions, whose padding is one-sided), and ReLU6 runs in place.
The original modules stay what training uses; this copy is rebuilt whenever any frozen tensor changes (loading,
another device or precision), detected, as in ``geovec.models.bert_inference``, by storage and version counter.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from geovec.errors import GeovecError


@dataclass(frozen=True)
class FoldedConv:
    """A convolution with its batch norm folded in, its padding fixed, and whether ReLU6 follows."""

    weight: torch.Tensor
    bias: torch.Tensor
    stride: tuple[int, int]
    groups: int
    padding: int  # symmetric padding done by the convolution itself
    pad: tuple[int, int, int, int] | None  # one-sided "same" padding (left, right, top, bottom), done before
    relu6: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        return F.hardtanh_(x, 0.0, 6.0) if self.relu6 else x


@dataclass(frozen=True)
class FoldedBlock:
    """An MBConv block (no squeeze-excite, as in every Lite model): expand, depthwise, project, + skip."""

    convs: tuple[FoldedConv, ...]
    residual: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv in self.convs:
            y = conv(y)
        return y.add_(x) if self.residual else y


def fold_conv(conv: nn.Conv2d, norm: nn.BatchNorm2d, relu6: bool) -> FoldedConv:
    """``norm(conv(x))`` as one convolution; computed in float64 so that folding adds no error of its own."""
    if conv.dilation != (1, 1) or conv.padding not in ((0, 0), "valid"):
        raise GeovecError(f"cannot fold {conv}: only undilated convolutions with 'same' padding modules are folded")
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    bias = norm.bias.double() - norm.running_mean.double() * scale
    if conv.bias is not None:
        bias = bias + conv.bias.double() * scale
    weight = (conv.weight.double() * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype)
    weight = weight.contiguous(memory_format=torch.channels_last)
    padding, pad = same_padding(conv)
    return FoldedConv(weight, bias.to(conv.weight.dtype), tuple(conv.stride), conv.groups, padding, pad, relu6)


def same_padding(conv: nn.Conv2d) -> tuple[int, tuple[int, int, int, int] | None]:
    """The padding of a ``Conv2dStaticSamePadding`` (fixed for its image size when it was built): as the
    convolution's own padding if symmetric, else as an explicit pad."""
    module = getattr(conv, "static_padding", None)
    sides = tuple(module.padding) if isinstance(module, nn.ZeroPad2d) else (0, 0, 0, 0)
    if len(set(sides)) == 1:
        return sides[0], None
    return 0, sides  # type: ignore[return-value]


def fold_unit(unit: nn.Module) -> FoldedConv | FoldedBlock:
    """One unit of ``EfficientNetTower``: a stem/head ``Sequential(conv, bn, ReLU6)`` or an ``MBConvBlock``."""
    if isinstance(unit, nn.Sequential):
        conv, norm, act = unit
        return fold_conv(conv, norm, relu6=_is_relu6(act))
    if getattr(unit, "has_se", False) or not _is_relu6(unit._swish):
        raise GeovecError("only EfficientNet-Lite blocks (ReLU6, no squeeze-excite) can be folded")
    args = unit._block_args
    convs = [fold_conv(unit._expand_conv, unit._bn0, True)] if args.expand_ratio != 1 else []
    convs += [fold_conv(unit._depthwise_conv, unit._bn1, True), fold_conv(unit._project_conv, unit._bn2, False)]
    residual = bool(args.id_skip) and _stride(args.stride) == 1 and args.input_filters == args.output_filters
    return FoldedBlock(tuple(convs), residual)


def _is_relu6(module: nn.Module) -> bool:
    return isinstance(module, nn.ReLU6)


def _stride(stride: int | Sequence[int]) -> int:
    return stride if isinstance(stride, int) else max(stride)


class FoldedTrunk:
    """The folded copy of ``units``, refreshed whenever one of their tensors has changed since it was made."""

    def __init__(self, units: nn.ModuleList) -> None:
        self.units = units
        self.stamp: tuple | None = None
        self.folded: list[FoldedConv | FoldedBlock] = []

    def __getstate__(self) -> dict:
        """Copies (``copy.deepcopy`` of a model, pickling) carry the modules only; the copy folds afresh."""
        return {"units": self.units, "stamp": None, "folded": []}

    def current_stamp(self) -> tuple:
        tensors = chain(self.units.parameters(), self.units.buffers())
        return tuple((t.data_ptr(), t._version, t.dtype) for t in tensors)

    @torch.no_grad()
    def refreshed(self) -> list[FoldedConv | FoldedBlock]:
        """The folded units for the weights as they are now."""
        stamp = self.current_stamp()
        if stamp != self.stamp:
            self.folded = [fold_unit(unit) for unit in self.units]
            self.stamp = stamp
        return self.folded

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.refreshed():
            x = unit(x)
        return x


def onnx_graph(folded: Sequence[FoldedConv | FoldedBlock]) -> bytes:
    """The folded units as a serialized ONNX model (float32 NCHW in, NCHW out, any batch): built directly from
    the folded tensors in milliseconds, where ``torch.onnx.export`` takes seconds and more dependencies."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    weights: list = []

    def conv(x: str, unit: FoldedConv) -> str:
        name = f"c{len(weights) // 2}"
        weights.extend([numpy_helper.from_array(unit.weight.detach().float().cpu().contiguous().numpy(), f"{name}.w"),
                        numpy_helper.from_array(unit.bias.detach().float().cpu().numpy(), f"{name}.b")])
        left, right, top, bottom = unit.pad or (unit.padding,) * 4
        nodes.append(helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [name], group=unit.groups,
                                      strides=list(unit.stride), pads=[top, left, bottom, right],
                                      kernel_shape=list(unit.weight.shape[2:])))
        if not unit.relu6:
            return name
        nodes.append(helper.make_node("Clip", [name, "zero", "six"], [f"{name}.r"]))
        return f"{name}.r"

    x = "pixels"
    for unit in folded:
        if isinstance(unit, FoldedConv):
            x = conv(x, unit)
            continue
        y = x
        for part in unit.convs:
            y = conv(y, part)
        if unit.residual:
            nodes.append(helper.make_node("Add", [y, x], [f"{y}.skip"]))
            y = f"{y}.skip"
        x = y
    nodes.append(helper.make_node("Identity", [x], ["features"]))
    weights += [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
                helper.make_tensor("six", TensorProto.FLOAT, [], [6.0])]
    graph = helper.make_graph(nodes, "geovec-trunk", [helper.make_tensor_value_info(
        "pixels", TensorProto.FLOAT, ["batch", "channels", "height", "width"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, None)], initializer=weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


class OnnxTrunk:
    """The folded trunk run by ONNX Runtime (measured faster on CPUs, see benchmarks/bench_ingest_images.py),
    rebuilt with the folded copy. Its thread pool does not spin between calls, so it leaves the cores to the
    transformer that runs next."""

    def __init__(self, folded: FoldedTrunk) -> None:
        self.folded = folded
        self.stamp: tuple | None = None
        self.session = None

    def __getstate__(self) -> dict:
        """An ONNX Runtime session cannot be copied or pickled: a copy builds its own."""
        return {"folded": self.folded, "stamp": None, "session": None}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        stamp = self.folded.current_stamp()
        if stamp != self.stamp:
            self.session = self._session()
            self.stamp = stamp
        pixels = x.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {"pixels": pixels})[0])  # type: ignore[union-attr]

    def _session(self):  # type: ignore[no-untyped-def]
        if not onnxruntime_available():
            raise GeovecError("trunk_runtime 'onnxruntime' needs the onnx extra: pip install 'geovec[onnx]'")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(onnx_graph(self.folded.refreshed()), options,
                                            providers=["CPUExecutionProvider"])


@functools.cache
def onnxruntime_available() -> bool:
    """Whether the optional ``onnx`` extra (onnxruntime + onnx) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))
