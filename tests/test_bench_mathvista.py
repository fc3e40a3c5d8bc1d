"""MathVista: hub mapping and rule-based scoring (no GPT judge), with and without meta."""

import io
import json

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import DataError, Problem, get_benchmark, write_local
from r3v_eval.benchmarks.mathvista import answer_kind, decimals_in, list_elements
from r3v_eval.rescore import read_replies, rescore

from helpers import write_jsonl


@pytest.fixture
def bench():
    return get_benchmark("mathvista")


def hub_row(**over):
    """Shaped like a row of AI4Math/MathVista, split testmini."""
    row = {
        "pid": "1",
        "question": "When a spring does work on an object, we cannot find the work by simply "
                    "multiplying the spring force by the object's displacement. Which is larger?",
        "image": "images/1.jpg",
        "decoded_image": Image.new("RGB", (40, 30), (10, 200, 10)),
        "choices": None,
        "unit": None,
        "precision": None,
        "answer": "14",
        "question_type": "free_form",
        "answer_type": "integer",
        "metadata": {"category": "math-targeted-vqa", "context": "scientific figure",
                     "grade": "college", "img_height": 720, "img_width": 1514,
                     "language": "english", "skills": ["scientific reasoning"],
                     "source": "SciBench", "split": "testmini", "task": "textbook question "
                     "answering"},
        "query": "Hint: Please answer the question requiring an integer answer and provide "
                 "the final value, e.g., 1, 2, 3, at the end.\nQuestion: When a spring ...",
    }
    row.update(over)
    return row


def mc_row(**over):
    return hub_row(pid="2", question="Is the number of red cubes less than blue cubes?",
                   choices=["Yes", "No"], answer="No", question_type="multi_choice",
                   answer_type="text", **over)


def free(answer, meta=None, unit=None, choices=None):
    """A problem as ``r3v score`` builds it: no question, no image, maybe no meta."""
    return Problem(id="x", question="", answer=answer, benchmark="mathvista", unit=unit,
                   choices=choices, meta=meta or {})


def test_registered(bench):
    assert bench.hub_id == "AI4Math/MathVista"
    assert bench.hub_splits == {"testmini": "testmini", "test": "test"}
    assert bench.test_split == "testmini"
    with pytest.raises(DataError, match="out-of-distribution"):
        bench.load(split="train")


# ---------------------------------------------------------------- hub mapping
def test_problem_from_hub_free_form(bench):
    p = bench.problem_from_hub(hub_row(), 0)
    assert p.id == "1" and p.answer == "14" and p.choices is None
    assert p.question.startswith("When a spring does work")
    assert p.load_image().size == (40, 30)
    assert p.meta["answer_type"] == "integer" and p.meta["question_type"] == "free_form"
    assert p.meta["query"].startswith("Hint:")
    assert p.meta["metadata"]["source"] == "SciBench"
    assert p.meta["image_path"] == "images/1.jpg"
    assert "precision" not in p.meta


def test_problem_from_hub_multi_choice_and_float(bench):
    p = bench.problem_from_hub(mc_row(), 1)
    assert p.choices == ["Yes", "No"] and p.answer == "No"
    assert bench.score("Answer: (B)", p).correct
    f = bench.problem_from_hub(hub_row(answer="1.45", answer_type="float", precision=2.0,
                                       unit="cm"), 2)
    assert f.meta["precision"] == 2 and f.unit == "cm"
    assert bench.score("Answer: 1.448 cm", f).correct


@pytest.mark.parametrize("over, message", [
    ({"decoded_image": None}, "decoded_image"),
    ({"decoded_image": "images/1.jpg"}, "image file not found"),
    ({"decoded_image": {"bytes": b"junk", "path": "1.jpg"}}, "unreadable image 1.jpg"),
    ({"question_type": "multi_choice", "choices": ["1", "2"], "answer": "3"},
     "not one of the choices"),
    ({"question_type": "essay"}, "question_type"),
    ({"answer_type": "complex"}, "answer_type"),
    ({"question_type": "multi_choice", "choices": None}, "choices"),
    ({"pid": None}, "pid"),
])
def test_bad_hub_rows(bench, over, message):
    with pytest.raises(DataError, match=message):
        bench.problem_from_hub(hub_row(**over), 9)


def test_hidden_test_answers_load_but_never_score(bench):
    p = bench.problem_from_hub(hub_row(answer=None, answer_type="text"), 0)
    assert p.answer == ""
    assert not bench.score("Answer: 14", p).correct


# ------------------------------------------------------------ multiple choice
@pytest.mark.parametrize("reply, letter", [
    ("(B)", "B"), ("B.", "B"), ("Answer: B", "B"), ("Answer: No", "B"), ("Answer: no", "B"),
    ("Answer: yes", "A"), ("The answer is (A)", "A"), ("\\boxed{B}", "B"),
    ("There are 3 red cubes and 5 blue cubes, so fewer red ones.\nAnswer: (A) Yes", "A"),
])
def test_multi_choice_extraction(bench, reply, letter):
    p = bench.problem_from_hub(mc_row(), 0)
    assert bench.extract(reply, p) == letter


def test_multi_choice_numbers(bench):
    p = bench.problem_from_hub(hub_row(question="What is x?", choices=["2", "4", "6", "8"],
                                       answer="6", question_type="multi_choice",
                                       answer_type="integer"), 0)
    assert bench.score("Answer: 6", p).correct
    assert bench.score("Answer: (C)", p).correct
    assert not bench.score("Answer: (D) 8", p).correct
    # no "most similar option" fallback: an answer that is no option is unparseable
    assert bench.score("Answer: 7", p).extracted is None


# ------------------------------------------------------------- free-form rules
@pytest.mark.parametrize("reply, ok", [
    ("Answer: 14", True), ("Answer: 14.0", True), ("answer: 14.", True),
    ("The answer is 14", True), ("\\boxed{14}", True), ("Answer: fourteen", True),
    ("Answer: 13.6", False),           # no truncation or rounding to an integer
    ("Answer: 15", False),
    ("Step 1 gives 12.\nStep 2 adds 2: 12 + 2 = 14.", True),  # no marker: the last equation
])
def test_integer(bench, reply, ok):
    p = bench.problem_from_hub(hub_row(), 0)
    assert bench.score(reply, p).correct is ok


@pytest.mark.parametrize("reply, ok", [
    ("Answer: 1.45", True), ("Answer: 1.4500", True), ("Answer: 1.454", True),
    ("Answer: 1.446", True), ("Answer: 1.44", False), ("Answer: 1.5", False),
    ("Answer: -1.45", False),
])
def test_float_rounds_to_precision(bench, reply, ok):
    p = free("1.45", {"question_type": "free_form", "answer_type": "float", "precision": 2})
    assert bench.score(reply, p).correct is ok


def test_negative_and_thousands(bench):
    assert bench.score("Answer: -3", free("-3")).correct
    assert not bench.score("Answer: 3", free("-3")).correct
    assert bench.score("Answer: 1,234", free("1234")).correct
    assert bench.score("Answer: 3/4", free("0.75")).correct
    assert not bench.score("Answer: 3/5", free("0.75")).correct


@pytest.mark.parametrize("reply, gold, ok", [
    ("Answer: [1, 2, 3]", "[1, 2, 3]", True),
    ("The list is [1.0, 2, 3]. Answer: [1, 2, 3]", "[1, 2, 3]", True),
    ("Answer: 1, 2, 3", "[1, 2, 3]", True),
    ("Answer: [1, 3, 2]", "[1, 2, 3]", False),
    ("Answer: [1, 2]", "[1, 2, 3]", False),
    ("Answer: [2.51, 3.1]", "[2.5, 3.1]", True),     # rounded to the gold element's decimals
    ("Answer: [2.56, 3.1]", "[2.5, 3.1]", False),
])
def test_list(bench, reply, gold, ok):
    p = free(gold, {"question_type": "free_form", "answer_type": "list"})
    assert bench.score(reply, p).correct is ok


@pytest.mark.parametrize("reply", ["", "Answer:", "I cannot read the chart.",
                                   "Answer: somewhere between 3 and 5"])
def test_unparseable_is_wrong(bench, reply):
    p = bench.problem_from_hub(hub_row(), 0)
    score = bench.score(reply, p)
    assert (score.correct, score.extracted) == (False, None)


# ------------------------------------------------------ without meta (r3v score)
def test_kind_is_inferred_without_meta():
    assert answer_kind(free("14")) == ("integer", None)
    assert answer_kind(free("1.45")) == ("float", 2)
    assert answer_kind(free("2.0")) == ("float", 1)
    assert answer_kind(free("[1, 2]")) == ("list", None)
    assert answer_kind(free("Yes")) == ("text", None)
    assert answer_kind(free("No", choices=["Yes", "No"])) == ("choice", None)
    assert decimals_in("1,234.50") == 2 and decimals_in("abc") is None
    assert list_elements("no list here") is None


def test_scoring_without_meta(bench):
    assert bench.score("Answer: 1.454", free("1.45")).correct
    assert not bench.score("Answer: 1.46", free("1.45")).correct
    assert bench.score("Answer: 2", free("2.0")).correct
    assert not bench.score("Answer: 2.5", free("2")).correct
    assert bench.score("Answer: (B)", free("No", choices=["Yes", "No"])).correct
    assert bench.score("Answer: no", free("No", choices=["Yes", "No"])).correct
    assert bench.score("Answer: YES", free("yes")).correct
    assert bench.score("Answer: 5 cm", free("5", unit="cm")).correct


def test_rescore_lines_without_meta(bench):
    lines = [
        json.dumps({"response": "Answer: 1.454", "answer": "1.45"}),
        json.dumps({"response": "Answer: (A)", "answer": "No", "choices": ["Yes", "No"]}),
        json.dumps({"response": "", "answer": "3"}),
        json.dumps({"response": "Answer: 2.71", "answer": "2.7", "meta": {
            "question_type": "free_form", "answer_type": "float", "precision": 1}}),
    ]
    out = io.StringIO()
    scores = rescore(bench, read_replies(lines, bench), out)
    assert [s.correct for s in scores] == [True, False, False, True]
    assert [json.loads(x)["extracted"] for x in out.getvalue().splitlines()] == [
        "1.45", "A", None, "2.7"]


def test_rescore_bad_lines_are_reported_together_by_line(bench):
    lines = [json.dumps({"response": "Answer: 1", "answer": "1"}), "", "{not json", '["x"]']
    with pytest.raises(DataError) as err:
        read_replies(lines, bench)
    assert "line 3: not valid JSON" in str(err.value)
    assert "line 4: expected a JSON object, got list" in str(err.value)


# ------------------------------------------------------------------- prompts
def test_prompts(bench):
    mc = bench.problem_from_hub(mc_row(), 0)
    cot = prompts.cot_prompt(bench, mc)
    assert cot == ("Is the number of red cubes less than blue cubes?\nOptions:\n(A) Yes\n(B) No"
                   "\nFirst generate a step-by-step solution, then answer with the option's "
                   "letter from the given choices directly.")
    ff = bench.problem_from_hub(hub_row(), 0)
    assert prompts.cot_prompt(bench, ff).endswith(
        "\nFirst generate a step-by-step solution, then answer the question using a single "
        "word or phrase.")
    assert "Hint:" not in prompts.cot_prompt(bench, ff)
    assert prompts.select_prompt(bench, mc, ["a", "b", "c"]).endswith(
        "by selecting the correct option.")
    assert prompts.select_prompt(bench, ff, ["a", "b", "c"]).endswith(
        "Give the final answer with a numerical value, Yes/No, or a word or phrase.")
    assert "\nJudge the correctness of the model's prediction and refine it." in \
        prompts.refine_prompt(bench, ff, "Answer: 13")


# ---------------------------------------------------------------- local files
def test_local_round_trip(bench, tmp_path):
    problems = bench.problems_from_rows([hub_row(), mc_row()])
    write_local(problems, tmp_path, "testmini")
    loaded = bench.load(source=tmp_path)
    assert [p.id for p in loaded] == ["1", "2"]
    assert loaded[0].meta["metadata"]["skills"] == ["scientific reasoning"]
    assert loaded[0].load_image().size == (40, 30)
    assert bench.score("Answer: 14", loaded[0]).correct
    assert bench.score("Answer: No", loaded[1]).correct


@pytest.mark.parametrize("row, message", [
    ({"id": "1", "question": "q", "answer": "Maybe", "choices": ["Yes", "No"]},
     "not one of the choices"),
    ({"id": "1", "question": "q", "answer": "1", "meta": {"answer_type": "complex"}},
     "answer_type"),
    ({"id": "1", "question": "q", "answer": "1", "meta": {"question_type": "multi_choice"}},
     "needs 'choices'"),
    ({"id": "1", "question": "q", "answer": "1", "image": 5}, "path string"),
])
def test_bad_local_rows(bench, tmp_path, row, message):
    write_jsonl(tmp_path / "testmini.jsonl", [row])
    with pytest.raises(DataError, match=message):
        bench.load(source=tmp_path)


def test_load_hub_reads_testmini_by_default(bench, monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return datasets.Dataset.from_list([hub_row(), mc_row()])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert [p.id for p in bench.load(limit=1)] == ["1"]
    assert calls == [("AI4Math/MathVista", None, "testmini")]
