"""M3CoT: hub mapping (context, rationale), local files, prompts and answer rules."""

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import DataError, Problem, get_benchmark, write_local

from helpers import write_jsonl

ANIMALS = ["penguin", "eagle", "ostrich", "Vitamin C"]


@pytest.fixture
def bench():
    return get_benchmark("m3cot")


@pytest.fixture
def problem():  # gold (B) eagle
    return Problem(id="m1", question="Which animal in the picture can fly?", answer="B",
                   benchmark="m3cot", choices=ANIMALS)


def hub_row(i=0, **over):
    row = {
        "id": f"physical-commonsense-{i}",
        "category": "physical-commonsense",
        "image_id": f"img-{i}",
        "question": "Which property do these three objects have in common?",
        "choices": ["hard", "stretchy", "sticky"],
        "context": "Select the best answer.",
        "answer": "A",
        "rationale": "Look at each object. A hard object does not change shape when pressed.",
        "split": "train",
        "image": Image.new("RGB", (32, 20), (0, 128, 255)),
        "domain": "science",
        "topic": "physics",
    }
    row.update(over)
    return row


def test_registered(bench):
    assert bench.name == "m3cot"
    assert bench.hub_id == "LightChen2333/M3CoT"
    assert bench.hub_splits == {"train": "train", "validation": "validation", "test": "test"}


# ---------------------------------------------------------------- extraction
@pytest.mark.parametrize("reply, letter", [
    ("(B)", "B"),
    ("B.", "B"),
    ("Answer: B", "B"),
    ("Answer: (B) eagle", "B"),
    ("Answer: eagle", "B"),                 # option text instead of a letter
    ("Answer: Eagle.", "B"),                # case does not matter
    ("The answer is (C)", "C"),
    ("\\boxed{A}", "A"),
    ("Answer: Vitamin C", "D"),             # an option's exact text beats its capital letter
    ("Answer: (A) penguin\n...on second thought...\nAnswer: (B) eagle", "B"),
    (("Solution:\n1. A penguin cannot fly.\n2. An ostrich cannot fly.\n3. An eagle flies.\n\n"
      "Answer:\nB"), "B"),
    # no "Answer:" at all
    ("B", "B"),
    ("The eagle is the only bird here that can fly, so B.", "B"),
    ("A penguin and an ostrich cannot fly; only the eagle can.", None),  # ambiguous text
    ("I think the eagle can fly.", "B"),    # "I" is a pronoun; the option text appears
])
def test_extracts_the_chosen_option(bench, problem, reply, letter):
    assert bench.extract(reply, problem) == letter


def test_yes_no_options_are_case_insensitive(bench):
    p = Problem(id="y", question="Is the cup full?", answer="A", benchmark="m3cot",
                choices=["Yes", "No"])
    assert bench.score("Answer: yes", p).correct
    assert bench.score("Answer: YES", p).correct
    assert not bench.score("Answer: no", p).correct
    assert bench.score("Answer: no", p).extracted == "B"


@pytest.mark.parametrize("reply", ["", "Answer:", "Answer: (F)", "Answer: a giraffe",
                                   "A bird with wings."])
def test_unparseable_is_wrong(bench, problem, reply):
    for _ in range(10):
        score = bench.score(reply, problem)
        assert (score.correct, score.extracted) == (False, None)


def test_rationale_with_several_letters_uses_the_last_answer(bench, problem):
    reply = ("Option A (penguin) cannot fly and option C (ostrich) cannot either; D is a "
             "vitamin.\nAnswer: (B)")
    assert bench.score(reply, problem) == bench.score("(B)", problem)
    assert bench.score(reply, problem).correct


# ------------------------------------------------------------------- prompts
def test_prompts(bench):
    p = bench.problem_from_hub(hub_row(), 0)
    cot = prompts.cot_prompt(bench, p)
    assert cot.startswith("Context: Select the best answer.\nWhich property")
    assert "\n(A) hard\n(B) stretchy\n(C) sticky\n" in cot
    assert cot.endswith("First generate a step-by-step solution, then answer with the option's "
                        "letter from the given choices directly.")
    assert prompts.cot_prompt(bench, p, "llava").endswith("\nLet's think step by step.")
    sel = prompts.select_prompt(bench, p, ["x", "y", "z"])
    assert sel.endswith("\nModel's prediction 3:\nz\nWhich prediction is correct? Give the "
                        "final answer by selecting the correct option.")
    ref = prompts.refine_prompt(bench, p, "Answer: (C)")
    assert "Judge the correctness of the model's prediction and refine it." in ref


# ---------------------------------------------------------------- hub mapping
def test_problem_from_hub(bench):
    p = bench.problem_from_hub(hub_row(3), 3)
    assert p.id == "physical-commonsense-3"
    assert p.question == ("Context: Select the best answer.\n"
                          "Which property do these three objects have in common?")
    assert p.answer == "A"
    assert p.choices == ["hard", "stretchy", "sticky"]
    assert p.meta["rationale"].startswith("Look at each object")
    assert p.meta["domain"] == "science" and p.meta["topic"] == "physics"
    assert p.load_image().size == (32, 20)


def test_empty_context_is_left_out(bench):
    p = bench.problem_from_hub(hub_row(context=""), 0)
    assert p.question == "Which property do these three objects have in common?"
    assert "Context" not in prompts.cot_prompt(bench, p)


def test_answer_as_option_text_is_converted(bench):
    assert bench.problem_from_hub(hub_row(answer="sticky"), 0).answer == "C"


def test_problems_from_rows_and_limit(bench):
    rows = [hub_row(i) for i in range(5)]
    assert [p.id for p in bench.problems_from_rows(rows, limit=2)] == [
        "physical-commonsense-0", "physical-commonsense-1"]


@pytest.mark.parametrize("over, message", [
    ({"answer": "E"}, "neither"),
    ({"choices": ["only one"]}, "choices"),
    ({"question": None}, "question"),
    ({"answer": None}, "answer"),
    ({"image": b"not an image"}, "image"),
])
def test_bad_hub_rows(bench, over, message):
    with pytest.raises(DataError, match=message):
        bench.problem_from_hub(hub_row(**over), 2)


# ---------------------------------------------------------------- local files
def test_local_round_trip_keeps_rationale(bench, tmp_path):
    problems = bench.problems_from_rows([hub_row(0), hub_row(1, answer="B")])
    write_local(problems, tmp_path, "validation")
    loaded = bench.load(split="validation", source=tmp_path)
    assert [p.answer for p in loaded] == ["A", "B"]
    assert loaded[0].meta["rationale"] == problems[0].meta["rationale"]
    assert loaded[1].load_image().size == (32, 20)
    assert bench.score("Answer: (B) stretchy", loaded[1]).correct


def test_bad_local_rows(bench, tmp_path):
    path = tmp_path / "test.jsonl"
    write_jsonl(path, [{"id": "1", "question": "q", "answer": "Z", "choices": ["a", "b"]}])
    with pytest.raises(DataError, match=r"test\.jsonl:1: answer 'Z' is neither an option letter "
                                         r"\(A-B\) nor an option's text"):
        bench.load(split="test", source=tmp_path)
    write_jsonl(path, [{"id": "1", "question": "q", "answer": "A", "choices": ["a"]}])
    with pytest.raises(DataError, match=r"test\.jsonl:1: M3CoT rows need 'choices'"):
        bench.load(split="test", source=tmp_path)
    write_jsonl(path, ["{not json}"])
    with pytest.raises(DataError, match="not valid JSON"):
        bench.load(split="test", source=tmp_path)
    with pytest.raises(DataError, match="not found"):
        bench.load(split="train", source=tmp_path)
