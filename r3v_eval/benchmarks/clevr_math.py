"""CLEVR-Math: add / remove objects in a CLEVR scene, then count (answers 0-10).

Data: the Hugging Face data set ``dali-does/clevr-math`` (config ``general``, the default;
``multihop`` keeps multi-hop questions for the test split only). Its loading script declares
the columns ``template`` (string, e.g. ``subtraction``), ``id`` (string: the CLEVR image file
name, shared by every question on that picture), ``question`` (string), ``image`` (Image) and
``label`` (int64), and the splits ``train``, ``validation`` and ``test``. R3V trains on a
10,000-question subset of ``train`` (``load("train", limit=PAPER_TRAIN_SIZE)`` takes the first
10,000) and scores by integer equality.

That hub repository is a *loading script* (``clevr-math.py``), which ``datasets`` 4 and later
refuse to run, and which downloads the 19 GB CLEVR archive for any split. So the loader reads
Parquet copies with the same five columns instead (:meth:`ClevrMath.hub_source`):

* ``test``: ``ohjoonhee/CLEVR-Math-Test`` (configs ``general``, 7,955 rows = R3V's test size,
  and ``multihop``, 1,000), split ``test``;
* ``train`` / ``validation``: the Hub's automatic Parquet export of ``dali-does/clevr-math``
  (``revision="refs/convert/parquet"``, ``data_dir="general"``: an export branch has no
  README, so its configs are folders, not names). The export of a large split can be
  partial (a ``partial-train`` folder, read as ``train``); R3V uses the first 10,000 rows.

When a copy cannot be read the error names it and asks for local files in the canonical
schema (one row per question, ``image`` the scene's PNG).

Scoring: the final answer (after the last "Answer:", or "The answer is X", ``\\boxed{X}``) must
read as one whole number ("3", "3 objects", "three"); it is right when it equals the label.
A reply with no answer marker counts only when it is a short one-line answer; several numbers
without a final one, a fraction, or nothing at all is unparseable, hence wrong.
"""

from __future__ import annotations

from typing import Any

from r3v_eval.benchmarks import hub
from r3v_eval.benchmarks.base import DataError, Problem, register, required_text
from r3v_eval.benchmarks.images import open_image
from r3v_eval.benchmarks.kinds import IntegerBenchmark

PAPER_TRAIN_SIZE = 10_000
PARQUET_REVISION = "refs/convert/parquet"
TEST_COPY = "ohjoonhee/CLEVR-Math-Test"
CONFIGS = ("general", "multihop")


def describe(source: dict[str, Any]) -> str:
    """A ``load_dataset`` source in words: repo, config / folder, revision."""
    parts = [source["repo_id"]]
    if source.get("config"):
        parts.append(f"config {source['config']!r}")
    if source.get("data_dir"):
        parts.append(f"folder {source['data_dir']!r}")
    if source.get("revision"):
        parts.append(f"revision {source['revision']!r}")
    return ", ".join(parts)


@register
class ClevrMath(IntegerBenchmark):
    """Counting after arithmetic on CLEVR scenes; integer answers 0-10."""

    name = "clevr_math"
    hub_id = "dali-does/clevr-math"
    hub_config = "general"
    rows_from: str | None = None  # the repository the rows being mapped come from
    hub_splits = {"train": "train", "validation": "validation", "val": "validation",
                  "test": "test"}
    cot_ending = "answer the question using a single numerical value (0-10)."
    select_instruction = (
        "Which prediction is correct? Give the final answer with a single numerical value (0-10)."
    )

    # ---------------------------------------------------------------- loading
    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        where = f"{self.rows_from or self.hub_id} row {index}"
        question = required_text(row, "question", where)
        label = row.get("label")
        if isinstance(label, bool) or label is None:
            raise DataError(f"{where}: missing 'label'")
        try:
            value = float(label)
        except (TypeError, ValueError):
            raise DataError(f"{where}: 'label' {label!r} is not a number") from None
        if value != int(value):
            raise DataError(f"{where}: 'label' {label!r} is not a whole number")
        if row.get("image") is None:
            raise DataError(f"{where}: no scene image")
        image = open_image(row["image"], where)
        meta: dict[str, Any] = {"hub_index": index}
        if row.get("template"):
            meta["template"] = str(row["template"])
        if row.get("id"):
            meta["image_filename"] = str(row["id"])
        return Problem(
            id=f"clevr_math-{index:06d}",
            question=question.strip(),
            answer=str(int(value)),
            benchmark=self.name,
            image=image,
            meta=meta,
        )

    def hub_source(self, split: str) -> dict[str, Any]:
        """The ``load_dataset`` arguments that read ``split`` (see :data:`HUB_SOURCES`)."""
        hub_split = self.check_hub_split(split)
        if self.hub_config not in CONFIGS:
            raise DataError(f"clevr_math: unknown config {self.hub_config!r}; known: {CONFIGS}")
        if hub_split == "test":
            return {"repo_id": TEST_COPY, "config": self.hub_config, "split": "test"}
        return {"repo_id": self.hub_id, "config": None, "split": hub_split,
                "data_dir": self.hub_config, "revision": PARQUET_REVISION}

    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        source = self.hub_source(split)
        try:
            ds = hub.load_split(**source)
        except DataError:
            raise
        except Exception as exc:  # not found, no export, network: say which copy, and what to do
            raise DataError(
                f"clevr_math: could not read split {split!r} from {describe(source)} "
                f"({type(exc).__name__}: {exc}). Convert CLEVR-Math to the canonical local "
                'schema (one JSONL row per question: {"id", "question", "answer", "image"}) '
                "and pass source=<folder>."
            ) from exc
        self.rows_from = source["repo_id"]
        report = self.new_report(describe(source))
        problems = self.problems_from_rows(ds, limit, report)
        self.finish_load(report)
        return problems
