from collections import Counter

import pytest
from PIL import Image

from r3v_eval import prompts
from r3v_eval.benchmarks.base import DataError, Problem
from r3v_eval.benchmarks.kinds import ChoiceBenchmark, IntegerBenchmark
from r3v_train.pool import Sample, SamplePool
from r3v_train.reflect import (
    KINDS,
    BuildResult,
    Example,
    ReflectConfig,
    build_dpo_pairs,
    build_examples,
    build_warmup,
    combine,
    gold_target,
    load_images,
)
from r3v_train.teacher import load_teacher_rationales

from helpers import write_jsonl


class TinyBench(IntegerBenchmark):
    """Unregistered integer benchmark, local to these tests."""

    name = "tiny_reflect"
    cot_ending = "answer the question using a single numerical value."
    select_instruction = "Which prediction is correct? Give the final answer."


class TinyChoice(ChoiceBenchmark):
    name = "tiny_choice"


BENCH = TinyBench()


def P(qid, answer="4", **kw):
    return Problem(id=qid, question=f"How many shapes are in picture {qid}?", answer=answer,
                   benchmark=BENCH.name, **kw)


def cot(tag, answer):
    """A chain-of-thought reply longer than 50 characters, unique per tag."""
    return (f"Solution:\n1. I look at every shape in the picture ({tag}).\n"
            f"2. I count them one by one.\n\nAnswer:\n{answer}")


def S(t, qid, i, correct, tag=None, reply=None, style="qwen"):
    answer = "4" if correct else "7"
    return Sample(t, qid, i, style, reply if reply is not None else cot(tag or f"{qid}-{t}-{i}",
                                                                       answer),
                  answer, correct)


def of(result, kind, qid=None):
    return [e for e in result.examples if e.kind == kind and (qid is None or e.problem_id == qid)]


# --------------------------------------------------------------------- sft / refine
def test_most_recent_positive_and_negative_across_iterations():
    samples = [
        S(0, "q", 0, True, "old-pos"), S(0, "q", 2, False, "old-neg"),
        S(1, "q", 0, True, "new-pos"), S(1, "q", 1, False, "mid-neg"),
        S(2, "q", 0, False, "new-neg"), S(0, "q", 1, True, "older-pos"),
    ]
    res = build_examples(BENCH, [P("q")], list(reversed(samples)))  # input order must not matter
    [sft] = of(res, "sft")
    assert sft.completion == cot("new-pos", "4")
    assert sft.prompt == prompts.cot_prompt(BENCH, P("q"), "qwen")
    assert sft.sources == [[1, 0]]
    [ref] = of(res, "refine")
    assert ref.prompt == prompts.refine_prompt(BENCH, P("q"), cot("new-neg", "7"), "qwen")
    assert ref.completion == cot("new-pos", "4")
    assert ref.sources == [[2, 0], [1, 0]]
    # within one iteration the larger sample index is the more recent
    res = build_examples(BENCH, [P("q")], [S(0, "q", 1, True, "i1"), S(0, "q", 0, True, "i0")])
    assert of(res, "sft")[0].completion == cot("i1", "4")


def test_refine_only_when_both_positives_and_negatives_exist():
    probs = [P("pos_only"), P("neg_only"), P("both")]
    samples = [S(0, "pos_only", 0, True), S(0, "pos_only", 1, True),
               S(0, "neg_only", 0, False), S(1, "neg_only", 0, False),
               S(0, "both", 0, False), S(1, "both", 0, True)]
    res = build_examples(BENCH, probs, samples)
    assert [e.problem_id for e in of(res, "refine")] == ["both"]
    assert sorted(e.problem_id for e in of(res, "sft")) == ["both", "pos_only"]
    assert of(res, "sft", "neg_only") == [] and of(res, "select", "neg_only") == []
    assert res.skipped["no_usable_positive"] == 1
    assert res.skipped_ids["no_usable_positive"] == ["neg_only"]


# --------------------------------------------------------------------- select
def _samples(qid, n_pos, n_neg):
    out, i = [], 0
    for _ in range(n_pos):
        out.append(S(0, qid, i, True)); i += 1
    for _ in range(n_neg):
        out.append(S(0, qid, i, False)); i += 1
    return out


@pytest.mark.parametrize("n_pos, n_neg, mixes", [
    (2, 1, [[2, 1]]),
    (1, 2, [[1, 2]]),
    (2, 2, [[2, 1], [1, 2]]),
    (3, 3, [[2, 1], [1, 2]]),
    (1, 1, []),
    (3, 0, []),
    (0, 3, []),
])
def test_select_mixes_follow_the_counts(n_pos, n_neg, mixes):
    res = build_examples(BENCH, [P("q")], _samples("q", n_pos, n_neg))
    sel = of(res, "select")
    assert [e.meta["mix"] for e in sel] == mixes
    for e in sel:
        assert len(e.sources) == 3 and len(e.meta["candidate_correct"]) == 3
        assert sum(e.meta["candidate_correct"]) == e.meta["mix"][0] >= 1
        assert e.completion == "4"  # the bare gold answer
        assert "Model's prediction 3:" in e.prompt and "Model's prediction 4:" not in e.prompt


def test_select_uses_the_most_recent_candidates_in_the_shown_order():
    samples = [S(0, "q", 0, True, "p-old"), S(1, "q", 0, True, "p-mid"), S(2, "q", 0, True, "p-new"),
               S(0, "q", 1, False, "n-old"), S(2, "q", 1, False, "n-new")]
    res = build_examples(BENCH, [P("q")], samples)
    two_one = next(e for e in of(res, "select") if e.meta["mix"] == [2, 1])
    assert sorted(map(tuple, two_one.sources)) == [(1, 0), (2, 0), (2, 1)]
    one_two = next(e for e in of(res, "select") if e.meta["mix"] == [1, 2])
    assert sorted(map(tuple, one_two.sources)) == [(0, 1), (2, 0), (2, 1)]
    by_src = {s.recency: s for s in samples}
    shown = [by_src[tuple(src)].reply for src in two_one.sources]
    assert two_one.prompt == prompts.select_prompt(BENCH, P("q"), shown, "qwen")
    assert [by_src[tuple(src)].correct for src in two_one.sources] == \
        two_one.meta["candidate_correct"]


def test_select_shuffle_is_seeded_deterministic_and_permutes():
    probs = [P(f"q{k}") for k in range(40)]
    samples = [s for p in probs for s in _samples(p.id, 2, 2)]
    a = build_examples(BENCH, probs, samples, ReflectConfig(seed=1))
    b = build_examples(BENCH, probs, samples, ReflectConfig(seed=1))
    c = build_examples(BENCH, probs, samples, ReflectConfig(seed=2))
    assert [e.prompt for e in a.examples] == [e.prompt for e in b.examples]
    assert [e.sources for e in of(a, "select")] != [e.sources for e in of(c, "select")]
    # where the single positive of the 1+2 items lands varies across questions
    spots = Counter(e.meta["candidate_correct"].index(True) for e in of(a, "select")
                    if e.meta["mix"] == [1, 2])
    assert len(spots) == 3
    # a question's items do not depend on which other questions are present
    alone = build_examples(BENCH, [probs[7]], _samples("q7", 2, 2), ReflectConfig(seed=1))
    assert [e.prompt for e in of(alone, "select")] == [e.prompt for e in of(a, "select", "q7")]


def test_select_target_is_the_gold_letter_for_multiple_choice():
    bench = TinyChoice()
    prob = Problem(id="m", question="Which shape is red?", answer="circle",
                   benchmark=bench.name, choices=["square", "circle", "star"])
    assert gold_target(bench, prob) == "B"
    samples = [Sample(0, "m", i, "qwen", cot(f"m{i}", "(B)"), "B", True) for i in range(2)]
    samples.append(Sample(0, "m", 2, "qwen", cot("m2", "(A)"), "A", False))
    res = build_examples(bench, [prob], samples)
    [sel] = of(res, "select")
    assert sel.completion == "B"
    assert sel.prompt.endswith(bench.select_instruction)


def test_select_target_can_be_the_answer_line_of_a_rationale():
    samples = _samples("q", 2, 1)
    bare = of(build_examples(BENCH, [P("q")], samples), "select")
    line = of(build_examples(BENCH, [P("q")], samples, ReflectConfig(select_target="answer_line")),
              "select")
    assert [e.completion for e in bare] == ["4"]
    assert [e.completion for e in line] == ["Answer:\n4"]
    assert [e.prompt for e in line] == [e.prompt for e in bare]
    assert BENCH.score(line[0].completion, P("q")).correct  # the reply scores as the gold
    with pytest.raises(ValueError, match="select_target must be one of answer, answer_line"):
        ReflectConfig(select_target="letter")


def test_gold_that_does_not_score_is_counted_not_trained_on():
    bad = P("bad", answer="4.5")  # an integer benchmark cannot score "4.5" as correct
    res = build_examples(BENCH, [bad], _samples("bad", 2, 1))
    assert of(res, "select") == [] and res.skipped["gold_not_scorable"] == 1
    warm = build_warmup(BENCH, [bad, P("ok")])
    assert [e.problem_id for e in of(warm, "qa")] == ["ok"]
    assert warm.skipped["gold_not_scorable"] == 1


# --------------------------------------------------------------------- quality filter
def test_short_and_answer_first_rationales_are_dropped():
    exactly_50 = ("y" * (50 - len("Answer: 4"))) + "Answer: 4"
    assert len(exactly_50) == 50
    answer_first = "Answer: 4. " + "because I counted all the shapes in the picture twice."
    samples = [S(0, "q", 0, True, "good-old"),
               S(1, "q", 0, True, reply=exactly_50),
               S(1, "q", 1, True, reply=answer_first),
               S(1, "q", 2, False, reply="Answer: 7"),
               S(0, "q", 1, False, "neg-old")]
    res = build_examples(BENCH, [P("q")], samples)
    [sft] = of(res, "sft")
    assert sft.completion == cot("good-old", "4")  # falls back to the most recent usable one
    assert res.skipped["filtered_positive"] == 2
    [ref] = of(res, "refine")
    assert cot("neg-old", "7") in ref.prompt and "Answer: 7\n" not in ref.prompt
    assert of(res, "select") == []  # one usable positive, one usable negative: no mix fits
    # 51 characters pass
    ok = ("y" * (51 - len("Answer: 4"))) + "Answer: 4"
    res = build_examples(BENCH, [P("q")], [S(0, "q", 0, True, reply=ok)])
    assert of(res, "sft")[0].completion == ok
    # the knobs switch the filter off
    loose = ReflectConfig(min_rationale_chars=0, drop_answer_first=False)
    res = build_examples(BENCH, [P("q")], samples, loose)
    assert of(res, "sft")[0].completion == answer_first
    assert of(res, "refine")[0].prompt.endswith(
        "Answer: 7" + prompts.REFINE_INSTRUCTION)
    assert [e.meta["mix"] for e in of(res, "select")] == [[2, 1], [1, 2]]


def test_filtered_candidates_never_appear_in_select():
    samples = _samples("q", 2, 1) + [S(1, "q", 0, False, reply="Answer: 7"),
                                     S(1, "q", 1, True, reply="Answer: 4 (short)")]
    res = build_examples(BENCH, [P("q")], samples)
    sel = of(res, "select")
    assert [e.meta["mix"] for e in sel] == [[2, 1]]
    assert all([1, 0] not in e.sources and [1, 1] not in e.sources for e in sel)
    # refine inputs: filtered by default, raw when filter_negative_inputs is off
    res = build_examples(BENCH, [P("q")], samples, ReflectConfig(filter_negative_inputs=False))
    assert of(res, "refine")[0].sources[0] == [1, 0]
    assert [e.meta["mix"] for e in of(res, "select")] == [[2, 1]]


# --------------------------------------------------------------------- ablations / knobs
@pytest.mark.parametrize("method, kinds", [
    ("r3v", {"sft", "refine", "select"}),
    ("r3v_no_refine", {"sft", "select"}),
    ("r3v_no_select", {"sft", "refine"}),
    ("star", {"sft"}),
])
def test_ablation_configs_switch_tasks_off(method, kinds):
    cfg = ReflectConfig.for_method(method, seed=3)
    assert set(cfg.tasks) == kinds and cfg.seed == 3
    res = build_examples(BENCH, [P("q")], _samples("q", 2, 2), cfg)
    assert {k for k, n in res.counts.items() if n} == kinds


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="sum to n_candidates"):
        ReflectConfig(select_mixes=((2, 2),))
    with pytest.raises(ValueError, match=">= 1 positive"):
        ReflectConfig(select_mixes=((0, 3),))
    with pytest.raises(ValueError, match="unknown key.*n_cands"):
        ReflectConfig.from_dict({"n_cands": 3})
    with pytest.raises(ValueError, match="unknown prompt_style"):
        ReflectConfig(prompt_style="gpt")
    with pytest.raises(ValueError, match="do not override"):
        ReflectConfig.for_method("star", refine=True)
    with pytest.raises(ValueError, match="unknown method"):
        ReflectConfig.for_method("dpo")
    assert ReflectConfig.from_dict({"select_mixes": [[1, 1]], "n_candidates": 2}).select_mixes \
        == ((1, 1),)


def test_more_items_per_question_and_other_candidate_counts():
    samples = _samples("q", 3, 3)
    cfg = ReflectConfig(max_sft_per_question=2, max_refine_per_question=2,
                        max_select_per_question=4)
    res = build_examples(BENCH, [P("q")], samples, cfg)
    assert [e.sources for e in of(res, "sft")] == [[[0, 2]], [[0, 1]]]
    assert [e.sources for e in of(res, "refine")] == [[[0, 5], [0, 2]], [[0, 4], [0, 1]]]
    sel = of(res, "select")
    assert [e.meta["mix"] for e in sel] == [[2, 1], [1, 2], [2, 1], [1, 2]]
    assert len({tuple(map(tuple, sorted(e.sources))) for e in sel}) == 4  # all different
    two = build_examples(BENCH, [P("q")], samples,
                         ReflectConfig(n_candidates=2, select_mixes=((1, 1),)))
    [e] = of(two, "select")
    assert len(e.sources) == 2 and "Model's prediction 3" not in e.prompt


def test_distinct_rationales_collapses_identical_replies():
    same = cot("same", "4")
    samples = [S(0, "q", 0, True, reply=same), S(1, "q", 0, True, reply=same),
               S(1, "q", 1, False)]
    assert [e.meta["mix"] for e in of(build_examples(BENCH, [P("q")], samples), "select")] \
        == [[2, 1]]
    res = build_examples(BENCH, [P("q")], samples, ReflectConfig(distinct_rationales=True))
    assert of(res, "select") == []


def test_prompt_style_mismatch_and_unknown_questions():
    with pytest.raises(ValueError, match="prompt style.*'llava'"):
        build_examples(BENCH, [P("q")], [S(0, "q", 0, True, style="llava")])
    res = build_examples(BENCH, [P("q")], [S(0, "q", 0, True), S(0, "ghost", 0, True)])
    assert res.skipped["unknown_question"] == 1 and res.skipped_ids["unknown_question"] == ["ghost"]
    llava = build_examples(BENCH, [P("q")], [S(0, "q", 0, True, style="llava")],
                           ReflectConfig(prompt_style="llava"))
    assert of(llava, "sft")[0].prompt.endswith(prompts.LLAVA_COT)


def test_build_from_a_pool_up_to_an_iteration(tmp_path):
    pool = SamplePool(tmp_path)
    pool.append([S(0, "q", 0, True, "it0"), S(0, "q", 1, False)])
    pool.append([S(1, "q", 0, True, "it1")])
    assert of(build_examples(BENCH, [P("q")], pool), "sft")[0].completion == cot("it1", "4")
    early = build_examples(BENCH, [P("q")], pool, up_to_iteration=0)
    assert of(early, "sft")[0].completion == cot("it0", "4")
    grouped = build_examples(BENCH, {"q": P("q")}, pool.by_question())
    assert [e.to_dict() for e in grouped.examples] == \
        [e.to_dict() for e in build_examples(BENCH, [P("q")], pool).examples]


# --------------------------------------------------------------------- dpo
def test_dpo_pairs_most_recent_positive_and_negative():
    samples = [S(0, "a", 0, True, "a-old"), S(1, "a", 0, True, "a-new"),
               S(0, "a", 1, False, "a-neg-old"), S(1, "a", 2, False, "a-neg-new"),
               S(0, "b", 0, True), S(0, "c", 0, False)]
    res = build_dpo_pairs(BENCH, [P("a"), P("b"), P("c")], samples)
    [pair] = res.examples
    assert pair.kind == "dpo" and pair.problem_id == "a"
    assert pair.prompt == prompts.cot_prompt(BENCH, P("a"), "qwen")
    assert pair.completion == cot("a-new", "4") and pair.rejected == cot("a-neg-new", "7")
    assert res.counts["dpo"] == 1
    with pytest.raises(ValueError, match="rejected"):
        Example("sft", "a", "p", "c", rejected="r")


# --------------------------------------------------------------------- warm-up / teacher
def test_warmup_qa_pairs_and_checked_teacher_rationales():
    probs = [P("t1", "4"), P("t2", "3"), P("t3", "5"), P("t4", "6")]
    teacher = {"t1": cot("t1", "4"),           # correct
               "t2": cot("t2", "9"),           # wrong answer
               "t3": "I think there are 5",    # no Answer: line
               "zz": cot("zz", "1")}           # unknown id
    res = build_warmup(BENCH, probs, teacher)
    assert [(e.problem_id, e.completion) for e in of(res, "qa")] == \
        [("t1", "4"), ("t2", "3"), ("t3", "5"), ("t4", "6")]
    assert of(res, "qa")[0].prompt == prompts.direct_prompt(BENCH, probs[0], "qwen")
    [t] = of(res, "teacher")
    assert t.problem_id == "t1" and t.prompt == prompts.cot_prompt(BENCH, probs[0], "qwen")
    assert res.skipped == Counter(teacher_wrong_answer=1, teacher_no_answer_line=1,
                                  teacher_unknown_id=1)
    assert res.skipped_ids["teacher_unknown_id"] == ["zz"]
    assert "teacher_wrong_answer=1" in res.summary()
    assert of(build_warmup(BENCH, probs, teacher, qa=False), "qa") == []


def _write(tmp_path, rows):
    return write_jsonl(tmp_path / "teacher.jsonl", rows)


def test_load_teacher_rationales(tmp_path):
    path = _write(tmp_path, [{"id": "a", "rationale": "r1", "source": "gpt"}, "",
                             {"id": "b", "rationale": "r2"}])
    assert load_teacher_rationales(path) == {"a": "r1", "b": "r2"}


@pytest.mark.parametrize("lines, match", [
    (['{"id": "a", "rationale": "r"}', '{"id": "b", "rationale": '], r"teacher\.jsonl:2: not valid JSON"),
    (['{"id": "a", "rationale": "r"}', '["a", "r"]'], r"teacher\.jsonl:2: a line must be a JSON object"),
    (['{"rationale": "r"}'], r"teacher\.jsonl:1: missing required key 'id'"),
    (['{"id": 3, "rationale": "r"}'], r"teacher\.jsonl:1: 'id' must be a non-empty string"),
    (['{"id": "a", "rationale": ""}'], r"teacher\.jsonl:1: 'rationale' must be"),
    (['{"id": "a", "rationale": "r"}', '', '{"id": "a", "rationale": "s"}'],
     r"teacher\.jsonl:3: id 'a' already given at line 1"),
])
def test_teacher_file_errors_name_file_and_line(tmp_path, lines, match):
    with pytest.raises(DataError, match=match):
        load_teacher_rationales(_write(tmp_path, lines))


def test_teacher_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "teacher.jsonl"
    path.write_bytes(b'{"id": "a", "rationale": "r"}\n\xff\xfe\n')
    with pytest.raises(DataError, match=r"teacher\.jsonl: not UTF-8 text"):
        load_teacher_rationales(path)


def test_missing_teacher_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_teacher_rationales(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------- results / images
def test_counts_combine_shuffle_and_images():
    img = Image.new("RGB", (4, 4), "red")
    probs = [P(f"q{k}", image=img) for k in range(6)]
    samples = [s for p in probs for s in _samples(p.id, 2, 2)]
    built = build_examples(BENCH, probs, samples)
    warm = build_warmup(BENCH, probs)
    assert built.counts == {"qa": 0, "teacher": 0, "perception": 0, "sft": 6, "refine": 6,
                            "select": 12, "dpo": 0}
    assert set(built.counts) == set(KINDS)
    allres = combine(warm, built)
    assert allres.counts["qa"] == 6 and len(allres.examples) == 30
    a, b = allres.shuffled(7), allres.shuffled(7)
    assert [id(e) for e in a] == [id(e) for e in b]
    assert [id(e) for e in a] != [id(e) for e in allres.examples]
    assert sorted(map(id, a)) == sorted(map(id, allres.examples))
    assert [id(e) for e in allres.shuffled(8)] != [id(e) for e in a]
    by_id = {p.id: p for p in probs}
    assert load_images(a[:3], by_id)[0].size == (4, 4)
    with pytest.raises(KeyError, match="q0"):
        Example("sft", "q0", "p", "c").load_image({})
    assert Example.from_dict(a[0].to_dict()) == a[0]
    assert BuildResult().summary() == "examples: none"


# ------------------------------------------------------------ consistent positives
class StepBench(TinyBench):
    """Judges a chain by a marker, so the test controls which replies hold together."""

    name = "tiny_steps"
    has_step_check = True

    def steps_consistent(self, reply, problem):
        return "broken" not in reply


def test_consistent_positives_drop_right_answers_from_broken_chains():
    bench = StepBench()
    samples = [S(0, "q", 0, True, "sound-old"), S(1, "q", 0, True, "broken-new"),
               S(1, "q", 1, False, "neg-a"), S(1, "q", 2, False, "neg-b")]
    paper = build_examples(bench, [P("q")], samples, ReflectConfig(min_rationale_chars=0))
    assert of(paper, "sft")[0].completion == cot("broken-new", "4")  # the paper: answers only
    strict = build_examples(bench, [P("q")], samples,
                            ReflectConfig(min_rationale_chars=0, consistent_positives=True))
    assert of(strict, "sft")[0].completion == cot("sound-old", "4")
    assert strict.skipped["inconsistent_positive"] == 1
    for e in strict.examples:  # never a target, a candidate or a refine input
        assert "broken-new" not in e.prompt and "broken-new" not in e.completion
    assert [e.meta["mix"] for e in of(strict, "select")] == [[1, 2]]
    # a question whose only right answers come from broken chains has no usable positive
    only = build_examples(bench, [P("q")], [S(0, "q", 0, True, "broken")],
                          ReflectConfig(min_rationale_chars=0, consistent_positives=True))
    assert only.examples == [] and only.skipped["no_usable_positive"] == 1


def test_consistent_positives_need_a_benchmark_with_a_step_check():
    with pytest.raises(ValueError, match="tiny_reflect.*no step check"):
        build_examples(BENCH, [P("q")], [S(0, "q", 0, True)],
                       ReflectConfig(consistent_positives=True))
    with pytest.raises(ValueError, match="consistent_positives must be true or false"):
        ReflectConfig(consistent_positives="yes")
