"""TabMWP: PromptPG-style normalisation, multiple choice, the data sources, prompts."""

import json

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import DataError, Problem, get_benchmark
from r3v_eval.benchmarks.tabmwp import TabMWP, canonical_number, gold_number

from helpers import write_jsonl


@pytest.fixture
def bench():
    return get_benchmark("tabmwp")


def table_png(color=(255, 255, 255)):
    return Image.new("RGB", (10, 6), color)


def free(answer, unit=None, question="What is the mean of the numbers?"):
    return Problem(id="t", question=question, answer=answer, unit=unit, benchmark="tabmwp")


def mc(answer, choices, question="At a price of $155, is there a shortage or a surplus?"):
    return Problem(id="m", question=question, answer=answer, choices=choices,
                   benchmark="tabmwp")


# A row shaped like PromptPG's problems_*.json (the original release), image added.
PROMPTPG_FREE = {
    "question": "Some friends discussed the sizes of their coin collections. "
                "What is the mean of the numbers?",
    "choices": None, "answer": "84", "unit": None, "table_title": "Coin collections",
    "table": "Name | Number of coins\nBraden | 76\nCamilla | 94",
    "table_for_pd": {"Name": ["Braden", "Camilla"], "Number of coins": ["76", "94"]},
    "row_num": 3, "column_num": 2,
    "solution": "Read the numbers from the table. ... The mean is 84.",
    "ques_type": "free_text", "ans_type": "integer_number", "grade": 5, "split": "test",
}
PROMPTPG_MC = {
    "question": "Look at the table. Then answer the question. At a price of $155, is there a "
                "shortage or a surplus?",
    "choices": ["shortage", "surplus"], "answer": "shortage", "unit": None,
    "table_title": None, "table": "Price | Quantity demanded | Quantity supplied\n$155 | 22,600 | 5,800",
    "table_for_pd": {}, "row_num": 2, "column_num": 3, "solution": "...",
    "ques_type": "multi_choice", "ans_type": "boolean_text", "grade": 8, "split": "test",
}
PROMPTPG_MONEY = dict(PROMPTPG_FREE, question="How much money does Jim need?",
                      answer="4,656", unit="$", ans_type="integer_number")


# ------------------------------------------------------------------ registry / hub
def test_registered(bench):
    assert isinstance(bench, TabMWP)
    assert bench.hub_id == "JiaerX/TabMWP" and bench.hub_splits == {"train": "train"}


def test_hub_rows_shaped_like_promptpg(bench):
    rows = [dict(PROMPTPG_FREE, pid="16", image=table_png()),
            dict(PROMPTPG_MC, pid="54", image=table_png((0, 0, 0)))]
    free_p, mc_p = bench.problems_from_rows(rows)
    assert free_p.id == "tabmwp-16" and free_p.answer == "84" and free_p.choices is None
    assert free_p.meta["table"].startswith("Name | Number of coins")
    assert free_p.meta["table_title"] == "Coin collections"
    assert free_p.meta["ques_type"] == "free_text" and free_p.meta["grade"] == 5
    assert "table_for_pd" not in free_p.meta
    assert mc_p.choices == ["shortage", "surplus"] and mc_p.answer == "shortage"
    assert mc_p.load_image().getpixel((0, 0)) == (0, 0, 0)


def test_hub_rows_shaped_like_the_hf_copy(bench):
    """JiaerX/TabMWP: image, id, question, options, answer."""
    rows = [{"image": table_png(), "id": "101", "question": "Which is larger?",
             "options": ["5", "7"], "answer": "7"},
            {"image": table_png(), "id": "102", "question": "How many?", "options": [],
             "answer": "12"},
            {"image": table_png(), "id": "103", "question": "Pick one.",
             "options": ["red", "blue"], "answer": "B"}]       # a letter: mapped to its text
    a, b, c = bench.problems_from_rows(rows)
    assert (a.id, a.choices, a.answer) == ("tabmwp-101", ["5", "7"], "7")
    assert (b.choices, b.answer) == (None, "12")
    assert (c.choices, c.answer) == (["red", "blue"], "blue")


def test_hub_image_given_as_bytes(bench, tmp_path):
    import io
    buf = io.BytesIO()
    table_png((9, 9, 9)).save(buf, format="PNG")
    row = dict(PROMPTPG_FREE, image={"bytes": buf.getvalue(), "path": None})
    [p] = bench.problems_from_rows([row])
    assert p.load_image().getpixel((0, 0)) == (9, 9, 9)
    assert p.id == "tabmwp-00000"       # no pid: the row index


@pytest.mark.parametrize("change, message", [
    ({"answer": "glut"}, "not one of the choices"),
    ({"answer": ""}, "answer"),
    ({"question": None}, "missing or empty 'question'"),
    ({"choices": "shortage"}, "choices"),
    ({"unit": 5}, "unit"),
])
def test_bad_hub_rows_are_clear_errors(bench, change, message):
    with pytest.raises(DataError, match=rf"row 3: .*{message}"):
        bench.problem_from_hub(dict(PROMPTPG_MC, image=table_png(), **change), 3)


def test_test_split_is_not_on_the_hub(bench):
    with pytest.raises(DataError, match="PromptPG"):
        bench.load("test")


# ---------------------------------------------------------------- PromptPG folder
def write_promptpg(folder, split, problems, tables=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"problems_{split}.json").write_text(json.dumps(problems))
    if tables:
        (folder / "tables").mkdir(exist_ok=True)
        for pid in problems:
            table_png().save(folder / "tables" / f"{pid}.png")


def test_load_promptpg_release(bench, tmp_path):
    write_promptpg(tmp_path, "test", {"16": PROMPTPG_FREE, "54": PROMPTPG_MC})
    problems = bench.load("test", source=tmp_path)
    assert [p.id for p in problems] == ["tabmwp-16", "tabmwp-54"]
    assert problems[0].image == str(tmp_path / "tables" / "16.png")
    assert problems[0].load_image().size == (10, 6)
    assert problems[1].choices == ["shortage", "surplus"]
    assert len(bench.load("test", source=tmp_path, limit=1)) == 1


def test_promptpg_dev_split_answers_to_validation(bench, tmp_path):
    write_promptpg(tmp_path, "dev", {"7": PROMPTPG_FREE})
    assert [p.id for p in bench.load("validation", source=tmp_path)] == ["tabmwp-7"]


def test_promptpg_missing_table_image_is_named(bench, tmp_path):
    write_promptpg(tmp_path, "test", {"16": PROMPTPG_FREE}, tables=False)
    with pytest.raises(DataError, match=r"problem 16: table image not found: .*16\.png"):
        bench.load("test", source=tmp_path)


def test_promptpg_bad_problem_is_named(bench, tmp_path):
    write_promptpg(tmp_path, "test", {"16": PROMPTPG_FREE, "54": dict(PROMPTPG_MC, answer="x")})
    with pytest.raises(DataError, match=r"problems_test\.json: problem 54: .*not one of the"):
        bench.load("test", source=tmp_path)


# ------------------------------------------------------------------- local files
def test_load_canonical_local_files(bench, tmp_path):
    (tmp_path / "img").mkdir()
    table_png().save(tmp_path / "img" / "a.png")
    rows = [{"id": "a", "question": "How much?", "answer": "$4.50", "unit": "$",
             "image": "img/a.png", "meta": {"table": "x | y"}},
            {"id": "b", "question": "Which?", "answer": "(B)", "choices": ["red", "blue"],
             "image": "img/a.png"}]
    write_jsonl(tmp_path / "test.jsonl", rows)
    a, b = bench.load("test", source=tmp_path)
    assert (a.unit, a.meta, a.answer) == ("$", {"table": "x | y"}, "$4.50")
    assert b.answer == "blue"          # a gold letter is stored as the option's text


def test_local_rows_errors_name_file_and_line(bench, tmp_path):
    path = tmp_path / "test.jsonl"
    write_jsonl(path, [{"id": "a", "question": "q", "answer": "1"},
                       {"id": "b", "question": "q", "answer": "purple", "choices": ["red", "blue"]}])
    with pytest.raises(DataError, match=rf"{path}:2: answer 'purple' is not one of the choices"):
        bench.load("test", source=tmp_path)
    write_jsonl(path, [{"id": "a", "question": "q", "answer": "1", "image": "nope.png"}])
    with pytest.raises(DataError, match=rf"{path}:1: image file not found"):
        bench.load("test", source=tmp_path)


# ------------------------------------------------------------ PromptPG normalisation
@pytest.mark.parametrize("gold, value", [
    ("84", 84), ("4,656", 4656), ("$3.30", 3.3), ("3/10", 0.3), ("-3", -3),
    ("1,522.81", 1522.81), ("12.", 12),
])
def test_gold_numbers(gold, value):
    assert gold_number(gold) == pytest.approx(value)


@pytest.mark.parametrize("gold", ["Tuesday", "2:35 P.M.", "1 hour", "yes", "1/0"])
def test_gold_text_answers_are_not_numbers(gold):
    assert gold_number(gold) is None


def test_canonical_numbers_round_to_three_places():
    assert canonical_number(2 / 11) == "0.182"
    assert canonical_number(3.30) == "3.3"
    assert canonical_number(84.0) == "84"


# ----------------------------------------------------------------------- scoring
@pytest.mark.parametrize("gold, unit, reply, correct", [
    ("84", None, "Solution:\n1. Add: 672.\n2. Divide: 672 / 8 = 84.\n\nAnswer:\n84", True),
    ("84", None, "Answer: 84.0", True),
    ("84", None, "84", True),
    ("84", None, "The mean is 84.", True),
    ("84", None, "The answer is 84", True),
    ("84", None, "\\boxed{84}", True),
    ("84", None, "Answer: 83", False),
    ("84", None, "Answer: 80\nLet me recheck.\nAnswer: 84", True),     # the last one counts
    ("84", None, "Answer: 84\nAnswer: 80", False),
    ("4,656", "$", "Answer: $4,656", True),
    ("4,656", "$", "Answer: 4656", True),
    ("4,656", "$", "Answer: $4,656.00", True),
    ("4,656", "$", "Answer: 4656 dollars", True),
    ("3.30", "$", "Answer: $3.30", True),
    ("3.30", "$", "Answer: 3.3", True),
    ("3.30", "$", "Answer: $5.50", False),
    ("5.50", "$", "Answer: $5.50", True),
    ("3/10", None, "Answer: 3/10", True),
    ("3/10", None, "Answer: 0.3", True),
    ("2/11", None, "Answer: 0.182", True),
    ("2/11", None, "Answer: 0.18", False),             # PromptPG: 3 places, no tolerance
    ("2/11", None, "Answer: $\\frac{2}{11}$", True),
    ("3/4", None, "Answer: 3/4", True),
    ("-3", None, "Answer: -3", True),
    ("-3", None, "Answer: −3", True),
    ("-3", None, "Answer: 3", False),
    ("12", "teams", "Answer: 12 teams", True),
    ("3", "minutes per day", "Answer: 3 minutes per day.", True),
    ("Tuesday", None, "Answer: tuesday", True),
    ("Tuesday", None, "Answer: Tuesday.", True),
    ("Tuesday", None, "Answer: Wednesday", False),
    ("2:35 P.M.", None, "Answer: 2:35 P.M.", True),
    ("2:35 P.M.", None, "Answer: 2:35 p.m", True),
    ("Spanish club", None, "Answer:  Spanish   Club", True),
    ("yes", None, "Answer: Yes", True),
    ("yes", None, "Answer: no", False),
])
def test_free_text_scoring(bench, gold, unit, reply, correct):
    score = bench.score(reply, free(gold, unit))
    assert score.correct is correct
    assert score.extracted is not None


@pytest.mark.parametrize("reply, correct, extracted", [
    ("Solution:\n1. Demand exceeds supply.\n\nAnswer:\nA", True, "A"),
    ("Answer: (A)", True, "A"),
    ("Answer: A.", True, "A"),
    ("A", True, "A"),
    ("Answer: a", True, "A"),
    ("The answer is (A) shortage.", True, "A"),
    ("Answer: shortage", True, "A"),                  # option text instead of the letter
    ("Answer: Shortage.", True, "A"),
    ("Answer: There is a shortage.", True, "A"),
    ("Answer: B", False, "B"),
    ("Answer: surplus", False, "B"),
    ("Answer: A\nOn second thought,\nAnswer: B", False, "B"),
    ("Answer: B\nOn second thought,\nAnswer: (A)", True, "A"),
])
def test_multiple_choice_scoring(bench, reply, correct, extracted):
    score = bench.score(reply, mc("shortage", ["shortage", "surplus"]))
    assert (score.correct, score.extracted) == (correct, extracted)


def test_multiple_choice_with_numeric_options(bench):
    p = mc("1 hour", ["15 minutes", "30 minutes", "45 minutes", "1 hour"],
           question="How long does she have to wait?")
    assert bench.score("Answer: D", p).correct
    assert bench.score("Answer: 1 hour", p).correct
    assert not bench.score("Answer: 45 minutes", p).correct
    assert bench.match("1 hour", p) and not bench.match("C", p)


@pytest.mark.parametrize("problem", [
    free("84"), free("Tuesday"), mc("shortage", ["shortage", "surplus"])])
@pytest.mark.parametrize("reply", [
    "", "  ", "Answer:", "Answer: ",
    "Solution:\n1. The numbers are 76, 94 and 86.\n2. We add them up and divide.",
    ("Looking at the table I can see several values and I need to combine them carefully "
     "before deciding on a final result for this question"),
])
def test_unparseable_replies_are_wrong(bench, problem, reply):
    score = bench.score(reply, problem)
    assert score.correct is False and score.extracted is None


@pytest.mark.parametrize("reply", ["Answer: C", "Answer: (D)", "Answer: neither",
                                   "Answer: shortage or surplus"])
def test_choice_that_names_no_option_is_unparseable(bench, reply):
    score = bench.score(reply, mc("shortage", ["shortage", "surplus"]))
    assert score.correct is False and score.extracted is None


@pytest.mark.parametrize("reply", ["Answer: eighty-four", "Answer: 80 or 84", "Answer: 1,23"])
def test_numeric_answer_that_is_not_one_number_is_unparseable(bench, reply):
    score = bench.score(reply, free("84"))
    assert score.correct is False and score.extracted is None


# ------------------------------------------------------------------------ prompts
def test_free_text_prompt_has_unit_and_free_text_ending(bench):
    p = free("4,656", unit="$", question="How much money does Jim need?")
    assert prompts.cot_prompt(bench, p) == (
        "How much money does Jim need? (Unit: $)\nFirst generate a step-by-step solution, "
        "then answer the question using a single word or phrase.")
    assert prompts.direct_prompt(bench, p).endswith(
        "\nAnswer the question using a single word or phrase.")


def test_multiple_choice_prompt_lists_options_and_asks_for_the_letter(bench):
    p = mc("shortage", ["shortage", "surplus"])
    assert prompts.cot_prompt(bench, p) == (
        "At a price of $155, is there a shortage or a surplus?\nOptions:\n(A) shortage\n"
        "(B) surplus\nFirst generate a step-by-step solution, then answer with the option's "
        "letter from the given choices directly.")


def test_select_and_refine_prompts(bench):
    p = free("84")
    select = prompts.select_prompt(bench, p, ["Answer:\n84", "Answer:\n80", "Answer:\n84"])
    assert select.startswith("What is the mean of the numbers?\nModel's prediction 1:\nAnswer:\n84\n"
                             "Model's prediction 2:\nAnswer:\n80\nModel's prediction 3:\n")
    assert select.endswith("\nWhich prediction has the right OCR, reasoning and calculations? "
                           "Give the final answer.")
    refine = prompts.refine_prompt(bench, mc("shortage", ["shortage", "surplus"]), "Answer: B")
    assert "\nOptions:\n(A) shortage\n(B) surplus\nModel's prediction:\nAnswer: B\n" in refine
    assert refine.endswith("Judge the correctness of the model's prediction and refine it.")
