"""M3CoT: multi-domain, multi-step multimodal chain-of-thought multiple-choice questions
(science, commonsense, mathematics).

Data source: Hugging Face ``LightChen2333/M3CoT`` (config ``default``; splits train 7,863 /
validation 1,108 / test 2,318). Columns (dataset card): ``id``, ``category``, ``image_id``,
``question``, ``choices`` (list of str), ``context``, ``answer`` (the option letter),
``rationale``, ``split``, ``image``, ``domain``, ``topic``.

Mapping decisions
    * A non-empty ``context`` goes into the question text, before it: "Context: ...\\n<question>".
    * The gold answer is stored as the option letter (an answer given as an option's text is
      converted; one that is neither is a clear error).
    * The human ``rationale`` is kept in ``meta["rationale"]``: it can serve as a teacher
      rationale for the warm-up, as the paper's GPT-distilled rationales do.

Scoring: the shared multiple-choice rules (see :func:`r3v_eval.answers.parse_choice`): the last
"(X)" after the last "Answer:", else a bare letter, else an option's exact text, else the last
standalone option letter ("A ..." opening a sentence is an article), else the option whose
number or text appears. The official evaluation gives an unparseable answer credit with
probability 0.75; here it is always wrong.
"""

from __future__ import annotations

from typing import Any

from r3v_eval.benchmarks.base import DataError, Problem, register
from r3v_eval.benchmarks.kinds import ChoiceBenchmark


@register
class M3CoT(ChoiceBenchmark):
    name = "m3cot"
    display_name = "M3CoT"
    hub_id = "LightChen2333/M3CoT"
    hub_config = None
    hub_splits = {"train": "train", "validation": "validation", "test": "test"}

    def problem_from_hub(self, row: dict[str, Any], index: int) -> Problem:
        where = f"{self.hub_id} row {index}"
        for key in ("question", "choices", "answer"):
            if key not in row or row[key] is None:
                raise DataError(f"{where}: missing {key!r}")
        question = str(row["question"]).strip()
        if not question:
            raise DataError(f"{where}: empty 'question'")
        choices = self.row_choices(row, where)
        # the card's ``answer`` is the option letter by definition
        letter = self.row_gold_letter(row["answer"], choices, where, letter_first=True)
        context = str(row.get("context") or "").strip()
        if context:
            question = f"Context: {context}\n{question}"
        meta: dict[str, Any] = {}
        for key in ("rationale", "domain", "topic", "category", "image_id", "split"):
            value = row.get(key)
            if value not in (None, ""):
                meta[key] = str(value)
        return self.choice_problem(row, index, where, question, choices, letter, meta)
