"""GeoQA: hub mapping, local files, prompts and the multiple-choice answer rules."""

import json

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import (
    DataError,
    Problem,
    get_benchmark,
    load_local,
    write_local,
)
from r3v_eval.benchmarks.geoqa import mask_point_names, normalize_split

from helpers import write_jsonl

CHOICES = ["30.0", "40.0", "45.0", "60.0"]


@pytest.fixture
def bench():
    return get_benchmark("geoqa")


@pytest.fixture
def zh():
    return get_benchmark("geoqa_zh")


@pytest.fixture
def problem():  # gold: (B) 40.0
    return Problem(id="g1", question="In triangle A B C, angle A = 80.0, angle B = 60.0, "
                   "then angle C is ()", answer="B", benchmark="geoqa", choices=CHOICES)


def hub_row(i=0, split="test", label=1, **over):
    row = {
        "id": 1000 + i,
        "subject": "As shown in the figure, A B parallel C D, angle 1 = 50.0, then angle 2 is ()",
        "choices": ["40°", "50°", "130°", "140°"],
        "label": label,
        "formal_point": ["parallel lines"],
        "answer": "",
        "comment": "Because AB ∥ CD, angle 2 = angle 1 = 50°.",
        "original_split": split,
        "image": Image.new("RGB", (24, 16), (255, 255, 255)),
    }
    row.update(over)
    return row


# ------------------------------------------------------------------ registry
def test_registered_english_by_default_chinese_port_labelled(bench, zh):
    assert bench.name == "geoqa" and bench.hub_id is None
    assert get_benchmark("r3v_geoqa").name == "geoqa"
    with pytest.raises(DataError, match=r"not on the Hugging Face hub.*box\.nju\.edu\.cn.*geoqa_zh"):
        bench.load("test")
    assert zh.name == "geoqa_zh" and zh.hub_id == "hz2475/geoQA"
    assert set(zh.hub_splits) == {"train", "validation", "test"}


def test_companion_files_load_as_r3v_ran_them(bench, tmp_path):
    """geoQA-data: a JSON array per split file, images under images/, answer a letter."""
    (tmp_path / "images").mkdir()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "images" / "test-0.png")
    Image.new("RGB", (8, 8), "red").save(tmp_path / "images" / "test-1.png")
    items = [{"question": "Calculation: As shown in the figure, angle C is ()",
              "choices": CHOICES, "answer": "B", "image": "test-0.png"},
             {"question": "Calculation: angle D is ()", "choices": CHOICES, "answer": "D",
              "image": "test-1.png"},
             {"question": "Calculation: broken", "choices": CHOICES, "answer": "A",
              "image": "missing.png"}]
    (tmp_path / "test.jsonl").write_text(json.dumps(items), encoding="utf-8")
    with pytest.raises(DataError, match=r"(?s)1 of 3 rows.*item 2: image file not found"):
        bench.load("test", source=tmp_path)
    (tmp_path / "test.jsonl").write_text(json.dumps(items[:2]), encoding="utf-8")
    a, b = bench.load("test", source=tmp_path)
    assert (a.id, a.answer, b.answer) == ("test-0", "B", "D")
    assert a.question.startswith("Calculation: ")
    assert a.load_image().getpixel((3, 3)) == (255, 255, 255)  # transparent -> white, not black
    assert bench.score("Answer: (B)", a).correct and bench.last_load.kept == 2


# ---------------------------------------------------------------- extraction
@pytest.mark.parametrize("reply, letter", [
    ("(B)", "B"),
    ("B.", "B"),
    ("B", "B"),
    ("b", "B"),
    ("Answer: B", "B"),
    ("Answer: (B) 40.0", "B"),
    ("answer: b", "B"),
    ("The answer is (C)", "C"),
    ("The answer is d.", "D"),
    ("\\boxed{C}", "C"),
    ("Solution:\n\\boxed{B}", "B"),
    ("Answer: 40.0", "B"),           # option text instead of the letter
    ("Answer: 40", "B"),             # the same number, written differently
    ("Answer: 40°", "B"),
    ("Answer: C. 45.0", "C"),
    ("Answer: D: 60.0", "D"),
    ("Answer: Option A", "A"),
    ("Answer: A is correct", "A"),   # "A" followed by a verb is the option, not an article
    ("Answer: I think it is B", "B"),
    # the LAST "Answer:" counts
    ("Answer: (A) 30.0\nWait, that is wrong.\nAnswer: (D) 60.0", "D"),
    (("Solution:\n1. angle A + angle B = 140.0\n2. angle C = 180.0 - 140.0 = 40.0\n\n"
      "Answer:\nB"), "B"),
    # only the first line after the marker is the answer; the explanation below is not
    ("Answer: B\n\nExplanation: A is wrong because C is larger.", "B"),
    # point names are not options
    ("Answer: angle C = 40°", "B"),
    ("Answer: ∠C=40°", "B"),
    ("In triangle A B C , angle A = 80.0 , angle B = 60.0 , so angle C = 40.0 .", "B"),
    ("Since A B parallel C D, the answer is B.", "B"),
    ("A right angle is 90°, so angle C = 40°.", "B"),  # a sentence opening with "A "
])
def test_extracts_the_chosen_option(bench, problem, reply, letter):
    assert bench.extract(reply, problem) == letter


@pytest.mark.parametrize("reply", [
    "",
    "   \n ",
    "Answer:",
    "I am not sure.",
    "Answer: (E)",                       # not an option of a 4-choice question
    "Answer: 50.0",                      # a number that is no option
    "Answer: B′",                        # a point name, not the option B
    "A triangle has three sides.",       # the article "A" is not option A
])
def test_unparseable_is_wrong_never_random(bench, problem, reply):
    # the official script credits unparseable answers 75% of the time: never here
    for _ in range(20):
        score = bench.score(reply, problem)
        assert score.correct is False
        assert score.extracted is None


def test_score_right_and_wrong(bench, problem):
    assert bench.score("Answer: (B)", problem).correct is True
    wrong = bench.score("Answer: (C)", problem)
    assert wrong.correct is False and wrong.extracted == "C"
    assert bench.score(None, problem).correct is False  # not even a string


def test_gold_given_as_option_text(bench):
    p = Problem(id="t", question="q", answer="45.0", benchmark="geoqa", choices=CHOICES)
    assert bench.score("Answer: (C)", p).correct
    assert not bench.score("Answer: (B)", p).correct


def test_mask_point_names_keeps_option_letters():
    assert mask_point_names("angle C = 40") == "angle # = 40"
    assert mask_point_names("A B parallel C D") == "# # parallel # #"
    assert mask_point_names("(C) 45.0") == "(C) 45.0"
    assert mask_point_names("C. 45.0") == "C. 45.0"
    assert mask_point_names("the answer is B") == "the answer is B"


# ------------------------------------------------------------------- prompts
def test_prompts_use_the_paper_wording(bench, problem):
    cot = prompts.cot_prompt(bench, problem, "qwen")
    assert cot.startswith(problem.question)
    assert "(A) 30.0\n(B) 40.0\n(C) 45.0\n(D) 60.0" in cot
    assert cot.endswith("\nFirst generate a step-by-step solution, then answer with the "
                        "option's letter from the given choices directly.")
    assert prompts.cot_prompt(bench, problem, "qwen2").endswith(
        "\nAnswer the question with Chain-of-Thought.")
    sel = prompts.select_prompt(bench, problem, ["s1\nAnswer: A", "s2\nAnswer: B", "s3"])
    assert "\nModel's prediction 1:\ns1\nAnswer: A\nModel's prediction 2:\ns2" in sel
    assert "\nModel's prediction 3:\ns3\n" in sel
    assert sel.endswith("Which prediction is correct? Give the final answer by selecting "
                        "the correct option.")
    ref = prompts.refine_prompt(bench, problem, "Answer: (A)")
    assert ref.endswith("\nModel's prediction:\nAnswer: (A)\nJudge the correctness of the "
                        "model's prediction and refine it.")
    assert "(D) 60.0" in ref


# ---------------------------------------------------------------- hub mapping
def test_problem_from_hub_maps_label_to_letter(zh):
    p = zh.problem_from_hub(hub_row(label=2), 0)
    assert p.id == "1000"
    assert p.answer == "C"
    assert p.choices == ["40°", "50°", "130°", "140°"]
    assert p.question.startswith("As shown in the figure")
    assert isinstance(p.image, Image.Image)
    assert p.load_image().size == (24, 16)
    assert p.meta["original_split"] == "test"
    assert p.meta["formal_point"] == ["parallel lines"]
    assert "comment" in p.meta
    assert p.benchmark == "geoqa_zh" and p.meta["language"] == "zh"
    assert zh.score("Answer: (C) 130°", p).correct


def test_split_aliases():
    assert normalize_split("val") == normalize_split("Valid") == "validation"
    assert normalize_split(" test ") == "test"
    assert normalize_split("unknown") is None and normalize_split(None) is None


@pytest.mark.parametrize("over, message", [
    ({"choices": ["1"]}, "choices"),
    ({"choices": None}, "choices"),
    ({"label": 7}, "out of range"),
    ({"label": "x"}, "integer"),
    ({"label": None, "answer": ""}, "gold answer"),
    ({"subject": ""}, "problem text"),
    ({"image": 123}, "image"),
])
def test_bad_hub_rows_give_clear_errors(zh, over, message):
    with pytest.raises(DataError, match=message):
        zh.problem_from_hub(hub_row(**over), 5)


def test_hub_row_without_id_is_named_by_its_index(zh):
    assert zh.problem_from_hub(hub_row(id=None), 5).id == "5"
    assert zh.problem_from_hub(hub_row(id=""), 5).id == "5"
    assert zh.problem_from_hub(hub_row(), 5).id == "1000"


def test_label_missing_falls_back_to_answer_letter(zh):
    p = zh.problem_from_hub(hub_row(label=None, answer="D"), 0)
    assert p.answer == "D"


def test_unknown_split_is_an_error(zh):
    with pytest.raises(DataError, match="no split"):
        zh.load_hub("dev")


# ---------------------------------------------------------------- local files
def test_local_round_trip_with_images(zh, tmp_path):
    problems = zh.problems_from_rows([hub_row(0, "test", 0), hub_row(1, "test", 3)])
    write_local(problems, tmp_path, "test")
    loaded = zh.load(split="test", source=tmp_path)
    assert [p.answer for p in loaded] == ["A", "D"]
    assert loaded[0].choices == problems[0].choices
    assert loaded[0].load_image().size == (24, 16)
    assert loaded[1].meta["original_split"] == "test"


def test_local_canonical_schema(bench, tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "q1.png")
    write_jsonl(tmp_path / "test.jsonl", [
        {"id": "q1", "question": "Calculation: angle C is ()", "answer": "B",
         "choices": CHOICES, "image": "q1.png"},
        {"id": "q2", "question": "Calculation: angle D is ()", "answer": "60.0",
         "choices": CHOICES},
    ])
    loaded = load_local(bench, tmp_path, "test")
    assert loaded[0].image == str(tmp_path / "q1.png")
    assert loaded[0].load_image().size == (8, 8)
    assert bench.score("Answer: (B)", loaded[0]).correct
    assert bench.score("Answer: (D)", loaded[1]).correct  # gold given as option text


@pytest.mark.parametrize("row, message", [
    ({"id": "x", "question": "q", "answer": "B"},
     r"test\.jsonl:1: GeoQA rows need 'choices' \(a list of at least 2 options\)"),
    ({"id": "x", "question": "q", "answer": "F", "choices": CHOICES},
     r"test\.jsonl:1: answer 'F' is neither an option letter \(A-D\) nor an option's text"),
    ({"id": "x", "question": "q", "answer": "B", "choices": CHOICES, "image": "nope.png"},
     "image file not found"),
    ({"id": "x", "answer": "B", "choices": CHOICES}, "question"),
])
def test_bad_local_rows_give_clear_errors(bench, tmp_path, row, message):
    write_jsonl(tmp_path / "test.jsonl", [row])
    with pytest.raises(DataError, match=message):
        bench.load(split="test", source=tmp_path)


def test_load_hub_filters_the_single_hub_split(zh, monkeypatch):
    """load_hub on an in-memory copy of the port: one hub split, filtered by original_split."""
    datasets = pytest.importorskip("datasets")
    rows = [hub_row(i, split, image=None) for i, split in
            enumerate(["train", "test", "val", "test", "train"])]
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert [p.id for p in zh.load(split="test")] == ["1001", "1003"]
    assert [p.id for p in zh.load(split="validation")] == ["1002"]
    assert [p.id for p in zh.load(split="train", limit=1)] == ["1000"]
    assert calls[0] == ("hz2475/geoQA", None, "train")
    rows[:] = [hub_row(0, "weird", image=None)]
    with pytest.raises(DataError, match="values seen: \\['weird'\\]"):
        zh.load(split="test")
