"""MiniWob: the action format, exact-match scoring, local-only loading, prompts."""

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks import DataError, Problem, get_benchmark
from r3v_eval.benchmarks.miniwob import Action, MiniWob, parse_action

from helpers import write_jsonl


@pytest.fixture
def bench():
    return get_benchmark("miniwob")


def prob(answer='click(Submit)', question='Click on the "Submit" button.'):
    return Problem(id="w", question=question, answer=answer, benchmark="miniwob")


# ------------------------------------------------------------------- the action format
@pytest.mark.parametrize("text, name, args", [
    ("click(Submit)", "click", ("submit",)),
    ('CLICK( "Submit" )', "click", ("submit",)),
    ("click('submit')", "click", ("submit",)),
    ("click(“Submit”)", "click", ("submit",)),
    ("click(  Log   In )", "click", ("log in",)),
    ("click(Bob's profile)", "click", ("bob's profile",)),
    ("click(button (2))", "click", ("button (2)",)),
    ("click(target=OK)", "click", ("ok",)),
    ('type(username, "Bob")', "type", ("username", "bob")),
    ('type("Search, here", "a, b (c)")', "type", ("search, here", "a, b (c)")),
    ('type(target="Search", text="cats, dogs")', "type", ("search", "cats, dogs")),
    ('type(name, "it\'s")', "type", ("name", "it's")),
    ('type(name, "say \\"hi\\"")', "type", ("name", 'say "hi"')),
    ('select(Color, "Red")', "select", ("color", "red")),
    ("press(Enter)", "press", ("enter",)),
    ("press(Return)", "press", ("enter",)),
    ("press(esc)", "press", ("escape",)),
    ("I will click(OK) and then click(Cancel)", "click", ("cancel",)),   # the last one
])
def test_parse_action(text, name, args):
    action = parse_action(text)
    assert action == Action(name, args)
    assert parse_action(str(action)) == action          # the canonical form parses back


@pytest.mark.parametrize("text", [
    None, "", "click", "click()", "click(  )", 'click("")', "click(a, b)", "type(a)",
    'type(a, "b", "c")', "press()", "tap(OK)", "double_click(OK)", "click(Submit",
    'type(a, "unclosed)', 'type(text="x", target="y")', "Click the Submit button",
    "click(OK) then click(",                            # the last action is malformed
])
def test_malformed_actions_are_none(text):
    assert parse_action(text) is None


def test_canonical_form():
    assert str(parse_action('type( Username ,"Bob  Smith")')) == 'type("username", "bob smith")'
    assert str(parse_action("press(RETURN)")) == 'press("enter")'


# ------------------------------------------------------------------------ scoring
@pytest.mark.parametrize("gold, reply, correct", [
    ("click(Submit)", "Solution:\n1. The button reads Submit.\n\nAnswer:\nclick(Submit)", True),
    ("click(Submit)", "Answer: click(submit)", True),
    ("click(Submit)", 'Answer: click("Submit").', True),
    ("click(Submit)", "Answer:\n`click('SUBMIT')`", True),
    ("click(Submit)", "The answer is click(Submit)", True),
    ("click(Submit)", "click(Submit)", True),
    ("click(Submit)", "Answer: click(Cancel)", False),
    ("click(Submit)", "Answer: click(Cancel)\nNo, wrong.\nAnswer: click(Submit)", True),
    ("click(Submit)", "Answer: click(Submit)\nAnswer: click(Cancel)", False),
    ("click(Submit)", "Answer: type(Submit, \"x\")", False),
    ("click(Submit)", "Answer: click(Submit button)", False),
    ('type(username, "Bob")', 'Answer: type(Username, "bob")', True),
    ('type(username, "Bob")', "Answer: type('username', 'Bob')", True),
    ('type(username, "Bob")', 'Answer: type(username, "Bobby")', False),
    ('type(username, "Bob")', 'Answer: type("Bob", username)', False),    # order is fixed
    ('select(Color, "Red")', 'Answer: select(color, red)', True),
    ('select(Color, "Red")', 'Answer: select(color, "Blue")', False),
    ("press(Enter)", "Answer: press(return)", True),
    ("press(Enter)", "Answer: press(Tab)", False),
    ("click(Submit)", "Solution:\n1. Cancel would be wrong.\n2. So click(Submit)", True),
])
def test_exact_match_scoring(bench, gold, reply, correct):
    score = bench.score(reply, prob(gold))
    assert score.correct is correct
    assert score.extracted is not None


@pytest.mark.parametrize("reply", [
    "", "   ", "Answer:", "Answer: Submit", "Answer: click on the Submit button",
    "Answer: click(Submit", "Answer: tap(Submit)", "Answer: click(Submit, Cancel)",
    "Answer: type(username)", "I would press the submit button.",
])
def test_unparseable_replies_are_wrong(bench, reply):
    score = bench.score(reply, prob())
    assert score.correct is False and score.extracted is None


def test_match_compares_parsed_actions(bench):
    p = prob('type(username, "Bob")')
    assert bench.match('type("username", "bob")', p)
    assert not bench.match("garbage", p)


# --------------------------------------------------------------------------- loading
def test_no_public_data_set(bench):
    assert isinstance(bench, MiniWob) and bench.hub_id is None
    with pytest.raises(DataError, match="no public data set.*canonical schema"):
        bench.load("test")


def write_split(folder, rows, split="test"):
    (folder / "screens").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (240, 240, 240)).save(folder / "screens" / "s1.png")
    return write_jsonl(folder / f"{split}.jsonl", rows)


def test_load_local_files(bench, tmp_path):
    rows = [{"id": "click-button-1", "question": 'Click on the "Submit" button.',
             "answer": "click(Submit)", "image": "screens/s1.png",
             "meta": {"task": "click-button"}},
            {"id": "enter-text-1", "question": 'Enter "Bob" into the text field.',
             "answer": 'type(text field, "Bob")', "image": "screens/s1.png"}]
    write_split(tmp_path, rows)
    a, b = bench.load("test", source=tmp_path)
    assert (a.id, a.meta["task"]) == ("click-button-1", "click-button")
    assert a.load_image().size == (16, 16)
    assert bench.score('Answer: type(Text Field, "bob")', b).correct


@pytest.mark.parametrize("row, message", [
    ({"id": "x", "question": "q", "answer": "click on it", "image": "screens/s1.png"},
     "not a valid action"),
    ({"id": "x", "question": "q", "answer": "type(field)", "image": "screens/s1.png"},
     "not a valid action"),
    ({"id": "x", "question": "q", "answer": "click(OK)"}, "needs a screenshot"),
    ({"id": "x", "question": "q", "answer": "click(OK)", "image": "screens/none.png"},
     "image file not found"),
])
def test_bad_local_rows_name_file_and_line(bench, tmp_path, row, message):
    good = {"id": "ok", "question": "q", "answer": "press(enter)", "image": "screens/s1.png"}
    path = write_split(tmp_path, [good, row])
    with pytest.raises(DataError, match=rf"{path}:2: .*{message}"):
        bench.load("test", source=tmp_path)


# ------------------------------------------------------------------------ prompts
def test_prompts(bench):
    p = prob()
    cot = prompts.cot_prompt(bench, p)
    assert cot.startswith('Click on the "Submit" button.\nFirst generate a step-by-step '
                          "solution, then answer with a single action: click(<target>), ")
    assert 'type(<target>, "<text>")' in cot and "press(<key>)" in cot
    select = prompts.select_prompt(bench, p, ["Answer: click(OK)", "Answer: click(Submit)",
                                              "Answer: click(Submit)"])
    assert "\nModel's prediction 2:\nAnswer: click(Submit)\n" in select
    assert select.endswith("\nWhich prediction is correct? Give the final answer with a "
                           "single action.")
    assert prompts.refine_prompt(bench, p, "Answer: click(OK)").endswith(
        "\nModel's prediction:\nAnswer: click(OK)\nJudge the correctness of the model's "
        "prediction and refine it.")
