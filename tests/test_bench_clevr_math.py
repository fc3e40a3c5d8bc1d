"""CLEVR-Math: hub mapping (and the loading-script fallback), integer scoring, prompts."""

import json

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import DataError, Problem, get_benchmark
from r3v_eval.benchmarks.clevr_math import PAPER_TRAIN_SIZE, ClevrMath

from helpers import write_jsonl


@pytest.fixture
def bench():
    return get_benchmark("clevr_math")


def scene(color=(120, 120, 120)):
    return Image.new("RGB", (12, 8), color)


def hub_row(question="Subtract all red cubes. How many objects are left?", label=3,
            template="subtraction", image_id="CLEVR_train_000001.png", image="default"):
    """Shaped like dali-does/clevr-math rows: template, id, question, image, label."""
    return {"template": template, "id": image_id, "question": question,
            "image": scene() if image == "default" else image, "label": label}


def prob(answer="3"):
    return Problem(id="c", question="Subtract all red cubes. How many objects are left?",
                   answer=answer, benchmark="clevr_math")


# ------------------------------------------------------------------ registry / hub
def test_registered_with_the_real_hub_data_set(bench):
    assert isinstance(bench, ClevrMath)
    assert (bench.hub_id, bench.hub_config) == ("dali-does/clevr-math", "general")
    assert bench.hub_splits["train"] == "train"
    assert bench.hub_splits["test"] == "test"
    assert bench.hub_splits["validation"] == "validation"
    assert PAPER_TRAIN_SIZE == 10_000


def test_hub_rows_map_to_problems(bench):
    rows = [hub_row(label=3), hub_row("Add 2 balls. How many balls are there?", 5, "addition",
                                      "CLEVR_train_000001.png")]
    a, b = bench.problems_from_rows(rows)
    assert (a.id, a.answer, a.benchmark) == ("clevr_math-000000", "3", "clevr_math")
    assert b.id == "clevr_math-000001"        # two questions on one picture: distinct ids
    assert a.meta == {"hub_index": 0, "template": "subtraction",
                      "image_filename": "CLEVR_train_000001.png"}
    assert b.answer == "5" and b.meta["template"] == "addition"
    assert a.load_image().size == (12, 8)


def test_hub_label_zero_and_float_labels(bench):
    assert bench.problem_from_hub(hub_row(label=0), 0).answer == "0"
    assert bench.problem_from_hub(hub_row(label=4.0), 0).answer == "4"


@pytest.mark.parametrize("change, message", [
    ({"label": None}, "label"),
    ({"label": "three"}, "not a number"),
    ({"label": 2.5}, "whole number"),
    ({"question": ""}, "missing or empty 'question'"),
    ({"image": None}, "image"),
])
def test_bad_hub_rows_are_clear_errors(bench, change, message):
    row = dict(hub_row(), **change)
    with pytest.raises(DataError, match=rf"row 9: .*{message}"):
        bench.problem_from_hub(row, 9)


def test_load_hub_unknown_split(bench):
    with pytest.raises(DataError, match="no split 'dev'"):
        bench.load("dev")


# --------------------------------------------------------------------- local files
def test_load_local_files(bench, tmp_path):
    (tmp_path / "scenes").mkdir()
    scene().save(tmp_path / "scenes" / "s1.png")
    rows = [{"id": "c1", "question": "Remove all cubes. How many objects are left?",
             "answer": "4", "image": "scenes/s1.png", "meta": {"template": "subtraction"}},
            {"id": "c2", "question": "How many?", "answer": "0", "image": "scenes/s1.png"}]
    # no newline after the last row
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    problems = bench.load("train", source=tmp_path)
    assert [(p.id, p.answer) for p in problems] == [("c1", "4"), ("c2", "0")]
    assert problems[0].load_image().size == (12, 8)


def test_local_missing_image_names_file_and_line(bench, tmp_path):
    path = tmp_path / "test.jsonl"
    write_jsonl(path, [{"id": "c1", "question": "q", "answer": "1", "image": "scenes/none.png"}])
    with pytest.raises(DataError, match=rf"{path}:1: image file not found"):
        bench.load("test", source=tmp_path)
    write_jsonl(path, ["", {"id": "c1", "question": "q"}])
    with pytest.raises(DataError, match=rf"{path}:2: missing required key 'answer'"):
        bench.load("test", source=tmp_path)


# ------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("reply, correct, extracted", [
    ("Solution:\n1. There are 5 objects.\n2. Remove 2 red cubes: 5 - 2 = 3.\n\nAnswer:\n3",
     True, "3"),
    ("Answer: 3", True, "3"),
    ("Answer: 3 objects", True, "3"),
    ("Answer: three", True, "3"),
    ("Answer: 3.0", True, "3"),
    ("The answer is 3.", True, "3"),
    ("\\boxed{3}", True, "3"),
    ("3", True, "3"),
    ("There are 3 objects left.", True, "3"),
    ("Answer: 5 - 2 = 3", True, "3"),
    ("Answer: 4", False, "4"),
    ("Answer: -3", False, "-3"),
    ("Answer: 13", False, "13"),
    ("Answer: 4\nHmm, I missed one cube.\nAnswer: 3", True, "3"),    # the last one counts
    ("Answer: 3\nAnswer: 4", False, "4"),
])
def test_integer_scoring(bench, reply, correct, extracted):
    score = bench.score(reply, prob("3"))
    assert (score.correct, score.extracted) == (correct, extracted)


def test_zero_is_an_answer(bench):
    assert bench.score("Answer: 0", prob("0")).correct
    assert bench.score("Answer: zero", prob("0")).correct
    assert not bench.score("Answer: 0", prob("1")).correct


@pytest.mark.parametrize("reply", [
    "", "   ", "Answer:", "Answer: 2.5", "Answer: 3/4", "Answer: 3 or 4", "Answer: several",
    "Answer: 3 cubes and 2 spheres",
    "Solution:\n1. There are 3 cubes and 2 spheres.\n2. Remove the cubes.",
    "Solution:\n1. I count 3 cubes in the picture.\n2. They are all removed.",
    ("First I look at every object in the scene and then I count the 3 cubes that "
     "need to be removed from the total"),
])
def test_unparseable_replies_are_wrong(bench, reply):
    score = bench.score(reply, prob("3"))
    assert score.correct is False and score.extracted is None


# ------------------------------------------------------------------------ prompts
def test_prompts_use_the_papers_wording(bench):
    p = prob()
    assert prompts.cot_prompt(bench, p) == (
        "Subtract all red cubes. How many objects are left?\nFirst generate a step-by-step "
        "solution, then answer the question using a single numerical value (0-10).")
    assert prompts.direct_prompt(bench, p).endswith(
        "\nAnswer the question using a single numerical value (0-10).")
    assert prompts.cot_prompt(bench, p, "qwen2").endswith(
        "\nAnswer the question with Chain-of-Thought.")
    select = prompts.select_prompt(bench, p, ["Answer:\n3", "Answer:\n4", "Answer:\n3"])
    assert select.endswith("Model's prediction 3:\nAnswer:\n3\nWhich prediction is correct? "
                           "Give the final answer with a single numerical value (0-10).")
    refine = prompts.refine_prompt(bench, p, "Answer:\n4")
    assert refine == ("Subtract all red cubes. How many objects are left?\nModel's prediction:"
                      "\nAnswer:\n4\nJudge the correctness of the model's prediction and "
                      "refine it.")
