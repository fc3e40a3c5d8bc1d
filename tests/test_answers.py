"""Unit tests of the shared answer parsing in r3v_eval.answers."""

import math

import pytest

from r3v_eval import answers


# ------------------------------------------------------------ final answer
@pytest.mark.parametrize("reply, expected", [
    ("Solution:\n1. Count.\n2. Add.\n\nAnswer:\n5", "5"),
    ("Answer: 5", "5"),
    ("answer: 5", "5"),
    ("Answer is: 5", "5"),
    ("The answer is 12.", "12"),
    ("So the final answer is B.", "B"),
    ("\\boxed{42}", "42"),
    ("We get $\\boxed{7}$.", "7"),
    ("\\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
    ("Answer: \\boxed{9}", "9"),
    ("Answer: 3\nmore text\nAnswer: 7", "7"),                  # the last marker counts
    ("Answer: 3. The answer is 4.", "4"),
    ("Answer:\n5\n\nBecause 2 + 3 = 5.", "5"),                 # first line with content
    ("**Answer:** 5", "5"),
    ("Answer: **Yes**", "Yes"),
    ("Answer: \"Paris\".", "Paris"),
    ("42", "42"),                                              # no marker: the whole reply
    ("  Yes.  ", "Yes"),
])
def test_final_answer_text(reply, expected):
    assert answers.final_answer_text(reply) == expected


@pytest.mark.parametrize("reply", ["", "   ", "Answer:", "Answer:\n\n  \n", "**", None, 12])
def test_final_answer_text_is_none_when_there_is_nothing(reply):
    assert answers.final_answer_text(reply) is None


def test_has_answer_marker():
    assert answers.has_answer_marker("blah\nAnswer: 3")
    assert answers.has_answer_marker("The answer is 3")
    assert answers.has_answer_marker("\\boxed{3}")
    assert not answers.has_answer_marker("answer the question using a single word")
    assert not answers.has_answer_marker("There are 3 cubes")
    assert not answers.has_answer_marker("")


# ----------------------------------------------------------------- numbers
@pytest.mark.parametrize("text, value", [
    ("5", 5.0), ("-3", -3.0), ("−7", -7.0), ("+4", 4.0), ("0.5", 0.5), (".5", 0.5),
    ("1,234", 1234.0), ("1,000,000", 1e6), ("-1,234.5", -1234.5),
    ("$5.50", 5.5), ("-$5", -5.0), ("$-5", -5.0), ("USD 12", 12.0), ("€3", 3.0),
    ("3/4", 0.75), ("3 / 4", 0.75), ("1,000/4", 250.0),
    ("50%", 50.0), ("5 objects", 5.0), ("about 1,200 people", 1200.0),
    ("five", 5.0), ("Twelve", 12.0), ("about three", 3.0), ("Five apples", 5.0), ("3 + 2 = 5", 5.0), ("= 8", 8.0), ("12.", 12.0),
])
def test_parse_number_reads_numbers_in_many_forms(text, value):
    assert answers.parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", [
    None, "", "abc", "3 cubes and 2 spheres", "1/0", "1e3", "3 1/2",
    "2,5", "1,23", "12,34",                       # a comma is only a thousands separator
    "First 3 then 4 then 5", "five or six",
    "eighty-four", "one-third", "twenty-one",     # not "four", "one", "one"
])
def test_parse_number_refuses_ambiguous_or_malformed_text(text):
    assert answers.parse_number(text) is None


def test_parse_number_removes_a_given_unit():
    assert answers.parse_number("12 teams", unit="teams") == 12
    assert answers.parse_number("3 minutes per day", unit="minutes per day") == 3
    assert answers.parse_number("$4,656", unit="$") == 4656
    # "5 cm 3" has two numbers once the unit is gone: ambiguous
    assert answers.parse_number("5 cm 3", unit="cm") is None


@pytest.mark.parametrize("value, places, text", [
    (3.0, 3, "3"), (3.30, 3, "3.3"), (2 / 11, 3, "0.182"), (1522.81, 3, "1522.81"),
    (-0.5, 3, "-0.5"), (84.0004, 3, "84"), (1 / 3, 6, "0.333333"), (-0.0004, 3, "0"),
])
def test_format_number(value, places, text):
    assert answers.format_number(value, places) == text


def test_format_number_keeps_nan_and_inf_visible():
    assert answers.format_number(math.inf) == "inf"
    assert answers.format_number(math.nan) == "nan"


def test_relaxed_number_match_is_five_percent_of_gold():
    assert answers.relaxed_number_match(105, 100)
    assert answers.relaxed_number_match(95, 100)
    assert not answers.relaxed_number_match(105.01, 100)
    assert not answers.relaxed_number_match(94.9, 100)
    assert answers.relaxed_number_match(-96, -100)
    assert not answers.relaxed_number_match(100, -100)
    assert answers.relaxed_number_match(0, 0)
    assert not answers.relaxed_number_match(0.001, 0)
    assert answers.relaxed_number_match(11, 10, tolerance=0.1)


def test_is_number_and_exact_fraction():
    assert answers.is_number("$5") and answers.is_number("50%") and answers.is_number("3/4")
    assert not answers.is_number("abc") and not answers.is_number(None)
    assert not answers.is_number("2,5")
    assert str(answers.exact_fraction("3/4")) == "3/4"
    assert answers.exact_fraction("1,000") == 1000
    assert answers.exact_fraction("x") is None
    assert answers.exact_fraction("1/0") is None


# -------------------------------------------------------------------- text
def test_normalize_text_and_yes_no():
    assert answers.normalize_text("  The   Answer. ") == "the answer"
    assert answers.normalize_text('"Paris"') == "paris"
    assert answers.normalize_text(None) == ""
    assert answers.yes_no("Yes.") == "yes"
    assert answers.yes_no("yes, it is") == "yes"
    assert answers.yes_no("No") == "no"
    assert answers.yes_no("Nope") is None
    assert answers.yes_no("Norway") is None
    assert answers.yes_no(None) is None


# --------------------------------------------------------- multiple choice
CHOICES = ["shortage", "surplus"]


@pytest.mark.parametrize("text, letter", [
    ("(B)", "B"), ("B", "B"), ("B.", "B"), ("b", "B"), ("(b)", "B"), ("Option B", "B"),
    ("B: surplus", "B"), ("The answer is B", "B"), ("I think B", "B"),
    ("(A) shortage", "A"), ("surplus", "B"), ("Surplus.", "B"), ("There is a surplus", "B"),
    ("A surplus", "B"),          # a sentence-opening "A" is an article, not option A
    ("A", "A"), ("A.", "A"), ("A is correct", "A"),
])
def test_parse_choice(text, letter):
    assert answers.parse_choice(text, CHOICES) == letter


@pytest.mark.parametrize("text", [None, "", "neither", "shortage or surplus", "(C)", "C"])
def test_parse_choice_refuses_what_names_no_single_option(text):
    assert answers.parse_choice(text, CHOICES) is None


def test_parse_choice_without_choices_is_none():
    assert answers.parse_choice("A", []) is None


def test_parse_choice_reads_numeric_and_embedded_options():
    times = ["15 minutes", "30 minutes", "45 minutes", "1 hour"]
    assert answers.parse_choice("1 hour", times) == "D"
    assert answers.parse_choice("It takes 1 hour", times) == "D"
    assert answers.parse_choice("45", times) == "C"
    assert answers.parse_choice("Vitamin C", ["Vitamin A", "Vitamin C"]) == "B"


def test_letter_of_gold_as_letter_or_text():
    assert answers.letter_of("B", CHOICES) == "B"
    assert answers.letter_of("(a)", CHOICES) == "A"
    assert answers.letter_of("b.", CHOICES) == "B"
    assert answers.letter_of("Surplus", CHOICES) == "B"
    assert answers.letter_of("C", CHOICES) is None
    assert answers.letter_of("glut", CHOICES) is None


# ---------------------------------------------- a reply that never states its answer
@pytest.mark.parametrize("reply", [
    "Solution:\n1",                                         # cut off after the step number
    "Solution:\n1. There are 4 objects.\n2. 4 - 1 = 3",      # cut off before "Answer:"
    "There are six cubes and I removed two of them so the rest of them left here are 4",
])
def test_a_rationale_without_an_answer_marker_is_unparseable(reply):
    assert answers.answer_text_or_none(reply) is None


@pytest.mark.parametrize("reply, expected", [
    ("4", "4"), ("There are 4 objects", "There are 4 objects"),
    ("Solution:\n1. Count.\n\nAnswer:\n4", "4"), ("The answer is 4.", "4"),
])
def test_a_bare_answer_or_a_marked_one_is_read(reply, expected):
    assert answers.answer_text_or_none(reply) == expected


@pytest.mark.parametrize("name", ["shapes", "clevr_math", "chartqa", "tabmwp"])
def test_no_benchmark_credits_a_cut_off_rationale(name):
    """A reply cut after "Solution:\\n1" once scored right on every question whose gold is 1."""
    from r3v_eval.benchmarks import get_benchmark
    from r3v_eval.benchmarks.base import Problem

    bench = get_benchmark(name)
    problem = Problem(id="p", question="How many?", answer="1", benchmark=name)
    for reply in ("Solution:\n1", "Solution:\n1. 3 - 2 = 1"):
        assert not bench.score(reply, problem).correct
        assert bench.extract(reply, problem) is None
    assert bench.score("Solution:\n1. 3 - 2 = 1.\n\nAnswer:\n1", problem).correct
