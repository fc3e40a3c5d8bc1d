"""ChartQA, human-written questions only (the split R3V trains and tests on).

Data: the Hugging Face data set ``HuggingFaceM4/ChartQA`` (its card lists the columns
``image`` (Image), ``query`` (string), ``label`` (list of strings) and ``human_or_machine``
(ClassLabel: 0 = human, 1 = machine); splits ``train`` 28,299 / ``val`` 1,920 / ``test``
2,500 rows). ChartQA's questions are either written by people ("human") or generated from
chart summaries ("augmented", here "machine"); R3V uses the human ones only: 7,398 train and
1,250 test questions, so :meth:`ChartQA.keep_hub_row` drops the machine rows.

Scoring: ChartQA's relaxed accuracy, as in R3V's official code: when the gold answer is a
number the prediction must be a number within 5% of it (exactly 0 when gold is 0), else the
two must match case-insensitively ("Yes" = "yes"). The final answer is the text after the last
"Answer:" (or "The answer is X", ``\\boxed{X}``); a reply with no such marker counts only when it
is itself a short one-line answer; anything else is unparseable, hence wrong.
"""

from __future__ import annotations

from typing import Any

from r3v_eval.benchmarks.base import DataError, Problem, register, required_text
from r3v_eval.benchmarks.images import open_image
from r3v_eval.benchmarks.kinds import RelaxedBenchmark

_SOURCES = {0: "human", 1: "machine", "human": "human", "machine": "machine",
            "augmented": "machine"}


def question_source(row: dict[str, Any]) -> str | None:
    """'human' or 'machine' from a hub row's ``human_or_machine`` (ClassLabel id or name)."""
    value = row.get("human_or_machine")
    if isinstance(value, str):
        value = value.strip().lower()
    return _SOURCES.get(value)


@register
class ChartQA(RelaxedBenchmark):
    """Chart question answering, relaxed accuracy (5%), human-written questions."""

    name = "chartqa"
    hub_id = "HuggingFaceM4/ChartQA"
    hub_splits = {"train": "train", "val": "val", "validation": "val", "test": "test"}
    cot_ending = "answer the question with a numerical value, Yes/No, or a word or phrase."
    select_instruction = (
        "Which prediction is correct? Give the final answer with a numerical value, "
        "Yes/No, or a word or phrase."
    )
    tolerance = 0.05
    #: keep only the human-written questions (the paper's setting); False keeps all rows
    human_only = True

    # ---------------------------------------------------------------- loading
    def keep_hub_row(self, row: dict[str, Any]) -> bool:
        if not self.human_only:
            return True
        return question_source(row) == "human"

    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        where = f"{self.hub_id} row {index}"
        query = required_text(row, "query", where)
        labels = row.get("label")
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, (list, tuple)) or not labels or not str(labels[0]).strip():
            raise DataError(f"{where}: 'label' must be a non-empty list of strings")
        if row.get("image") is None:
            raise DataError(f"{where}: no chart image")
        image = open_image(row["image"], where)
        meta: dict[str, Any] = {"source": question_source(row) or "unknown", "hub_index": index}
        if len(labels) > 1:
            meta["labels"] = [str(x) for x in labels]
        return Problem(
            id=f"chartqa-{index:05d}",
            question=query.strip(),
            answer=str(labels[0]).strip(),
            benchmark=self.name,
            image=image,
            meta=meta,
        )

