"""Training configuration: one dataclass, loaded from YAML, overridable with ``--set key=value``.

Relative paths in a YAML file (``train_files``, ``init``, ``output_dir``) are resolved against the YAML file's
folder, so a recipe and its data can move together; paths given on the command line are relative to the current
directory; ``$VARS`` and ``~`` are expanded. Unknown keys and ill-typed values are refused with the key's name.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import yaml

from geovec.errors import GeovecInputError
from geovec.inputs import check_utf8

PATH_KEYS = ("train_files", "init", "output_dir", "validation_file", "feature_cache")
# Keys a resumed run may change: they do not affect the optimisation trajectory.
RESUMABLE_CHANGES = frozenset({"max_steps", "log_every", "save_every", "keep_last", "output_dir", "feature_cache",
                               "validate_every"})


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    # parameter-name regexes kept fully trainable beside the adapters (geovec-mini's stem starts from scratch)
    fully_trainable: list[str] = field(default_factory=lambda: [r"^vision\."])


@dataclass
class TrainConfig:
    train_files: list[str]  # TrainingExample JSONL files
    output_dir: str = "runs/geovec"
    architecture: str = "geovec-mini"
    init: Optional[str] = None  # a saved encoder folder to start from instead of the architecture's initial model
    model_options: dict[str, Any] = field(default_factory=dict)  # for the initial model, e.g. {num_layers: 2}
    task_weights: dict[str, float] = field(default_factory=dict)  # x task size; missing tasks weigh 1, 0 drops one
    batch_size: int = 32  # global, split over processes under `accelerate launch`
    mini_batch_size: Optional[int] = None  # GradCache mini-batch; None: plain InfoNCE
    hard_negatives: int = 0  # per example, taken from TrainingExample.negatives
    task_hard_negatives: dict[str, int] = field(default_factory=dict)  # task -> its own hard_negatives
    temperature: float = 0.05
    learnable_temperature: bool = False
    symmetric: bool = True
    gather_across_processes: bool = True  # several processes: negatives from the global batch, not each slice
    max_steps: int = 1000
    lr: float = 5e-5
    lr_multipliers: dict[str, float] = field(default_factory=dict)  # parameter-name regex -> lr factor
    weight_decay: float = 0.01
    warmup_steps: int = 50
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False
    freeze: list[str] = field(default_factory=list)  # parameter-name regexes to keep fixed
    lora: Optional[LoraSettings] = None
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 0
    log_every: int = 10
    save_every: int = 200
    keep_last: int = 2
    # held-out retrieval split (geovec train-data build --validation-images): mR every validate_every steps and at
    # the end, logged; the best-scoring encoder is kept in OUT/best
    validation_file: Optional[str] = None
    validate_every: int = 0  # 0: only at the end
    # a folder caching the frozen vision trunk's output per image (geovec-mini with an EfficientNet tower): an image
    # then costs only the trainable top of the tower; the same result as computing the trunk afresh
    feature_cache: Optional[str] = None

    def __post_init__(self) -> None:
        check_finite(self)
        check_patterns(self)
        checks = [("train_files", bool(self.train_files), "needs at least one JSONL file"),
                  ("batch_size", self.batch_size >= 2, "must be >= 2 (in-batch negatives)"),
                  ("max_steps", self.max_steps >= 1, "must be >= 1"),
                  ("save_every", self.save_every >= 1, "must be >= 1"),
                  ("log_every", self.log_every >= 1, "must be >= 1"),
                  ("keep_last", self.keep_last >= 1, "must be >= 1"),
                  ("validate_every", self.validate_every >= 0, "must be >= 0"),
                  ("hard_negatives", self.hard_negatives >= 0, "must be >= 0"),
                  ("task_hard_negatives", all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in self.task_hard_negatives.values()), "counts must be whole >= 0"),
                  ("seed", 0 <= self.seed < 2**32, "must be between 0 and 2**32 - 1"),
                  ("mixed_precision", self.mixed_precision in ("no", "fp16", "bf16"), "must be no, fp16 or bf16"),
                  ("mini_batch_size", self.mini_batch_size is None or self.mini_batch_size >= 1, "must be >= 1"),
                  ("temperature", self.temperature > 0, "must be > 0"),
                  ("task_weights", all(w >= 0 for w in self.task_weights.values()), "weights must be >= 0"),
                  ("lr", self.lr > 0, "must be > 0"),
                  ("lr_multipliers", all(m > 0 for m in self.lr_multipliers.values()), "factors must be > 0"),
                  ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
                  ("warmup_steps", self.warmup_steps >= 0, "must be >= 0"),
                  ("max_grad_norm", self.max_grad_norm >= 0, "must be >= 0 (0: no clipping)"),
                  ("lora", self.lora is None or (self.lora.r >= 1 and self.lora.alpha > 0
                                                 and 0 <= self.lora.dropout < 1 and bool(self.lora.target_modules)),
                   "needs r >= 1, alpha > 0, 0 <= dropout < 1 and at least one target module")]
        for key, ok, problem in checks:
            if not ok:
                raise GeovecInputError(f"config.{key}", f"{problem}, got {getattr(self, key)!r}")

    def negatives_for(self, task: str) -> int:
        """How many hard negatives an example of ``task`` brings (``task_hard_negatives``, else ``hard_negatives``)."""
        return self.task_hard_negatives.get(task, self.hard_negatives)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _floats(value: Any, name: str) -> Iterator[tuple[str, float]]:
    """Every float inside a config value, named by its key path (``lr_multipliers.^vision``, ``lora.dropout``)."""
    if dataclasses.is_dataclass(value):
        for item in dataclasses.fields(value):
            yield from _floats(getattr(value, item.name), f"{name}.{item.name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _floats(item, f"{name}.{key}")
    elif isinstance(value, list):
        for position, item in enumerate(value):
            yield from _floats(item, f"{name}[{position}]")
    elif isinstance(value, float):
        yield name, value


def check_finite(config: TrainConfig) -> None:
    """Refuse nan and inf anywhere in a recipe: ``lr: .inf`` passes ``> 0`` but trains an encoder of NaNs."""
    for name, value in _floats(config, "config"):
        if not math.isfinite(value):
            raise GeovecInputError(name, f"must be a finite number, got {value!r}")


def check_patterns(config: TrainConfig) -> None:
    """Compile the parameter-name regexes now, so a typo fails before a model is built or a file is written."""
    patterns = [(f"config.freeze[{i}]", p) for i, p in enumerate(config.freeze)]
    patterns += [(f"config.lr_multipliers.{p}", p) for p in config.lr_multipliers]
    if config.lora is not None:
        patterns += [(f"config.lora.fully_trainable[{i}]", p) for i, p in enumerate(config.lora.fully_trainable)]
    for name, pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise GeovecInputError(name, f"invalid regular expression {pattern!r}: {exc}") from None


def check_paths(config: TrainConfig) -> None:
    """The files a recipe reads must exist and its output must be a folder, checked before anything is written
    (a run that fails here leaves no half-made output folder behind)."""
    for position, name in enumerate(config.train_files):
        if not Path(name).is_file():
            raise GeovecInputError(f"config.train_files[{position}]", f"no such file: {name}")
    if config.validation_file and not Path(config.validation_file).is_file():
        raise GeovecInputError("config.validation_file", f"no such file: {config.validation_file}")
    if config.init and not Path(config.init).is_dir():
        raise GeovecInputError("config.init", f"no such encoder folder: {config.init}")
    for key in ("output_dir", "feature_cache"):
        folder = getattr(config, key)
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise GeovecInputError(f"config.{key}", f"{folder} is a file, not a folder: choose another path")


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: where (1-based line and column) and what, as PyYAML words it."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"YAML syntax error{where}: {problem}".split())


def read_recipe(path: Path) -> dict[str, Any]:
    """The mapping a recipe file holds; a missing, unreadable, non-UTF-8 or malformed file is one clear error."""
    name = f"recipe {path}"
    if path.is_dir():
        raise GeovecInputError(name, "is a folder; give the recipe's YAML file")
    if not path.is_file():
        raise GeovecInputError(name, "no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise GeovecInputError(name, f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): "
                                     "save it as UTF-8") from None
    except OSError as exc:
        raise GeovecInputError(name, f"cannot read it: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GeovecInputError(name, yaml_problem(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise GeovecInputError(name, "must hold a mapping of keys to values")
    return data


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """Coerce ``value`` to the field's annotated type (ints may stand for floats) or raise naming ``key``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _check_type(key, value, next(a for a in args if a is not type(None)))
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise GeovecInputError(f"config.{key}", f"expected a list, got {value!r}")
        return [_check_type(f"{key}[{i}]", v, args[0]) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise GeovecInputError(f"config.{key}", f"expected a mapping, got {value!r}")
        return {str(k): _check_type(f"{key}.{k}", v, args[1]) for k, v in value.items()}
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:  # ints stand for floats; PyYAML reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
        raise GeovecInputError(f"config.{key}", f"expected {annotation.__name__}, got {value!r}")
    return value


def _build(cls: type, data: Any, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise GeovecInputError(f"config{'.' + prefix if prefix else ''}", f"expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise GeovecInputError(f"config.{where}", f"unknown key; known keys: {', '.join(names)}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise GeovecInputError(f"config.{missing[0]}", "is required")
    values = {key: _check_type(f"{prefix}.{key}" if prefix else key, value, hints[key]) for key, value in data.items()}
    return cls(**values)


def _resolve(value: Any, base: Path) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]
    path = Path(os.path.expandvars(str(value))).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], YAML-parsed value): ``--set lr=1e-4``, ``--set lora.r=16``, ``--set freeze=[x]``."""
    check_utf8("--set", text)
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise GeovecInputError("--set", f"expected KEY=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise GeovecInputError(f"--set {key}", f"cannot parse value {raw!r}: {yaml_problem(exc)}") from None
    return key.strip().split("."), value


def load_config(path: str | Path, overrides: Sequence[str] = (), output_dir: str | Path | None = None) -> TrainConfig:
    """The effective config: the YAML file, then ``--set`` overrides, then ``--output``."""
    path = Path(path)
    data = read_recipe(path)
    for key in PATH_KEYS:
        if key in data:
            data[key] = _resolve(data[key], path.parent.resolve())
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] in PATH_KEYS:
            value = _resolve(value, Path.cwd())
        target = data
        for part in keys[:-1]:  # `--set lora.r=16` also switches LoRA on (with defaults for the rest)
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[keys[-1]] = value
    if output_dir is not None:
        data["output_dir"] = _resolve(str(output_dir), Path.cwd())
    data.setdefault("output_dir", _resolve(TrainConfig.output_dir, Path.cwd()))
    if isinstance(data.get("train_files"), str):
        data["train_files"] = [data["train_files"]]
    return _build(TrainConfig, data)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A config from an already-resolved mapping (what ``TrainConfig.to_dict`` gave, e.g. the saved one)."""
    return _build(TrainConfig, data)


def changed_keys(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ and would change the trajectory of a resumed run."""
    return sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k) and k not in RESUMABLE_CHANGES)

