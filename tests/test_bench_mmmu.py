"""MMMU: per-subject hub mapping, image choice, OOD-only splits, rule-based scoring."""

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import DataError, Problem, get_benchmark, write_local
from r3v_eval.benchmarks.mmmu import SUBJECTS, literal_list, merge_images, numbers_match

from helpers import write_jsonl


@pytest.fixture
def bench():
    return get_benchmark("mmmu")


def img(w, h, color="white"):
    return Image.new("RGB", (w, h), color)


def hub_row(**over):
    """Shaped like a row of MMMU/MMMU (config "Accounting", split "validation")."""
    row = {
        "id": "validation_Accounting_3",
        "question": "<image 1> Using the table, what is the company's net income?",
        "options": "['$1,000', '$2,500', '$3,000', '$4,200']",
        "explanation": "",
        "image_1": img(30, 20, "red"),
        "image_2": None, "image_3": None, "image_4": None, "image_5": None,
        "image_6": None, "image_7": None,
        "img_type": "['Tables']",
        "answer": "B",
        "topic_difficulty": "Medium",
        "question_type": "multiple-choice",
        "subfield": "Financial Accounting",
    }
    row.update(over)
    return row


def open_problem(answer, unit=None):
    return Problem(id="validation_Math_7", question="<image 1> Find x.", answer=answer,
                   benchmark="mmmu", unit=unit, meta={"question_type": "open"})


def test_registered_ood_only(bench):
    assert bench.hub_id == "MMMU/MMMU"
    assert len(SUBJECTS) == 30 and "Accounting" in SUBJECTS and "Sociology" in SUBJECTS
    assert bench.hub_config is None and tuple(bench.subjects) == SUBJECTS
    assert bench.test_split == "validation"
    assert "train" not in bench.hub_splits
    with pytest.raises(DataError, match="out-of-distribution"):
        bench.load(split="train")


def test_unknown_subject_is_an_error(bench):
    bench.hub_config = "Astrology"
    with pytest.raises(DataError, match="unknown subject"):
        bench.load_hub("validation")


# ---------------------------------------------------------------- hub mapping
def test_problem_from_hub_multiple_choice(bench):
    p = bench.problem_from_hub(hub_row(), 0)
    assert p.id == "validation_Accounting_3"
    assert p.choices == ["$1,000", "$2,500", "$3,000", "$4,200"]
    assert p.answer == "B"
    # the placeholder stays in the question; the referenced image is the problem's image
    assert p.question.startswith("<image 1> Using the table")
    assert p.load_image().getpixel((0, 0)) == (255, 0, 0)
    assert p.meta["question_type"] == "multiple-choice"
    assert p.meta["subject"] == "Accounting"
    assert p.meta["subfield"] == "Financial Accounting"
    assert p.meta["image_refs"] == [1]


def test_problem_from_hub_open(bench):
    p = bench.problem_from_hub(hub_row(question_type="open", options="[]", answer="2.5",
                                       question="What is the ratio in <image 1>?"), 0)
    assert p.choices is None and p.answer == "2.5"
    assert bench.score("Answer: 2.50", p).correct


def test_first_referenced_image_is_kept(bench):
    bench.image_mode = "first"
    row = hub_row(question="Which option matches <image 2>?", image_1=img(5, 5, "red"),
                  image_2=img(6, 6, "blue"),
                  options="['<image 3>', '<image 4>', 'neither', 'both']",
                  image_3=img(7, 7), image_4=img(8, 8))
    p = bench.problem_from_hub(row, 0)
    assert p.meta["image_refs"] == [2, 3, 4]
    assert p.load_image().size == (6, 6)
    assert p.choices[0] == "<image 3>"


def test_merge_mode_tiles_referenced_images(bench):
    assert bench.image_mode == "merge"  # the default: every referenced image, as R3V passed them
    row = hub_row(question="Compare <image 1> and <image 2>.", image_1=img(10, 4),
                  image_2=img(20, 8))
    p = bench.problem_from_hub(row, 0)
    assert p.load_image().size == (10 + 10 + 20, 8)
    assert merge_images([img(3, 3)]).size == (3, 3)


def test_unreferenced_image_falls_back_to_image_1(bench):
    p = bench.problem_from_hub(hub_row(question="What is shown?"), 0)
    assert p.meta["image_refs"] == [] and p.load_image().size == (30, 20)
    p = bench.problem_from_hub(hub_row(question="What is shown?", image_1=None), 0)
    assert p.image is None


@pytest.mark.parametrize("over, message", [
    ({"options": "['a', 'b'"}, "not a list literal"),
    ({"options": "[]"}, "at least 2 options"),
    ({"question_type": "essay"}, "question_type"),
    ({"answer": None}, "answer"),
    ({"image_1": "path.png"}, "image file not found"),
    ({"image_2": None, "question": "Compare <image 1> and <image 2>."}, "references <image 2>"),
])
def test_bad_hub_rows(bench, over, message):
    with pytest.raises(DataError, match=message):
        bench.problem_from_hub(hub_row(**over), 4)


def test_problems_from_rows(bench):
    rows = [hub_row(id=f"validation_Accounting_{i}") for i in range(1, 4)]
    assert [p.id for p in bench.problems_from_rows(rows, limit=2)] == [
        "validation_Accounting_1", "validation_Accounting_2"]


# ---------------------------------------------------------- multiple choice
@pytest.mark.parametrize("reply, letter", [
    ("(B)", "B"), ("B.", "B"), ("Answer: B", "B"), ("Answer: $2,500", "B"),
    ("Answer: 2500", "B"), ("The answer is (D)", "D"), ("\\boxed{C}", "C"),
    ("Net income = revenue - costs = $2,500.\nAnswer: (B) $2,500", "B"),
    ("Answer: (A)\nAnswer: (C)", "C"),
    ("A careful look at the table gives 2,500", "B"),
])
def test_multiple_choice_extraction(bench, reply, letter):
    p = bench.problem_from_hub(hub_row(), 0)
    assert bench.extract(reply, p) == letter


def test_multiple_choice_scoring(bench):
    p = bench.problem_from_hub(hub_row(), 0)
    assert bench.score("Answer: (B)", p).correct
    assert not bench.score("Answer: (C)", p).correct
    assert bench.score("", p) == bench.score("Answer:", p)
    assert not bench.score("I cannot tell from the image.", p).correct
    assert bench.score("I cannot tell from the image.", p).extracted is None


def test_multiple_choice_gold_list_accepts_any(bench):
    p = bench.problem_from_hub(hub_row(answer="['A', 'C']"), 0)
    assert bench.score("Answer: A", p).correct and bench.score("Answer: C", p).correct
    assert not bench.score("Answer: B", p).correct


# ---------------------------------------------------------------- open answers
@pytest.mark.parametrize("reply, gold, ok", [
    ("Answer: 2.5", "2.5", True),
    ("Answer: 2.50", "2.5", True),
    ("Answer: 2.504", "2.5", True),      # equal after rounding to 2 decimals
    ("Answer: 2.52", "2.5", True),       # within 1%
    ("Answer: 2.6", "2.5", False),
    ("Answer: -3", "-3", True),
    ("Answer: 3", "-3", False),
    ("Answer: 1,234", "1234", True),
    ("Answer: 3/4", "0.75", True),
    ("Answer: 6.5 cm", "6.5 cm", True),
    ("Answer: 30%", "30%", True),
    ("Answer: x = 12", "12", True),
    ("The final result is 12.\nAnswer: 13", "12", False),  # the last answer counts
    ("Answer: twelve point five", "12.5", False),
    ("Answer: Yes", "yes", True),
    ("Answer: yes", "Yes", True),
    ("Answer: The Renaissance period", "Renaissance", True),
    ("Answer: Gothic", "Renaissance", False),
    ("Answer: It is the Renaissance.", "renaissance", True),   # whole-word appearance
    ("Answer: renaissances", "renaissance", False),
    ("Answer: 24", "['24', '24.0']", True),            # a list gold: any element
    ("Answer: 0", "['24', '24.0']", False),
])
def test_open_answers(bench, reply, gold, ok):
    assert bench.score(reply, open_problem(gold)).correct is ok


def test_open_unparseable_is_wrong(bench):
    for reply in ("", "   ", "Answer:"):
        assert bench.score(reply, open_problem("12")) == bench.score("", open_problem("12"))
        assert bench.score(reply, open_problem("12")).extracted is None


def test_numbers_match_and_literal_list():
    assert numbers_match(0.0, 0.0) and not numbers_match(0.01, 0.0)
    assert numbers_match(100.9, 100.0) and not numbers_match(101.5, 100.0)
    assert literal_list("['A', 'B']") == ["A", "B"]
    assert literal_list("[1, 2.5]") == ["1", "2.5"]
    assert literal_list("A") is None and literal_list("[oops") is None


# ------------------------------------------------------------------- prompts
def test_prompts(bench):
    mc = bench.problem_from_hub(hub_row(), 0)
    cot = prompts.cot_prompt(bench, mc)
    assert "\n(A) $1,000\n(B) $2,500\n(C) $3,000\n(D) $4,200\n" in cot
    assert cot.endswith("then answer with the option's letter from the given choices directly.")
    assert prompts.select_prompt(bench, mc, ["a", "b", "c"]).endswith(
        "Give the final answer by selecting the correct option.")
    op = open_problem("12")
    assert prompts.cot_prompt(bench, op) == ("<image 1> Find x.\nFirst generate a step-by-step "
                                             "solution, then answer the question using a "
                                             "single word or phrase.")
    assert prompts.select_prompt(bench, op, ["a", "b", "c"]).endswith(
        "\nWhich prediction is correct? Give the final answer with a numerical value, Yes/No, "
        "or a word or phrase.")
    assert prompts.refine_prompt(bench, op, "Answer: 3").endswith(
        "\nModel's prediction:\nAnswer: 3\nJudge the correctness of the model's prediction "
        "and refine it.")


# ---------------------------------------------------------------- local files
def test_local_round_trip(bench, tmp_path):
    problems = bench.problems_from_rows([
        hub_row(),
        hub_row(id="validation_Math_1", question_type="open", options="[]", answer="12",
                question="<image 1> Find x."),
    ])
    write_local(problems, tmp_path, "validation")
    loaded = bench.load(source=tmp_path)  # default split: validation
    assert [p.id for p in loaded] == ["validation_Accounting_3", "validation_Math_1"]
    assert loaded[0].choices and loaded[1].choices is None
    assert loaded[1].meta["question_type"] == "open"
    assert loaded[0].load_image().size == (30, 20)
    assert bench.score("Answer: 12", loaded[1]).correct
    assert bench.score("Answer: (B)", loaded[0]).correct


@pytest.mark.parametrize("row, message", [
    ({"id": "1", "question": "q", "answer": "A", "meta": {"question_type": "multiple-choice"}},
     "needs 'choices'"),
    ({"id": "1", "question": "q", "answer": "Z", "choices": ["a", "b"]}, "names no option"),
    ({"id": "1", "question": "q", "answer": "A", "meta": {"question_type": "poll"}},
     "question_type"),
])
def test_bad_local_rows(bench, tmp_path, row, message):
    write_jsonl(tmp_path / "validation.jsonl", [row])
    with pytest.raises(DataError, match=message):
        bench.load(source=tmp_path)


def test_load_hub_concatenates_subjects(bench, monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([hub_row(id=f"{split}_{name}_{i}") for i in (1, 2)])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    bench.subjects = ("Art", "Math")
    problems = bench.load()
    assert [p.id for p in problems] == ["validation_Art_1", "validation_Art_2",
                                        "validation_Math_1", "validation_Math_2"]
    assert calls == [("MMMU/MMMU", "Art", "validation"), ("MMMU/MMMU", "Math", "validation")]
    assert [p.meta["subject"] for p in problems] == ["Art", "Art", "Math", "Math"]
    calls.clear()
    assert len(bench.load(split="dev", limit=3)) == 3
    assert [c[1] for c in calls] == ["Art", "Math"]
    calls.clear()
    bench.hub_config = "Physics"
    assert [p.id for p in bench.load()] == ["validation_Physics_1", "validation_Physics_2"]
