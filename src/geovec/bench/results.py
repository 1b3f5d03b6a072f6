"""Result records (one JSON file per model, revision and task, written atomically) and the report built from them.

A record is plain JSON that anyone can re-read: model name + revision, task metadata, dataset identity
(name, split, fingerprint of every input), geovec version, scores, counts and timing. Records are written to
``<out>/<model>/<revision>/<task>.json``, so two checkpoints of one model never overwrite each other; files of the
older ``<out>/<model>/<task>.json`` layout (and any folder structure above them) are still read. Old result files
are kept as test fixtures so the reader never loses the ability to read them.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from geovec.bench.published import PUBLISHED_MEAN_RECALL
from geovec.errors import GeovecError
from geovec.fileio import atomic_write, write_text_atomic
from geovec.instructions import CATEGORIES

REQUIRED = ("model", "task", "dataset", "scores", "geovec_version")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def result_path(out_dir: str | Path, record: dict[str, Any]) -> Path:
    """``<out>/<model>/<revision>/<task>.json``; ``<out>/<model>/<task>.json`` for a model without a revision."""
    folder = Path(out_dir) / _slug(record["model"]["name"])
    if record["model"].get("revision"):
        folder = folder / _slug(record["model"]["revision"])
    return folder / f"{_slug(record['task']['name'])}.json"


def write_result(out_dir: str | Path, record: dict[str, Any]) -> Path:
    path = result_path(out_dir, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def read_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every result record under ``out_dir``, at any depth; a malformed file is an error naming it.

    Shallower files come first, so where an old ``<model>/<task>.json`` and a newer ``<model>/<revision>/<task>.json``
    record the same run, the summary keeps the newer one.
    """
    folder = Path(out_dir)
    if not folder.is_dir():
        raise GeovecError(f"results folder not found: {folder}")
    records = []
    found = [path for path in folder.rglob("*.json") if path.is_file()]  # a folder may be named x.json too
    for path in sorted(found, key=lambda path: (len(path.parts), path)):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise GeovecError(f"{path}: not valid JSON ({exc.msg})") from None
        except UnicodeDecodeError as exc:
            raise GeovecError(f"{path}: not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                              "a result record is UTF-8 JSON") from None
        missing = [key for key in REQUIRED if key not in record] if isinstance(record, dict) else list(REQUIRED)
        if missing:
            raise GeovecError(f"{path}: not a geovec result record (missing {', '.join(missing)})")
        records.append(record)
    if not records:
        raise GeovecError(f"no result records in {folder}; run `geovec bench run` first")
    return records


def system_labels(records: list[dict[str, Any]]) -> list[str]:
    """Each record's model column: its name, with ``@revision`` when the records hold several revisions of it."""
    revisions: dict[str, set[str]] = defaultdict(set)
    for record in records:
        revisions[record["model"]["name"]].add(record["model"].get("revision") or "unversioned")
    labels = []
    for record in records:
        name, revision = record["model"]["name"], record["model"].get("revision") or "unversioned"
        labels.append(name if len(revisions[name]) == 1 else f"{name}@{revision}")
    return labels


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Main scores as {model: {task: score}}, category averages and each task's category."""
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    category_of: dict[str, str] = {}
    oracle: set[str] = set()
    for record, model in zip(records, system_labels(records)):
        task = record["task"]["name"]
        scores[model][task] = float(record["scores"]["main_score"])
        category_of[task] = record["task"]["category"]
        if record.get("corpus", {}).get("oracle"):
            oracle.add(task)
    averages: dict[str, dict[str, float]] = {}
    for model, by_task in scores.items():
        per_category: dict[str, list[float]] = defaultdict(list)
        for task, value in by_task.items():
            per_category[category_of[task]].append(value)
        averages[model] = {c: sum(v) / len(v) for c, v in per_category.items()}
        averages[model]["overall"] = sum(by_task.values()) / len(by_task)
    return {"scores": dict(scores), "averages": averages, "category_of": category_of, "oracle": oracle}


def markdown_report(records: list[dict[str, Any]]) -> str:
    summary = summarise(records)
    models = sorted(summary["scores"])
    categories = [c for c in CATEGORIES if any(c in summary["averages"][m] for m in models)]
    lines = ["# RSMEB results", "", "Main score per task: Precision@1 (%) for candidate tasks, mean recall mR (%) "
             "for full retrieval. Averages are over the tasks each model ran. Tasks marked *oracle* represent images by "
             "their human captions: an upper bound, not comparable with image-based results.", "",
             "## Category averages", "", "| model | " + " | ".join(categories + ["overall"]) + " |",
             "|---" * (len(categories) + 2) + "|"]
    for model in models:
        values = [summary["averages"][model].get(c) for c in categories + ["overall"]]
        lines.append(f"| {model} | " + " | ".join(_cell(v) for v in values) + " |")
    lines += ["", "## Tasks", "", "| task | category | " + " | ".join(models) + " |", "|---" * (len(models) + 2) + "|"]
    for task in sorted(summary["category_of"], key=lambda t: (CATEGORIES.index(summary["category_of"][t]), t)):
        values = [summary["scores"][m].get(task) for m in models]
        label = f"{task} (oracle: human captions)" if task in summary["oracle"] else task
        lines.append(f"| {label} | {summary['category_of'][task]} | " + " | ".join(_cell(v) for v in values) + " |")
    lines += _reference_rows(records)
    lines += _published_rows(records)
    return "\n".join(lines) + "\n"


REFERENCE_PREFIX = "precision_at_1_"


def _reference_rows(records: list[dict[str, Any]]) -> list[str]:
    """P@1 beside the reference rows of tasks whose queries carry them (``precision_at_1_<name>`` scores)."""
    rows = [(record, label) for record, label in zip(records, system_labels(records))
            if any(key.startswith(REFERENCE_PREFIX) for key in record["scores"])]
    if not rows:
        return []
    names = sorted({key[len(REFERENCE_PREFIX):] for record, _ in rows for key in record["scores"]
                    if key.startswith(REFERENCE_PREFIX)})
    lines = ["", "## Reference rows (P@1, %)", "", "The same answers sought from another input: box_blind = the box "
             "dropped, region_alone = the region's own pixels instead of the scene and its box.", "",
             "| task | model | P@1 | " + " | ".join(names) + " |", "|---" * (len(names) + 3) + "|"]
    for record, label in sorted(rows, key=lambda row: (row[0]["task"]["name"], row[1])):
        scores = record["scores"]
        values = [scores.get("precision_at_1"), *(scores.get(REFERENCE_PREFIX + name) for name in names)]
        lines.append(f"| {record['task']['name']} | {label} | " + " | ".join(_cell(v) for v in values) + " |")
    return lines


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _published_rows(records: list[dict[str, Any]]) -> list[str]:
    """Published mR rows beside ours for RSITMD/RSICD retrieval; our oracle rows are marked as not comparable."""
    ours = [r for r in records if r["task"]["name"] in ("rsitmd-t2t", "rsicd-t2t", "rsicd-retrieval",
                                                         "rsitmd-retrieval")]
    if not ours:
        return []
    lines = ["", "## Image-text retrieval beside published rows (mR, %)", "",
             "| dataset | system | mR | comparable |", "|---|---|---|---|"]
    for dataset, rows in PUBLISHED_MEAN_RECALL.items():
        lines += [f"| {dataset} | {system} (published) | {value:.2f} | reference |" for system, value in rows.items()]
        for record in ours:
            if record["dataset"]["name"] != dataset:
                continue
            corpus = record.get("corpus") or {}
            how = f"{record['task']['name']}, {record['model']['name']}"
            if corpus:
                how += f", corpus {corpus['name']} ({'; '.join(corpus.get('describers', []))}), max aggregation"
            if corpus.get("fusion"):
                how += f", hybrid (image-text weight {corpus['fusion']['weight']:g})"
            lines.append(f"| {dataset} | ours: {how} | {record['scores']['mean_recall']:.2f} | "
                         f"{_comparability(corpus)} |")
    return lines


def _comparability(corpus: dict[str, Any]) -> str:
    """Whether a row may stand beside published image-based rows, and as what."""
    if corpus.get("oracle"):
        return "no: oracle (human captions)"
    if corpus and all(d.startswith("neighbours:") for d in corpus.get("describers", [])):
        return "yes: image-based (captions of the nearest train images), not a VLM corpus"
    return "yes"


def chart(records: list[dict[str, Any]], path: Path) -> Path:
    """Grouped bars: category averages per model, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GeovecError("the PNG chart needs matplotlib: pip install 'geovec[bench]'") from None
    summary = summarise(records)
    models = sorted(summary["scores"])
    groups = [c for c in CATEGORIES if any(c in summary["averages"][m] for m in models)] + ["overall"]
    width = 0.8 / len(models)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(groups)), 4.0))
    for i, model in enumerate(models):
        xs = [g + i * width for g in range(len(groups))]
        axes.bar(xs, [summary["averages"][model].get(c, 0.0) for c in groups], width, label=model)
    axes.set_xticks([g + width * (len(models) - 1) / 2 for g in range(len(groups))], groups, rotation=20,
                    ha="right")
    axes.set_ylabel("score (%)")
    axes.set_ylim(0, 100)
    axes.set_title("RSMEB category averages")
    axes.legend()
    figure.tight_layout()

    def write(temp: str) -> None:
        figure.savefig(temp, format="png", dpi=120)

    atomic_write(path, write)
    plt.close(figure)
    return path


def write_report(out_dir: str | Path) -> tuple[Path, Path]:
    """``report.md`` and ``report.png`` in ``out_dir`` from every record under it."""
    out_dir = Path(out_dir)
    records = read_results(out_dir)
    markdown = out_dir / "report.md"
    write_text_atomic(markdown, markdown_report(records))
    return markdown, chart(records, out_dir / "report.png")
