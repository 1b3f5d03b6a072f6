"""The query pass is a setting of each embedder object (never inferred from torch's inference mode), a new setting is a
new object (the caller's embedder is untouched), and "auto" takes the fastest quality-checked pass measured here."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from tolerances import assert_float32_close

from geovec.errors import GeovecInputError
from geovec.inputs import as_input
from geovec.models import load_model
from geovec.models.query_pass import (
    AS_TRAINED,
    CACHE_NAME,
    MAX_MR_LOSS,
    QueryPass,
    admissible,
    choose_pass,
    pass_key,
)

INSTRUCTION = "Represent the caption for retrieving the remote-sensing image it describes:"
CAPTIONS = ["many planes are parked near the terminal of an airport", "a bridge crosses a wide river",
            "green trees surround a baseball field with a running track around it"]
LEAN, TRANSFORMERS = QueryPass("lean"), QueryPass("transformers")


@pytest.fixture(scope="module")
def mini():
    return load_model("geovec-mini")


@contextlib.contextmanager
def bert_calls(bert: torch.nn.Module) -> Iterator[list[int]]:
    """Counts calls of transformers' BertModel.forward (a forward hook: the real module runs) in ``calls[0]``."""
    calls = [0]
    handle = bert.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


def test_the_pass_follows_the_setting_not_inference_mode(mini):
    encoder = mini.encoder
    batch = encoder.prepare([as_input(text, INSTRUCTION) for text in CAPTIONS])
    with bert_calls(encoder.bert) as calls:
        with torch.inference_mode():  # what the old code took as the signal for its second BERT forward
            as_trained = encoder(batch, query_pass="transformers")
        assert calls[0] == 1
        with torch.no_grad():  # outside inference mode: the lean pass still runs when the setting says so
            lean = encoder(batch, query_pass="lean")
        assert calls[0] == 1
        mini.with_query_pass(TRANSFORMERS).encode(CAPTIONS[:1])
        assert calls[0] == 2
        mini.with_query_pass(LEAN).encode(CAPTIONS[:1])  # encode runs in inference mode: BertModel never called
        assert calls[0] == 2
    assert_float32_close(lean, as_trained, terms=encoder.bert.config.intermediate_size)


def test_a_module_in_training_runs_transformers_whatever_the_pass(mini):
    encoder = mini.encoder
    batch = encoder.prepare([as_input(CAPTIONS[0])])
    encoder.train()
    try:
        with bert_calls(encoder.bert) as calls, torch.no_grad():
            encoder(batch, query_pass="lean")
        assert calls[0] == 1
    finally:
        encoder.eval()


def test_a_new_setting_is_a_new_embedder_and_the_callers_is_untouched(mini):
    before = mini.encode(CAPTIONS, instruction=INSTRUCTION)
    fast = mini.with_precision("bfloat16")
    lean = mini.with_query_pass("lean/bfloat16")
    assert fast is not mini and fast.encoder is mini.encoder and fast.precision == "bfloat16"
    assert str(lean.query_pass) == "lean/bfloat16" and str(mini.query_pass) == "lean/float32"  # bulk embedding's
    fast_vectors = fast.encode(CAPTIONS, instruction=INSTRUCTION)
    lean.encode(CAPTIONS, instruction=INSTRUCTION)
    assert not np.array_equal(fast_vectors, before)  # bfloat16 really ran in the copy
    assert np.min(np.sum(fast_vectors * before, axis=1)) > 0.9999
    assert np.array_equal(mini.encode(CAPTIONS, instruction=INSTRUCTION), before)  # bit-identical, float32


def test_a_pass_the_model_has_not_is_refused_by_name(mini):
    with pytest.raises(GeovecInputError, match="query_pass: must be PASS/PRECISION"):
        mini.with_query_pass("onnx/int8")
    with pytest.raises(GeovecInputError, match="precision: must be one of"):
        mini.with_precision("float16")


def fixed(timings: dict[str, tuple[float, float]], asked: list[str] | None = None):
    """A measure reporting the given ms per pass (for 1 and 8 queries); records what it was asked to time."""
    def measure(query_pass: QueryPass, batch: int) -> float:
        if asked is not None:
            asked.append(str(query_pass))
        return timings[str(query_pass)][0 if batch == 1 else 1]

    return measure


def test_the_chooser_takes_the_measured_fastest_and_caches_it(tmp_path):
    candidates = [AS_TRAINED, QueryPass("lean"), QueryPass("lean", "bfloat16")]
    timings = {"transformers/float32": (5.0, 20.0), "lean/float32": (4.0, 16.0), "lean/bfloat16": (3.0, 17.5)}
    choice = choose_pass(candidates, "m@1", fixed(timings), cache_file=tmp_path / CACHE_NAME)
    assert str(choice.chosen) == "lean/float32" and choice.measured  # least total over 1 and 8 queries
    assert choice.timings["lean/bfloat16"] == {"1": 3.0, "8": 17.5}
    asked: list[str] = []
    again = choose_pass(candidates, "m@1", fixed(timings, asked), cache_file=tmp_path / CACHE_NAME)
    assert str(again.chosen) == "lean/float32" and not again.measured and asked == []  # read from the cache
    slower = {**timings, "lean/float32": (9.0, 30.0)}
    remeasured = choose_pass(candidates, "m@1", fixed(slower), cache_file=tmp_path / CACHE_NAME, remeasure=True)
    assert str(remeasured.chosen) == "lean/bfloat16"


def test_the_cache_key_changes_with_the_isa_cap(tmp_path, monkeypatch):
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    uncapped = pass_key("m@1")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert pass_key("m@1") != uncapped
    candidates = [AS_TRAINED, QueryPass("lean")]
    timings = {"transformers/float32": (5.0, 20.0), "lean/float32": (4.0, 16.0)}
    choose_pass(candidates, "m@1", fixed(timings), cache_file=tmp_path / CACHE_NAME)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    asked: list[str] = []
    choose_pass(candidates, "m@1", fixed(timings, asked), cache_file=tmp_path / CACHE_NAME)
    assert asked  # measured anew: the capped run's choice does not apply
    assert len(json.loads((tmp_path / CACHE_NAME).read_text())) == 2


def test_only_passes_checked_within_the_allowed_loss_are_candidates():
    passes = [AS_TRAINED, QueryPass("lean"), QueryPass("lean", "bfloat16"), QueryPass("transformers", "bfloat16")]
    quality = {"transformers/float32": 20.0, "lean/float32": 20.0, "lean/bfloat16": 20.0 - MAX_MR_LOSS - 0.01}
    assert admissible(passes, quality) == [AS_TRAINED, QueryPass("lean")]  # unchecked and too lossy: out
    assert admissible(passes, {}) == [AS_TRAINED]  # a model never checked runs as trained


def test_bfloat16_is_never_chosen_with_the_cpu_switch_off(mini, tmp_path, monkeypatch):
    timings = {"transformers/float32": (5.0, 20.0), "lean/float32": (4.0, 16.0),
               "transformers/bfloat16": (1.0, 2.0), "lean/bfloat16": (1.0, 1.0)}
    monkeypatch.setenv("GEOVEC_CPU_BF16", "0")
    asked: list[str] = []
    chosen = mini.with_precision("auto", measure=fixed(timings, asked), cache_file=tmp_path / CACHE_NAME)
    assert chosen.precision == "float32" and not any("bfloat16" in name for name in asked)
    assert mini.precision == "float32"


def test_an_unreadable_cpu_bf16_switch_is_refused_by_name(mini, monkeypatch, tmp_path):
    monkeypatch.setenv("GEOVEC_CPU_BF16", "no")
    with pytest.raises(GeovecInputError, match="GEOVEC_CPU_BF16: is 'no'; set 0"):
        mini.with_precision("auto", cache_file=tmp_path / CACHE_NAME)
