"""The ``Embedder`` protocol and a base class that does the batching, de-duplication, checks and normalisation.

Following sentence-transformers, ``encode()`` takes a list of inputs and returns a numpy matrix; here the inputs
are interleaved (text, image, box, point) and every embedder states which segment kinds it accepts, so an input
it cannot embed is refused with a clear error instead of being silently dropped.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from geovec.errors import GeovecError, GeovecInputError, UnsupportedInputError
from geovec.inputs import SEGMENT_KINDS, InputLike, Interleaved, as_input, render_text
from geovec.models.query_pass import (AS_TRAINED, TRANSFORMERS, Measure, PassChoice, QueryPass, admissible,
                                     checked_quality, choose_pass, timer)
from geovec.precision import PRECISIONS, bfloat16_allowed
from geovec.progress import progress_bar


ALL_MODALITIES = frozenset(SEGMENT_KINDS)
TEXT_MODALITIES = ALL_MODALITIES - {"image"}  # text models take boxes and points as canonical text


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps interleaved inputs to L2-normalised float32 vectors in one space."""

    name: str
    dim: int
    modalities: frozenset[str]
    query_pass: QueryPass

    def encode(self, inputs: Sequence[InputLike], batch_size: int = 32, show_progress: bool = False,
               instruction: str | None = None, truncate: bool = False) -> np.ndarray: ...

    def with_query_pass(self, query_pass: QueryPass | str) -> Embedder: ...

    def with_precision(self, precision: str, *, instruction: str | None = None) -> Embedder: ...


def _length_key(item: Interleaved) -> tuple[int, int]:
    """Images first grouped by count, then by the length of the text parts."""
    texts = sum(len(getattr(segment, "text", "")) for segment in item.segments)
    return (-sum(segment.kind == "image" for segment in item.segments), -texts)


def checkpoint_revision(folder: str | Path) -> str:
    """A short content fingerprint of a checkpoint folder: every file's name and the SHA-1 of its bytes.

    Reproducible across installs and machines, and it changes when any weight changes (two trainings of one
    architecture write weight files of equal size, so names and sizes alone would name both alike), so results,
    indexes and embedding caches can name the exact model they came from. Hashing reads each file once per
    process (``_file_sha1``): 16 ms for the shipped geovec-mini (25 MB), 0.1 s for a 100 MB checkpoint.
    """
    digest = hashlib.sha1()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}:{_file_sha1(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}"
                      .encode())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=4096)
def _file_sha1(path: str, size: int, mtime_ns: int) -> str:
    """One file's SHA-1, remembered while its size and modification time stay the same."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha1").hexdigest()


def checkpoint_model_type(folder: str | Path, what: str) -> str | None:
    """The ``model_type`` in a transformers checkpoint's config.json; fails naming the folder and what is missing,
    instead of a transformers stack trace. ``what`` says what the folder should hold ("CLIP checkpoint")."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GeovecError(f"{what} folder does not exist: {folder}")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise GeovecError(f"{folder} is not a {what}: missing config.json")
    try:
        return json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise GeovecError(f"{folder} is not a {what}: cannot parse config.json ({exc})") from None


def weights_identity(embedder: Embedder) -> str:
    """``name@revision``: the model and its weights, whatever pass computes with them."""
    return f"{embedder.name}@{getattr(embedder, 'revision', '') or 'unversioned'}"


def model_identity(embedder: Embedder) -> str:
    """``name@revision``: what on-disk embedding caches are keyed by, so new weights never reuse old vectors
    (``+bfloat16`` added when the embedder computes in bfloat16, whose vectors differ slightly)."""
    precision = "" if getattr(embedder, "precision", "float32") == "float32" else f"+{embedder.precision}"
    return f"{weights_identity(embedder)}{precision}"


@dataclass(frozen=True)
class TextWindow:
    """How many tokens of text a model reads, and how to count them; text beyond it would be cut off unseen."""

    count: Callable[[str], int]  # tokens of a text, special tokens included
    limit: int
    reads_instruction: bool = True  # whether the instruction shares the window with the text


def window_of(embedder: Embedder) -> TextWindow | None:
    """The embedder's text window, or None for one without a fixed window (or any ``Embedder`` not a BaseEmbedder)."""
    return getattr(embedder, "text_window", lambda: None)()


def too_long(embedder: Embedder, tokens: int, limit: int, what: str, remedy: str) -> str:
    """The problem of a text the model would cut: how long it is, how much the model reads, what to do."""
    return (f"the {what} {tokens:,} tokens; model {embedder.name!r} reads at most {limit}, so the rest would be "
            f"ignored: {remedy}")


def check_text_fits(embedder: Embedder, text: str, instruction: str | None = None) -> None:
    """Refuse a query text the model would truncate: a silently cut query answers a different question."""
    window = window_of(embedder)
    if window is None:
        return
    read = f"{instruction} {text}" if instruction and window.reads_instruction else text
    tokens = tokens_over(window, read)
    if tokens is not None:
        what = "query text and its instruction take" if read != text else "query text takes"
        raise GeovecInputError("text", too_long(embedder, tokens, window.limit, what, "shorten the query"))


def tokens_over(window: TextWindow, read: str) -> int | None:
    """How many tokens ``read`` takes when that is more than the window reads (the rest would be cut off unseen),
    else None. Texts too short to reach the window are not tokenised at all (a query's usual case)."""
    if len(read.encode("utf-8", "surrogatepass")) + 4 <= window.limit:  # tokens cover >= 1 byte each (+ specials)
        return None
    tokens = window.count(read)
    return tokens if tokens > window.limit else None


def check_windows(embedder: Embedder, inputs: Iterable[tuple[str, Interleaved]], truncate: bool,
                  remedy: str = "shorten it, or pass --truncate to cut it") -> int:
    """Refuse the first input (``(where, input)``) whose text the model would cut, naming ``where``; with
    ``truncate`` count them instead (they are then cut at the window). Returns how many are (to be) cut."""
    window = window_of(embedder)
    if window is None:
        return 0
    cut = 0
    for where, item in inputs:
        tokens = tokens_over(window, render_text(item, include_instruction=window.reads_instruction,
                                                 image_placeholder=""))
        if tokens is None:
            continue
        if not truncate:
            what = "text and its instruction take" if item.instruction and window.reads_instruction else "text takes"
            raise GeovecInputError(where, too_long(embedder, tokens, window.limit, what, remedy))
        cut += 1
    return cut


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation that leaves all-zero rows at zero instead of producing NaN."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class BaseEmbedder(ABC):
    """Implements ``encode`` once; subclasses embed a batch of already-validated inputs in ``embed_batch``."""

    name: str
    dim: int
    modalities: frozenset[str]
    revision: str = ""  # fingerprint of the weights (see checkpoint_revision)
    query_pass: QueryPass = AS_TRAINED  # how this object's forward pass computes (see with_query_pass)
    pass_choice: PassChoice | None = None  # the measurement "auto" chose the pass by (with_precision)
    supports_bfloat16: bool = False  # torch embedders whose forward pass runs under autocast

    @property
    def precision(self) -> str:
        """What the forward pass computes in: "float32" or "bfloat16"."""
        return self.query_pass.precision

    @property
    def device_type(self) -> str:
        """The torch device type the forward pass runs on ("cpu", "cuda")."""
        return "cpu"

    def pass_names(self) -> tuple[str, ...]:
        """The forward passes this model has (see ``geovec.models.query_pass``): its own, unless a subclass adds."""
        return (TRANSFORMERS,)

    def query_passes(self) -> list[QueryPass]:
        """Every pass this embedder can run: each of its forward passes in float32, and in bfloat16 where it runs
        under autocast."""
        precisions = ("float32", "bfloat16") if self.supports_bfloat16 else ("float32",)
        return [QueryPass(name, precision) for name in self.pass_names() for precision in precisions]

    def with_query_pass(self, query_pass: QueryPass | str) -> BaseEmbedder:
        """A new embedder computing with ``query_pass`` ("lean/bfloat16"), sharing this one's model and tokenizer;
        this one is left as it is. Meant for query serving: vectors of an index stay as they were built."""
        chosen = QueryPass.parse(query_pass) if isinstance(query_pass, str) else query_pass
        if chosen not in self.query_passes():
            field = "precision" if chosen.precision not in {p.precision for p in self.query_passes()} else "query_pass"
            raise GeovecInputError(field, f"model {self.name!r} runs {', '.join(map(str, self.query_passes()))}, "
                                          f"not {chosen}")
        embedder = copy.copy(self)
        embedder.query_pass, embedder.pass_choice = chosen, None
        return embedder

    def with_precision(self, precision: str, *, instruction: str | None = None, measure: Measure | None = None,
                       cache_file: Path | None = None, remeasure: bool = False) -> BaseEmbedder:
        """A new embedder (as ``with_query_pass``) computing in ``precision``: "float32" or "bfloat16" (this
        embedder's pass in that precision, else the model's own), or "auto": the fastest pass measured here among the
        quality-checked ones (bfloat16 only
        where ``GEOVEC_CPU_BF16`` allows it), timed with ``instruction`` (or ``measure``: ms of a pass and batch
        size) and cached in ``cache_file`` (default GEOVEC_HOME/query_pass.json) unless ``remeasure``."""
        if precision not in PRECISIONS:
            raise GeovecInputError("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision != "auto":
            same = QueryPass(self.query_pass.name, precision)
            return self.with_query_pass(same if same in self.query_passes() else QueryPass(TRANSFORMERS, precision))
        identity = weights_identity(self)
        allowed = [p for p in self.query_passes() if p.precision == "float32" or bfloat16_allowed(self.device_type)]
        candidates = admissible(allowed, checked_quality(identity))

        def embed(query_pass: QueryPass, texts: Sequence[str]) -> object:
            return self.with_query_pass(query_pass).encode(texts, batch_size=len(texts), instruction=instruction)

        choice = choose_pass(candidates, identity, measure or timer(embed), cache_file=cache_file,
                             remeasure=remeasure)
        embedder = self.with_query_pass(choice.chosen)
        embedder.pass_choice = choice
        return embedder

    def autocast(self):
        """The context a forward pass runs in: bfloat16 autocast when ``precision`` says so, else a no-op."""
        import torch

        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def encode(self, inputs: Sequence[InputLike] | InputLike, batch_size: int = 32, show_progress: bool = False,
               instruction: str | None = None, truncate: bool = False) -> np.ndarray:
        """Embed ``inputs`` (strings, segments or ``Interleaved``) into an ``(n, dim)`` float32 matrix.

        A single string or ``Interleaved`` gives a ``(dim,)`` vector. Identical inputs are embedded once.
        ``instruction`` applies to inputs that carry none of their own. A text longer than the model's window is
        refused (its vector would say nothing of the cut-off rest) unless ``truncate`` lets it be cut.
        """
        single = isinstance(inputs, (str, Interleaved))
        items = []
        for position, value in enumerate([inputs] if single else list(inputs)):  # type: ignore[list-item]
            try:
                items.append(as_input(value, instruction))
            except GeovecInputError as exc:
                raise GeovecInputError(f"inputs[{position}].{exc.field}", exc.problem) from None
        self.check_supported(items)
        if not truncate:  # cut texts need no counting here: the tokenizer cuts them
            check_windows(self, ((f"inputs[{n}]", item) for n, item in enumerate(items)), False,
                          "shorten it, or pass truncate=True to cut it")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        first_position: dict[str, int] = {}
        order = [first_position.setdefault(item.cache_key(), len(first_position)) for item in items]
        unique = [None] * len(first_position)
        for item, slot in zip(items, order):
            unique[slot] = item
        # Batch similar-length inputs together (as sentence-transformers does) so little compute goes to padding.
        by_length = sorted(range(len(unique)), key=lambda i: _length_key(unique[i]))  # type: ignore[arg-type]
        out = np.zeros((len(unique), self.dim), dtype=np.float32)
        with progress_bar(len(unique), f"embedding with {self.name}", enabled=show_progress) as bar:
            for start in range(0, len(unique), batch_size):
                slots = by_length[start:start + batch_size]
                out[slots] = self.embed_batch([unique[i] for i in slots])  # type: ignore[misc]
                bar.advance(len(slots))
        result = l2_normalize(out)[np.asarray(order, dtype=np.int64)] if items else out
        return result[0] if single else result

    def text_window(self) -> TextWindow | None:
        """The model's text window, for models that cut long text (None: no fixed window, or unknown)."""
        return None

    def check_supported(self, items: Sequence[Interleaved]) -> None:
        for position, item in enumerate(items):
            refused = item.kinds - self.modalities
            if refused:
                raise UnsupportedInputError(
                    f"inputs[{position}]: model '{self.name}' cannot embed {', '.join(sorted(refused))} segments; "
                    f"it accepts {', '.join(sorted(self.modalities))}")

    @abstractmethod
    def embed_batch(self, items: Sequence[Interleaved]) -> np.ndarray:
        """Raw (not necessarily normalised) embeddings of a batch, shape ``(len(items), dim)``."""
