"""ChartQA: hub mapping (human split), local files, relaxed accuracy, prompts."""

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import DataError, Problem, get_benchmark, write_local
from r3v_eval.benchmarks.chartqa import ChartQA

from helpers import write_jsonl


@pytest.fixture
def bench():
    return get_benchmark("chartqa")


def chart(color=(200, 30, 30), mode="RGB"):
    return Image.new(mode, (8, 6), color if mode == "RGB" else color + (255,))


def hub_row(query="How many bars are there?", label=("14",), source=0, image="default"):
    return {"image": chart() if image == "default" else image, "query": query,
            "label": list(label), "human_or_machine": source}


def prob(answer, question="What is the value?"):
    return Problem(id="q", question=question, answer=answer, benchmark="chartqa")


# ------------------------------------------------------------------ registry / hub
def test_registered_with_the_real_hub_data_set(bench):
    assert isinstance(bench, ChartQA)
    assert get_benchmark("r3v_chartqa").name == "chartqa"
    assert bench.hub_id == "HuggingFaceM4/ChartQA"
    assert bench.hub_splits["train"] == "train" and bench.hub_splits["test"] == "test"
    assert bench.hub_splits["val"] == "val"


def test_hub_rows_keep_only_human_questions(bench):
    rows = [hub_row("Human q1?", ["14"], 0), hub_row("Machine q?", ["3"], 1),
            hub_row("Human q2?", ["Yes"], "human"), hub_row("Aug q?", ["2"], "machine")]
    problems = bench.problems_from_rows(rows)
    assert [p.question for p in problems] == ["Human q1?", "Human q2?"]
    assert [p.answer for p in problems] == ["14", "Yes"]
    # ids follow the hub's row index, so they stay stable whatever the filter drops
    assert [p.id for p in problems] == ["chartqa-00000", "chartqa-00002"]
    assert all(p.benchmark == "chartqa" and p.meta["source"] == "human" for p in problems)
    assert problems[0].load_image().size == (8, 6)


def test_hub_rows_all_sources_when_human_only_is_off():
    bench = ChartQA()
    bench.human_only = False
    rows = [hub_row(source=0), hub_row(source=1)]
    assert len(bench.problems_from_rows(rows)) == 2


def test_hub_limit_counts_kept_rows(bench):
    rows = [hub_row(source=1), hub_row("a?", source=0), hub_row("b?", source=0)]
    assert [p.question for p in bench.problems_from_rows(rows, limit=1)] == ["a?"]


def test_hub_image_is_converted_to_rgb(bench):
    [p] = bench.problems_from_rows([hub_row(image=chart(mode="RGBA"))])
    assert p.load_image().mode == "RGB"


def test_hub_row_with_several_labels_keeps_them_in_meta(bench):
    p = bench.problem_from_hub(hub_row(label=["7", "seven"]), 3)
    assert p.answer == "7" and p.meta["labels"] == ["7", "seven"]


@pytest.mark.parametrize("row, message", [
    ({"image": None, "query": "q?", "label": ["1"], "human_or_machine": 0}, "image"),
    ({"image": "x", "query": "", "label": ["1"], "human_or_machine": 0},
     "missing or empty 'query'"),
    ({"image": "x", "query": "q?", "label": [], "human_or_machine": 0}, "label"),
    ({"image": "x", "query": "q?", "human_or_machine": 0}, "label"),
])
def test_bad_hub_rows_are_clear_errors(bench, row, message):
    with pytest.raises(DataError, match=rf"row 7: .*{message}"):
        bench.problem_from_hub(row, 7)


def test_hub_problems_round_trip_through_local_files(bench, tmp_path):
    problems = bench.problems_from_rows([hub_row("Q1?", ["4.5"]), hub_row("Q2?", ["No"])])
    write_local(problems, tmp_path, "test")
    back = bench.load("test", source=tmp_path)
    assert [(p.id, p.question, p.answer) for p in back] == [
        (p.id, p.question, p.answer) for p in problems]
    assert back[0].load_image().getpixel((0, 0)) == (200, 30, 30)


# --------------------------------------------------------------------- local files
def write_rows(folder, rows, split="test", images=("img/a.png",)):
    folder.mkdir(parents=True, exist_ok=True)
    for rel in images:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4), (0, 0, 255)).save(folder / rel)
    return write_jsonl(folder / f"{split}.jsonl", rows)


def test_load_local_folder_and_file(bench, tmp_path):
    rows = [{"id": "c1", "question": "Which year is highest?", "answer": "2019",
             "image": "img/a.png", "meta": {"source": "human"}},
            {"id": "c2", "question": "Is it rising?", "answer": "Yes", "image": "img/a.png"}]
    path = write_rows(tmp_path, rows)
    problems = bench.load("test", source=tmp_path)
    assert [p.id for p in problems] == ["c1", "c2"]
    assert problems[0].meta == {"source": "human"}
    assert problems[1].load_image().size == (4, 4)
    assert [p.id for p in bench.load("anything", source=path, limit=1)] == ["c1"]


def test_local_missing_image_names_file_and_line(bench, tmp_path):
    rows = [{"id": "c1", "question": "q?", "answer": "1", "image": "img/a.png"},
            {"id": "c2", "question": "q?", "answer": "2", "image": "img/missing.png"}]
    path = write_rows(tmp_path, rows)
    with pytest.raises(DataError, match=rf"{path}:2: image file not found"):
        bench.load("test", source=tmp_path)


def test_local_bad_rows_name_file_and_line(bench, tmp_path):
    path = write_rows(tmp_path, [{"id": "c1", "question": "q?", "answer": "1"}, "{not json"])
    with pytest.raises(DataError, match=rf"{path}:2: not valid JSON"):
        bench.load("test", source=tmp_path)
    path = write_rows(tmp_path, [{"id": "c1", "question": "q?"}])
    with pytest.raises(DataError, match=rf"{path}:1: missing required key 'answer'"):
        bench.load("test", source=tmp_path)


def test_local_file_that_is_not_utf8_is_a_data_error(bench, tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_bytes(b'{"id": "c1", "question": "q?", "answer": "1"}\n\xff\xfe\n')
    with pytest.raises(DataError, match=rf"{path}: not UTF-8 text"):
        bench.load("test", source=tmp_path)


def test_local_missing_split_file(bench, tmp_path):
    with pytest.raises(DataError, match="local data file not found"):
        bench.load("train", source=tmp_path)


# ------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("gold, reply, correct", [
    # numbers: relaxed accuracy, 5% of gold
    ("14", "Solution:\n1. Count the bars.\n\nAnswer:\n14", True),
    ("14", "Answer: 14.0", True),
    ("100", "Answer: 105", True),
    ("100", "Answer: 95", True),
    ("100", "Answer: 105.5", False),
    ("100", "Answer: 94", False),
    ("1234", "Answer: 1,234", True),
    ("1,234", "Answer: 1234", True),
    ("5.5", "Answer: $5.50", True),
    ("0.75", "Answer: 3/4", True),
    ("-3", "Answer: -3", True),
    ("-3", "Answer: 3", False),
    ("45", "Answer: 45%", True),
    ("45%", "Answer: 45", True),
    ("0", "Answer: 0", True),
    ("0", "Answer: 0.01", False),
    ("12", "Answer: twelve", True),
    ("2019", "The answer is 2019.", True),
    ("7", "We conclude \\boxed{7}", True),
    ("7", "Answer: 5\nWait, recount.\nAnswer: 7", True),    # the last answer counts
    ("5", "Answer: 7\nAnswer: 5\nAnswer: 7", False),
    ("17", "17", True),                                      # bare answer, no marker
    ("17", "The value is 17.", True),
    # text: case-insensitive exact match
    ("Yes", "Answer: yes", True),
    ("Yes", "Answer: Yes, it increased.", True),
    ("yes", "Answer: No", False),
    ("No", "no", True),
    ("Pakistan", "Answer: pakistan.", True),
    ("Pakistan", "Answer: Pakistan and India", False),
    ("Light blue", "Answer:   light   Blue", True),
    ("Light blue", "Answer: blue", False),
])
def test_relaxed_accuracy(bench, gold, reply, correct):
    score = bench.score(reply, prob(gold))
    assert score.correct is correct
    assert score.extracted is not None


@pytest.mark.parametrize("gold, reply", [
    ("14", ""),
    ("14", "   "),
    ("14", "Answer:"),
    ("14", "Answer:\n\n"),
    ("14", "Solution:\n1. There are 12 red bars and 2 blue ones.\n2. Adding gives the total."),
    ("Yes", ("Looking at the chart, the line goes up from 2010 to 2015 and then it goes down "
             "again until 2020 which means the trend is mixed overall")),
])
def test_unparseable_replies_are_wrong_with_nothing_extracted(bench, gold, reply):
    score = bench.score(reply, prob(gold))
    assert score.correct is False
    assert score.extracted is None


@pytest.mark.parametrize("gold, reply", [
    ("14", "Answer: many"),
    ("14", "Answer: 12 or 16"),
    ("Yes", "Answer: 12"),
])
def test_answers_of_the_wrong_kind_are_wrong(bench, gold, reply):
    assert bench.score(reply, prob(gold)).correct is False


def test_non_string_reply_is_wrong(bench):
    assert bench.score(None, prob("1")).correct is False


def test_extracted_numbers_are_canonical(bench):
    assert bench.score("Answer: 1,234.50", prob("1234.5")).extracted == "1234.5"
    assert bench.score("Answer: YES.", prob("Yes")).extracted == "yes"


# ------------------------------------------------------------------------ prompts
def test_prompts_use_the_papers_wording(bench):
    p = prob("14", "How many bars are there?")
    cot = prompts.cot_prompt(bench, p)
    assert cot == ("How many bars are there?\nFirst generate a step-by-step solution, then "
                   "answer the question with a numerical value, Yes/No, or a word or phrase.")
    assert prompts.cot_prompt(bench, p, "llava").endswith("\nLet's think step by step.")
    assert prompts.direct_prompt(bench, p).endswith(
        "\nAnswer the question with a numerical value, Yes/No, or a word or phrase.")
    refine = prompts.refine_prompt(bench, p, "Solution:\n1. x\n\nAnswer:\n12")
    assert refine == ("How many bars are there?\nModel's prediction:\nSolution:\n1. x\n\n"
                      "Answer:\n12\nJudge the correctness of the model's prediction and refine it.")
    select = prompts.select_prompt(bench, p, ["Answer: 12", "Answer: 14", "Answer: 14"])
    assert select == (
        "How many bars are there?\nModel's prediction 1:\nAnswer: 12\nModel's prediction 2:\n"
        "Answer: 14\nModel's prediction 3:\nAnswer: 14\nWhich prediction is correct? Give the "
        "final answer with a numerical value, Yes/No, or a word or phrase.")
