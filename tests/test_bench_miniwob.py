"""MiniWob offline: the SeeClick action format, the coordinate frame, the box / exact-text
scorer, local loading, prompts (no browser needed; the real environment is in
test_miniwob_env.py)."""

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import DataError, Problem, get_benchmark
from r3v_eval.benchmarks.miniwob import Click, MiniWob, Type, click_pixel, inside, parse_action

from helpers import write_jsonl

BOXES = [[2, 85, 104, 116]]          # a Submit button, CSS px [left, top, right, bottom)


@pytest.fixture
def bench():
    return get_benchmark("miniwob")


def prob(answer="click(0.33, 0.48)", boxes=BOXES, question="Click Submit."):
    meta = {"boxes": boxes, "viewport": [160, 210]} if boxes is not None else {}
    return Problem(id="w", question=question, answer=answer, benchmark="miniwob", meta=meta)


# ------------------------------------------------------------------- the action format
@pytest.mark.parametrize("text, action", [
    ("click(0.49, 0.27)", Click(0.49, 0.27)),
    ("CLICK( 0.5 ,0.25 )", Click(0.5, 0.25)),
    ("click(x=0.1, y=0.9)", Click(0.1, 0.9)),
    ("click(.5, 1)", Click(0.5, 1.0)),
    ("click(0, 0)", Click(0.0, 0.0)),
    ('type("Agustina")', Type("Agustina")),
    ("type('Bob Smith')", Type("Bob Smith")),
    ("type(“Kasey”)", Type("Kasey")),
    ("type(Agustina)", Type("Agustina")),                   # bare text
    ('type(text="a, b (c)")', Type("a, b (c)")),
    ('type("say \\"hi\\"")', Type('say "hi"')),
    ('type("  two  spaces ")', Type("  two  spaces ")),     # white space is kept
    ("I click(0.1, 0.2) and then click(0.3, 0.4)", Click(0.3, 0.4)),   # the last one
])
def test_parse_action(text, action):
    assert parse_action(text) == action
    assert parse_action(str(action)) == action              # the canonical form parses back


@pytest.mark.parametrize("text", [
    None, "", "click", "click()", "click(0.5)", "click(0.5, 0.5, 0.5)", "click(a, b)",
    "click(1.5, 0.2)", "click(78, 120)",                    # pixels are not this frame
    "click(-0.1, 0.2)", 'type("")', "type()", 'type("a", "b")', 'type("unclosed)',
    "tap(0.1, 0.2)", "press(Enter)", "click(0.1, 0.2", "Click the Submit button",
    "click(0.1, 0.2) then click(",                          # the last action is malformed
])
def test_malformed_actions_are_none(text):
    assert parse_action(text) is None


def test_canonical_form():
    assert str(parse_action("click( 0.50 , 0.250 )")) == "click(0.5, 0.25)"
    assert str(parse_action("type('a\"b')")) == 'type("a\\"b")'


def test_coordinate_frame():
    assert click_pixel(0.0, 0.0) == (0, 0)
    assert click_pixel(1.0, 1.0) == (159, 209)              # the last pixel, not one beyond
    assert click_pixel(0.5, 0.5) == (80, 105)
    assert click_pixel(0.29, 0.29) == (46, 60)              # 0.29 * 160 = 46.4; 0.29 * 210 = 60.9
    assert click_pixel(0.35, 0.1) == (56, 21)               # 56.000000000000014 and 21.0: no drift
    assert click_pixel(0.5, 0.5, viewport=(375, 667)) == (187, 333)


def test_inside_is_left_and_top_inclusive_right_and_bottom_exclusive():
    assert inside((2, 85), BOXES) and inside((103, 115), BOXES)
    assert not inside((104, 90), BOXES) and not inside((50, 116), BOXES)
    assert not inside((1, 90), BOXES) and not inside((50, 84), BOXES)
    assert inside((5, 5), [[100, 100, 110, 110], [0, 0, 10, 10]])   # any of several boxes


# ------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("answer, boxes, reply, correct", [
    ("click(0.33, 0.48)", BOXES, "Solution:\n1. Submit is below.\n\nAnswer:\nclick(0.33, 0.48)", True),
    ("click(0.33, 0.48)", BOXES, "Answer: click(0.05, 0.41)", True),       # (8, 86): in the box
    ("click(0.33, 0.48)", BOXES, "Answer: click(0.0125, 0.4048)", True),   # (2, 85): the corner
    ("click(0.33, 0.48)", BOXES, "Answer: click(0.65, 0.48)", False),      # x = 104: just right of it
    ("click(0.33, 0.48)", BOXES, "Answer: click(0.33, 0.40)", False),      # y = 84: just above it
    ("click(0.33, 0.48)", BOXES, 'Answer: type("Submit")', False),
    ("click(0.33, 0.48)", BOXES, "Answer: click(0.9, 0.9)\nNo.\nAnswer: click(0.3, 0.5)", True),
    ("click(0.33, 0.48)", BOXES, "Answer: click(0.3, 0.5)\nAnswer: click(0.9, 0.9)", False),
    ('type("Agustina")', [], 'Answer: type("Agustina")', True),
    ('type("Agustina")', [], "Answer: type('Agustina')", True),
    ('type("Agustina")', [], 'Answer: type("agustina")', False),          # case-sensitive
    ('type("Agustina")', [], 'Answer: type("Agustina ")', False),         # exact
    ('type("Agustina")', [], "Answer: click(0.33, 0.48)", False),
    ('type("Agustina")', [], 'The answer is type("Agustina")', True),
])
def test_offline_scoring(bench, answer, boxes, reply, correct):
    score = bench.score(reply, prob(answer, boxes))
    assert score.correct is correct
    assert score.extracted is not None


@pytest.mark.parametrize("reply", [
    "", "   ", "Answer:", "Answer: Submit", "Answer: click on the Submit button",
    "Answer: click(0.3, 0.5", "Answer: tap(0.3, 0.5)", "Answer: click(160, 100)",
    "Answer: type()", "I would press the submit button.",
])
def test_unparseable_replies_are_wrong(bench, reply):
    score = bench.score(reply, prob())
    assert score.correct is False and score.extracted is None


def test_click_answers_need_boxes(bench):
    with pytest.raises(DataError, match="needs meta.boxes"):
        bench.score("Answer: click(0.3, 0.5)", prob(boxes=None))
    assert bench.score('Answer: type("x")', prob('type("x")', boxes=None)).correct


# --------------------------------------------------------------------------- loading
def test_no_public_data_set(bench):
    assert isinstance(bench, MiniWob) and bench.hub_id is None
    with pytest.raises(DataError, match="no public data set.*r3v data miniwob"):
        bench.load("test")


def write_split(folder, rows, split="test"):
    (folder / "screens").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (160, 210), (240, 240, 240)).save(folder / "screens" / "s1.png")
    return write_jsonl(folder / f"{split}.jsonl", rows)


GOOD = {"id": "ok", "question": "Enter \"Bob\" ...", "answer": 'type("Bob")', "image": "screens/s1.png",
        "meta": {"task": "enter-text", "boxes": []}}


def test_load_local_files(bench, tmp_path):
    click = {"id": "click-button-4-0", "question": 'Click on the "Submit" button.',
             "answer": "click(0.33, 0.48)", "image": "screens/s1.png",
             "meta": {"task": "click-button", "boxes": BOXES, "viewport": [160, 210]}}
    write_split(tmp_path, [click, GOOD])
    a, b = bench.load("test", source=tmp_path)
    assert (a.id, a.meta["task"]) == ("click-button-4-0", "click-button")
    assert a.load_image().size == (160, 210)
    assert bench.score("Answer: click(0.1, 0.5)", a).correct
    assert bench.score('Answer: type("Bob")', b).correct


@pytest.mark.parametrize("row, message", [
    ({"answer": "click(Submit)"}, "not a valid action"),
    ({"answer": 'type(target, "Bob")'}, "not a valid action"),
    ({"image": None}, "needs a screenshot"),
    ({"image": "screens/none.png"}, "image file not found"),
    ({"answer": "click(0.33, 0.48)"}, "needs meta.boxes"),
    ({"answer": "click(0.9, 0.9)", "meta": {"boxes": BOXES}}, "outside its own boxes"),
])
def test_bad_local_rows_name_file_and_line(bench, tmp_path, row, message):
    bad = {**GOOD, "id": "bad", **row}
    bad = {k: v for k, v in bad.items() if v is not None}
    path = write_split(tmp_path, [GOOD, bad])
    with pytest.raises(DataError, match=rf"{path}:2: .*{message}"):
        bench.load("test", source=tmp_path)


# ------------------------------------------------------------------------ prompts
def test_prompts(bench):
    p = prob()
    cot = prompts.cot_prompt(bench, p)
    assert cot.startswith("Click Submit.\nFirst generate a step-by-step solution, then answer "
                          "with a single action: click(x, y), where x and y are the point's "
                          "position as fractions (0 to 1) of the screenshot's width and height")
    assert 'type("text")' in cot
    select = prompts.select_prompt(bench, p, ["Answer: click(0.9, 0.9)", "Answer: click(0.3, 0.5)",
                                              "Answer: click(0.3, 0.5)"])
    assert "\nModel's prediction 2:\nAnswer: click(0.3, 0.5)\n" in select
    assert select.endswith("\nWhich prediction is correct? Give the final answer with a "
                           "single action.")
