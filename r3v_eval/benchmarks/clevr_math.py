"""CLEVR-Math: add / remove objects in a CLEVR scene, then count (answers 0-10).

Data: the Hugging Face data set ``dali-does/clevr-math`` (config ``general``, the default;
``multihop`` keeps multi-hop questions for the test split only). Its loading script declares
the columns ``template`` (string, e.g. ``subtraction``), ``id`` (string: the CLEVR image file
name, shared by every question on that picture), ``question`` (string), ``image`` (Image) and
``label`` (int64), and the splits ``train``, ``validation`` and ``test``. R3V trains on a
10,000-question subset of ``train`` (``load("train", limit=PAPER_TRAIN_SIZE)`` takes the first
10,000) and scores by integer equality.

That hub repository is a *loading script* (``clevr-math.py``), which ``datasets`` 4 and later
refuse to run. :meth:`ClevrMath.load_hub` therefore falls back to the Hub's automatic Parquet
export of the same data (``revision="refs/convert/parquet"``) and, failing that, asks for local
files in the canonical schema (one row per question, ``image`` the scene's PNG).

Scoring: the final answer (after the last "Answer:", or "The answer is X", ``\\boxed{X}``) must
read as one whole number ("3", "3 objects", "three"); it is right when it equals the label.
A reply with no answer marker counts only when it is a short one-line answer; several numbers
without a final one, a fraction, or nothing at all is unparseable, hence wrong.
"""

from __future__ import annotations

from typing import Any

from r3v_eval import answers
from r3v_eval.benchmarks.base import DataError, Problem, register, required_text
from r3v_eval.benchmarks.kinds import IntegerBenchmark

PAPER_TRAIN_SIZE = 10_000
PARQUET_REVISION = "refs/convert/parquet"

# see chartqa.MAX_BARE_ANSWER_WORDS: a reply without an answer marker must look like an answer
MAX_BARE_ANSWER_WORDS = 12


@register
class ClevrMath(IntegerBenchmark):
    """Counting after arithmetic on CLEVR scenes; integer answers 0-10."""

    name = "clevr_math"
    hub_id = "dali-does/clevr-math"
    hub_config = "general"
    hub_splits = {"train": "train", "validation": "validation", "val": "validation",
                  "test": "test"}
    cot_ending = "answer the question using a single numerical value (0-10)."
    select_instruction = (
        "Which prediction is correct? Give the final answer with a single numerical value (0-10)."
    )

    # ---------------------------------------------------------------- loading
    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        where = f"{self.hub_id} row {index}"
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
            image=row["image"],
            meta=meta,
        )

    def load_hub(self, split: str, limit: int | None = None) -> list[Problem]:
        if split not in self.hub_splits:
            return super().load_hub(split, limit)  # the base class names the known splits
        import datasets

        hub_split = self.hub_splits[split]
        try:
            ds = datasets.load_dataset(self.hub_id, self.hub_config, split=hub_split)
        except RuntimeError as exc:
            if "scripts are no longer supported" not in str(exc):
                raise
            try:
                ds = datasets.load_dataset(self.hub_id, self.hub_config, split=hub_split,
                                           revision=PARQUET_REVISION)
            except Exception as exc2:  # any failure here: explain it, don't crash deep inside
                raise DataError(
                    f"clevr_math: {self.hub_id} is a loading script, which this version of "
                    f"'datasets' cannot run, and its Parquet export ({PARQUET_REVISION}) could "
                    f"not be read for split {hub_split!r} ({type(exc2).__name__}: {exc2}). "
                    "Convert the data to the canonical local schema (one JSONL row per question: "
                    '{"id", "question", "answer", "image"}) and pass source=<folder>.'
                ) from exc2
        return self.problems_from_rows(ds, limit)

    # ---------------------------------------------------------------- scoring
    def extract(self, reply: str, problem: Problem) -> str | None:
        if not isinstance(reply, str):
            return None
        if not answers.has_answer_marker(reply):
            text = reply.strip()
            if "\n" in text or len(text.split()) > MAX_BARE_ANSWER_WORDS:
                return None  # a rationale that never states its answer
        return super().extract(reply, problem)
