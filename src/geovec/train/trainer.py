"""Contrastive training of any ``TrainableEncoder`` on ``TrainingExample`` files, on HF accelerate.

``accelerate`` owns the device, mixed precision and distribution (run under ``accelerate launch`` / ``torchrun``
for DDP, FSDP or DeepSpeed); this module owns the data schedule, the optimisation and checkpoints.

Batches are drawn from one task at a time (in-batch negatives stay of one kind), the task with probability
proportional to ``task_weight x task size``. The schedule is a pure function of the seed, the step and how many
batches each task has given so far, so a checkpoint (model, optimizer, scheduler, loss, RNG states + that small
data position) resumes *exactly*: step k+1 after a resume is bit-identical to step k+1 of an uninterrupted run.

Output folder: ``config.yaml`` (the effective config), ``train_log.jsonl``, ``checkpoints/step-N/`` (the last
``keep_last``, each written as ``step-N.tmp`` then renamed), ``final/`` (``encoder.save``; load it with
``load_encoder`` or ``--model geovec-mini --model-path OUT/final``) and, with a ``validation_file`` (or another
``Evaluator``, see ``geovec.train.validation``), ``best/``: the encoder of the validation with the highest metric
(mR by default; the log's ``validation`` records are the curve).

``train`` is ``setup`` (folder, accelerate, data, model, optimizer, resume), then per step ``TrainingRun.train_step``,
``log_step`` every ``log_every``, ``validate`` every ``validate_every`` and a checkpoint every ``save_every``.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from geovec.errors import GeovecError, GeovecInputError
from geovec.fileio import write_text_atomic
from geovec.inputs import Interleaved, image_crops, image_files
from geovec.models.trainable import TrainableEncoder, architecture_class, load_encoder
from geovec.progress import progress_bar
from geovec.train.config import TrainConfig, changed_keys, check_paths, read_recipe
from geovec.train.examples import TrainingExample, read_examples
from geovec.train.losses import CachedInfoNCELoss, ContrastiveOutput, InfoNCELoss
from geovec.train.validation import Evaluator, HeldOutValidator

STATE_FILE = "trainer_state.json"
LOG_FILE = "train_log.jsonl"


def check_tasks(by_task: dict[str, list[TrainingExample]], keys: Iterable[str], setting: str) -> None:
    """Every task a per-task setting (``config.<setting>``) names must have examples: a typo is an error."""
    for task in keys:
        if task not in by_task:
            raise GeovecInputError(f"config.{setting}.{task}", f"no examples of this task in train_files "
                                   f"(tasks: {', '.join(sorted(by_task))})")


class TaskSampler:
    """A deterministic, resumable stream of single-task batches (see the module docstring)."""

    def __init__(self, by_task: dict[str, list[TrainingExample]], weights: dict[str, float], batch_size: int,
                 seed: int) -> None:
        check_tasks(by_task, weights, "task_weights")
        self.tasks = sorted(t for t in by_task if weights.get(t, 1.0) > 0)
        for task in self.tasks:
            if len(by_task[task]) < batch_size:
                raise GeovecInputError(f"task {task}", f"has {len(by_task[task])} examples, fewer than batch_size "
                                       f"{batch_size}; give more examples, a smaller batch or weight 0")
        if not self.tasks:
            raise GeovecInputError("config.task_weights", "every task has weight 0")
        self.by_task, self.batch_size, self.seed = by_task, batch_size, seed
        mass = np.array([weights.get(t, 1.0) * len(by_task[t]) for t in self.tasks])
        self.probabilities = mass / mass.sum()
        self.batches_drawn = {t: 0 for t in self.tasks}

    def next_batch(self, step: int) -> tuple[str, list[TrainingExample]]:
        task_index = np.random.default_rng([self.seed, step]).choice(len(self.tasks), p=self.probabilities)
        task = self.tasks[task_index]
        examples = self.by_task[task]
        per_epoch = len(examples) // self.batch_size  # the last partial batch of an epoch is dropped
        epoch, position = divmod(self.batches_drawn[task], per_epoch)
        order = np.random.default_rng([self.seed, task_index, epoch]).permutation(len(examples))
        self.batches_drawn[task] += 1
        return task, [examples[i] for i in order[position * self.batch_size:(position + 1) * self.batch_size]]

    def epochs(self) -> float:
        """Examples drawn / examples available (over the tasks with weight)."""
        total = sum(len(self.by_task[t]) for t in self.tasks)
        return sum(self.batches_drawn.values()) * self.batch_size / total

    def state_dict(self) -> dict[str, Any]:
        return {"batches_drawn": dict(self.batches_drawn)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches_drawn.update(state["batches_drawn"])


def load_examples(files: Iterable[str]) -> dict[str, list[TrainingExample]]:
    """All examples of the given JSONL files (``check_paths`` saw they exist), grouped by task (file order kept
    within a task)."""
    by_task: dict[str, list[TrainingExample]] = {}
    for name in files:
        for example in read_examples(name):
            by_task.setdefault(example.task, []).append(example)
    if not by_task:
        raise GeovecInputError("config.train_files", "hold no training examples")
    return by_task


def build_encoder(config: TrainConfig) -> TrainableEncoder:
    """The starting encoder: a saved folder (``init``) or the architecture's own initial model."""
    if config.init:
        encoder = load_encoder(config.init)
        if encoder.architecture != config.architecture:
            raise GeovecInputError("config.init", f"{config.init} holds a {encoder.architecture!r} encoder, but "
                                   f"config.architecture is {config.architecture!r}")
        if config.model_options:  # parts the saved model lacks, e.g. geovec-mini's point tower
            add_parts = getattr(encoder, "add_parts", None)
            if add_parts is None:
                raise GeovecInputError("config.model_options", f"a saved {encoder.architecture} encoder takes its "
                                                               "settings from its folder: remove model_options")
            try:
                add_parts(**config.model_options)
            except GeovecError as exc:
                raise GeovecInputError("config.model_options", str(exc)) from None
        return encoder
    try:
        cls = architecture_class(config.architecture)
    except GeovecError as exc:
        raise GeovecInputError("config.architecture", str(exc)) from None
    if not hasattr(cls, "initial"):
        raise GeovecInputError("config.init", f"architecture {config.architecture!r} has no built-in initial "
                               "model: give a saved encoder folder")
    return cls.initial(**config.model_options)


def _matching(model: torch.nn.Module, patterns: list[str], key: str) -> list[torch.nn.Parameter]:
    """Parameters whose names match any regex; a pattern matching nothing is an error (a typo freezes nothing)."""
    named = list(model.named_parameters())
    for pattern in patterns:
        if not any(re.search(pattern, name) for name, _ in named):
            raise GeovecInputError(f"config.{key}", f"pattern {pattern!r} matches no parameter "
                                   f"(e.g. {', '.join(name for name, _ in named[:3])})")
    return [p for name, p in named if any(re.search(pattern, name) for pattern in patterns)]


def adapt_model(encoder: TrainableEncoder, config: TrainConfig) -> torch.nn.Module:
    """Gradient checkpointing, LoRA (peft) and freezing; returns the module to train."""
    from transformers import PreTrainedModel

    if config.gradient_checkpointing:
        for module in encoder.modules():
            if isinstance(module, PreTrainedModel) and module.supports_gradient_checkpointing:
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model: torch.nn.Module = encoder
    if config.lora is not None:
        from peft import LoraConfig, get_peft_model
        from peft.utils.error import NoMatchingPeftModuleError

        lora = config.lora
        try:
            model = get_peft_model(encoder, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                       target_modules=lora.target_modules))
        except NoMatchingPeftModuleError as exc:  # a module name that matches nothing (a typo adapts nothing)
            raise GeovecInputError("config.lora.target_modules", f"{lora.target_modules} match no module of the "
                                   f"encoder ({' '.join(str(exc).split())})") from None
        for parameter in _matching(encoder, lora.fully_trainable, "lora.fully_trainable"):
            parameter.requires_grad_(True)
    for parameter in _matching(encoder, config.freeze, "freeze"):
        parameter.requires_grad_(False)
    return model


def _param_groups(encoder: torch.nn.Module, loss: torch.nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: ``lr_multipliers`` by name regex (names as in the bare encoder, also under LoRA; first match
    wins), no weight decay on biases and norms."""
    _matching(encoder, list(config.lr_multipliers), "lr_multipliers")
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, parameter in [*encoder.named_parameters(), *loss.named_parameters()]:
        if not parameter.requires_grad:
            continue
        factor = next((f for pattern, f in config.lr_multipliers.items() if re.search(pattern, name)), 1.0)
        decay = 0.0 if parameter.ndim < 2 else config.weight_decay
        groups.setdefault((factor, decay), []).append(parameter)
    if not groups:
        raise GeovecInputError("config.freeze", "leaves no trainable parameter")
    return [{"params": params, "lr": config.lr * factor, "weight_decay": decay}
            for (factor, decay), params in groups.items()]


@dataclass
class Checkpoints:
    """``checkpoints/step-N`` folders, written to ``step-N.tmp`` and renamed, the last ``keep`` kept."""

    root: Path
    keep: int

    def latest(self) -> Path | None:
        found = sorted((int(p.name[5:]), p) for p in self.root.glob("step-*")
                       if p.is_dir() and p.name[5:].isdigit() and (p / STATE_FILE).is_file())
        return found[-1][1] if found else None

    def save(self, accelerator: Any, step: int, state: dict[str, Any]) -> Path:
        final, tmp = self.root / f"step-{step}", self.root / f"step-{step}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            steps = sorted(int(p.name[5:]) for p in self.root.glob("step-*") if p.name[5:].isdigit())
            for old in steps[:-self.keep]:
                shutil.rmtree(self.root / f"step-{old}", ignore_errors=True)
        accelerator.wait_for_everyone()
        return final


class TrainLog:
    """``train_log.jsonl``: one JSON object per logged step; a resume drops lines past the checkpoint's step."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate(self, step: int) -> None:
        if self.enabled and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


def _features(examples: list[TrainingExample], hard_negatives: int) -> list[list]:
    return [[e.query for e in examples], [e.positive for e in examples],
            [n for e in examples for n in e.negatives[:hard_negatives]]]


def _inputs(by_task: dict[str, list[TrainingExample]], config: TrainConfig) -> list[Interleaved]:
    """Every input a training step can read (queries, positives and the hard negatives used)."""
    return [item for task, examples in by_task.items() for e in examples
            for item in (e.query, e.positive, *e.negatives[:config.negatives_for(task)])]


def _cache_features(encoder: TrainableEncoder, config: TrainConfig, inputs: list[Interleaved], show: bool) -> None:
    """The feature cache over every image file and box crop of ``inputs``."""
    paths, crops = image_files(inputs), image_crops(inputs)
    try:
        added = encoder.use_feature_cache(config.feature_cache, paths, show_progress=show, crops=crops)
    except GeovecError as exc:
        raise GeovecInputError("config.feature_cache", str(exc)) from None
    print(f"feature cache {config.feature_cache}: {len(paths)} images, {len(crops)} box crops, {added} computed now",
          flush=True)


@dataclass
class TrainingRun:
    """One run between steps: what ``setup`` builds, ``train_step`` advances, ``log_step`` reports and ``validate``
    scores (see ``train``, which calls them in that order)."""

    config: TrainConfig
    accelerator: Any
    encoder: TrainableEncoder
    model: torch.nn.Module  # the encoder as trained (LoRA-wrapped, accelerate-prepared)
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    sampler: TaskSampler
    checkpoints: Checkpoints
    log: TrainLog
    evaluator: Evaluator | None
    step: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"step": 0})  # step and metric of the best validation
    started: float = field(default_factory=time.perf_counter)
    window: list[tuple[float, float]] = field(default_factory=list)  # (loss, accuracy) since the last log line
    window_start: float = field(default_factory=time.perf_counter)

    @property
    def out(self) -> Path:
        return Path(self.config.output_dir)

    @property
    def finished(self) -> bool:
        return self.step >= self.config.max_steps

    def every(self, steps: int) -> bool:
        """True on every ``steps``-th step (never when 0) and on the last one."""
        return (steps > 0 and self.step % steps == 0) or self.step == self.config.max_steps

    def train_step(self) -> tuple[str, ContrastiveOutput]:
        """One optimisation step on the next batch; returns its task and the loss output."""
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        task, examples = self.sampler.next_batch(self.step)
        output = self.loss_fn(_features(examples[rank::world], self.config.negatives_for(task)), self.encoder,
                              self.model)
        self.accelerator.backward(output.loss)
        self.loss_fn.average_gradients_across_processes()
        if self.config.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.window.append((output.loss.item(), output.accuracy.item()))
        return task, output

    def log_step(self, task: str, output: ContrastiveOutput) -> None:
        """One ``train_log.jsonl`` record (and line on stdout) averaging the steps since the last one."""
        config, window = self.config, self.window
        seconds = time.perf_counter() - self.window_start
        record = {"step": self.step, "task": task, "loss": float(np.mean([w[0] for w in window])),
                  "accuracy": float(np.mean([w[1] for w in window])),
                  "temperature": float(output.temperature), "lr": self.scheduler.get_last_lr()[0],
                  "epoch": round(self.sampler.epochs(), 4), "steps_per_s": len(window) / seconds,
                  "examples_per_s": len(window) * config.batch_size / seconds,
                  "elapsed_s": round(time.perf_counter() - self.started, 2)}
        self.log.write(record)
        if self.accelerator.is_main_process:
            print(f"step {self.step}/{config.max_steps} loss {record['loss']:.4f} acc {record['accuracy']:.3f} "
                  f"T {record['temperature']:.4f} lr {record['lr']:.2e} "
                  f"{record['examples_per_s']:.1f} ex/s", flush=True)
        self.window, self.window_start = [], time.perf_counter()

    def validate(self) -> None:
        """Score the evaluator (main process), log it, and keep the encoder in ``OUT/best`` if it is the best."""
        assert self.evaluator is not None
        metric, best = self.evaluator.metric, self.best
        if self.accelerator.is_main_process:
            started = time.perf_counter()
            scores = self.evaluator.evaluate(self.encoder)
            if metric not in scores:
                raise GeovecError(f"the evaluator {type(self.evaluator).__name__} returned no {metric!r} score "
                                  f"(it returned: {', '.join(sorted(scores)) or 'nothing'})")
            self.log.write({"step": self.step, "validation": {k: round(v, 3) for k, v in scores.items()},
                            "validation_s": round(time.perf_counter() - started, 1)})
            improved = metric not in best or scores[metric] > best[metric]
            others = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if k != metric)
            print(f"step {self.step} validation {metric} {scores[metric]:.2f}{f' ({others})' if others else ''}"
                  f"{' best so far' if improved else ''}", flush=True)
            if improved:
                best = {"step": self.step, metric: scores[metric]}
        self.best = _broadcast(self.accelerator, best)
        if self.best["step"] == self.step:
            _save_final(self.accelerator, self.model, self.out / "best")

    def save_checkpoint(self) -> None:
        self.checkpoints.save(self.accelerator, self.step, {"step": self.step, "data": self.sampler.state_dict(),
                                                            "epoch": self.sampler.epochs(), "best": self.best})


def setup(config: TrainConfig, resume: bool = False, evaluator: Evaluator | None = None,
          show_progress: bool = True) -> TrainingRun:
    """Check the output folder, start accelerate, read the data, build encoder, loss and optimizer, and load the
    latest checkpoint when resuming."""
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    check_paths(config)
    out = Path(config.output_dir)
    checkpoints = Checkpoints(out / "checkpoints", config.keep_last)
    latest = checkpoints.latest()
    if latest is not None and not resume:
        raise GeovecError(f"{out} already holds checkpoints ({latest.name}): pass --resume to continue, or choose "
                          "another --output")
    saved_config = out / "config.yaml"
    if resume and latest is not None and saved_config.is_file():
        differing = changed_keys(read_recipe(saved_config), config.to_dict())
        if differing:
            raise GeovecError(f"cannot resume {out}: the config differs in {', '.join(differing)} "
                              f"(only {', '.join(sorted(('max_steps', 'log_every', 'save_every', 'keep_last')))} "
                              "may change)")

    accelerator = Accelerator(mixed_precision=config.mixed_precision,
                              dataloader_config=DataLoaderConfiguration(split_batches=True),
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    main = accelerator.is_main_process
    if config.batch_size % accelerator.num_processes:
        raise GeovecInputError("config.batch_size", f"{config.batch_size} does not split over "
                               f"{accelerator.num_processes} processes")
    by_task = load_examples(config.train_files)
    sampler = TaskSampler(by_task, config.task_weights, config.batch_size, config.seed)
    check_tasks(by_task, config.task_hard_negatives, "task_hard_negatives")
    if evaluator is None and config.validation_file:
        evaluator = HeldOutValidator(config.validation_file)
    set_seed(config.seed)
    encoder = build_encoder(config)
    if config.feature_cache:
        inputs = _inputs(by_task, config) + (evaluator.inputs() if evaluator else [])
        _cache_features(encoder.to(accelerator.device), config, inputs, main and show_progress)
    model = adapt_model(encoder, config)
    loss_options = dict(temperature=config.temperature, learnable_temperature=config.learnable_temperature,
                        symmetric=config.symmetric, gather_across_processes=config.gather_across_processes)
    loss_fn = (CachedInfoNCELoss(config.mini_batch_size, **loss_options) if config.mini_batch_size
               else InfoNCELoss(**loss_options)).to(accelerator.device)
    optimizer = torch.optim.AdamW(_param_groups(encoder, loss_fn, config), lr=config.lr)
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.max_steps)
    if main:  # only now: data, model and options all proved usable, so a refused run leaves no output folder
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(saved_config, config.to_yaml())
        print(f"effective config ({saved_config}):\n{config.to_yaml()}", flush=True)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    accelerator.register_for_checkpointing(loss_fn)

    run = TrainingRun(config, accelerator, encoder, model, loss_fn, optimizer, scheduler, sampler, checkpoints,
                      TrainLog(out / LOG_FILE, main), evaluator)
    if resume and latest is not None:
        accelerator.load_state(str(latest))
        state = json.loads((latest / STATE_FILE).read_text())
        run.step, run.best = state["step"], state.get("best", run.best)
        sampler.load_state_dict(state["data"])
        run.log.truncate(run.step)
        accelerator.print(f"resumed from {latest} at step {run.step}")
    elif main and run.log.path.exists():
        run.log.path.unlink()
    return run


def train(config: TrainConfig, resume: bool = False, show_progress: bool = True,
          evaluator: Evaluator | None = None) -> Path:
    """Run (or resume) training; returns the ``final`` encoder folder.

    ``evaluator`` is scored every ``validate_every`` steps and at the end, and its best step's encoder kept in
    ``OUT/best``; by default a ``HeldOutValidator`` on the config's ``validation_file``, if it names one.
    """
    run = setup(config, resume, evaluator, show_progress)
    run.started = run.window_start = time.perf_counter()
    run.model.train()
    with progress_bar(config.max_steps, "training", enabled=run.accelerator.is_main_process and show_progress) as bar:
        bar.advance(run.step)
        while not run.finished:
            task, output = run.train_step()
            bar.advance(1)
            if run.every(config.log_every):
                run.log_step(task, output)
            if run.evaluator and run.every(config.validate_every):
                run.validate()
            if run.every(config.save_every):
                run.save_checkpoint()
    return _save_final(run.accelerator, run.model, run.out / "final")


def _broadcast(accelerator: Any, value: dict[str, Any]) -> dict[str, Any]:
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def _save_final(accelerator: Any, model: torch.nn.Module, folder: Path) -> Path:
    """The trained encoder (LoRA merged in) via ``encoder.save``, written beside and renamed into place."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        bare = accelerator.unwrap_model(model)
        if hasattr(bare, "merge_and_unload"):  # a peft model: fold the adapters into a copy of the base weights
            bare = copy.deepcopy(bare).merge_and_unload()
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        bare.save(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    accelerator.wait_for_everyone()
    return folder
