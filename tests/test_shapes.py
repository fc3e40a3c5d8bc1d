"""The synthetic shapes benchmark: determinism, pictures, rationales, knobs, files, scoring."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from r3v_eval import prompts
from r3v_eval.benchmarks import get_benchmark
from r3v_eval.benchmarks.base import DataError, Problem
from r3v_eval.benchmarks.shapes.render import BACKGROUND
from r3v_eval.benchmarks.shapes import (
    COLORS,
    SHAPES,
    TEMPLATES,
    ShapesConfig,
    answer_stats,
    apply_ops,
    count,
    generate_samples,
    png_bytes,
    render_scene,
    solve,
    teacher_rationale,
    write_shapes_dataset,
)


@pytest.fixture(scope="module")
def bench():
    return get_benchmark("shapes")


@pytest.fixture(scope="module")
def test_problems(bench):
    return bench.load("test", limit=300)


def _pngs(n=20, seed=7, config=None, split="test"):
    config = config or ShapesConfig()
    return [png_bytes(render_scene(s.objects, config)) for s in generate_samples(n, split, seed, config)]


# ------------------------------------------------------------- determinism
def test_registered_with_paper_wording(bench):
    assert bench.name == "shapes" and bench.hub_id is None
    p = bench.load("test", limit=1)[0]
    assert prompts.cot_prompt(bench, p).endswith(
        "\nFirst generate a step-by-step solution, then answer the question using a single "
        "numerical value.")
    sel = prompts.select_prompt(bench, p, ["a", "b", "c"])
    assert sel.endswith("\nWhich prediction is correct? Give the final answer with a single "
                        "numerical value.")


def test_same_seed_same_bytes_independent_of_global_random():
    random.seed(0)
    a = _pngs()
    qa = [s.question for s in generate_samples(20, "test", 7)]
    random.seed(987654)
    random.random()
    b = _pngs()
    qb = [s.question for s in generate_samples(20, "test", 7)]
    assert a == b
    assert qa == qb


def test_different_seed_differs():
    a, b = _pngs(seed=7), _pngs(seed=8)
    assert sum(x != y for x, y in zip(a, b)) >= 18
    qa = [s.question for s in generate_samples(20, "test", 7)]
    qb = [s.question for s in generate_samples(20, "test", 8)]
    assert qa != qb


def test_in_memory_load_is_deterministic_and_prefix_stable(bench):
    a = bench.load("test", limit=30)
    b = bench.load("test", limit=60)[:30]
    assert [p.id for p in a] == [p.id for p in b]
    assert [p.question for p in a] == [p.question for p in b]
    assert [png_bytes(p.image) for p in a] == [png_bytes(p.image) for p in b]
    assert len(bench.load("test")) == 500
    with pytest.raises(DataError):
        bench.load("nonsense")


# ------------------------------------------------------------------ picture
def test_picture_shows_the_scene(test_problems):
    """Each object's cell centre has its colour; empty cells show the background."""
    config = ShapesConfig()
    cell = config.image_size / config.grid_size
    for p in test_problems[:50]:
        img = p.load_image()
        assert img.size == (112, 112) and img.mode == "RGB"
        occupied = {(o["row"], o["col"]): o for o in p.meta["objects"]}
        for r in range(1, 5):
            for c in range(1, 5):
                # a point inside every shape (triangles and stars are bottom-heavy)
                px = img.getpixel((int((c - 0.5) * cell), int((r - 0.5) * cell + 3)))
                if (r, c) in occupied:
                    assert px == COLORS[occupied[(r, c)]["color"]], (p.id, r, c)
                else:
                    assert px == BACKGROUND


def test_description_lists_every_object(test_problems):
    for p in test_problems[:50]:
        desc = p.meta["description"]
        parts = desc.rstrip(".").split("; ")
        assert len(parts) == len(p.meta["objects"])
        for o in p.meta["objects"]:
            assert f"{o['color']} {o['shape']} at row {o['row']} column {o['col']}" in parts


# --------------------------------------------------------------- rationales
_COUNT = re.compile(r"^(?:There|Now there) (?:is|are) (\d+) (.+?)(?: in total)?\.$")
_ARITH = re.compile(r"(\d+) ([-+]) (\d+) = (\d+)\.")


def _parse_noun(text):
    words = text.split()
    color = words[0] if words[0] in COLORS else None
    head = words[-1]
    plural_to_shape = {v: k for k, v in SHAPES.items()}
    shape = plural_to_shape.get(head, head if head in SHAPES else None)
    return color, shape


def _check_rationale(p, bench):
    meta = p.meta
    rat = teacher_rationale(p)
    assert rat == meta["rationale"]
    assert rat.startswith("Solution:\n1. ")
    body, final = rat.split("\n\nAnswer:\n")
    assert final == p.answer == str(solve(meta["objects"], meta["ops"], meta["query"]))
    assert bench.score(rat, p).correct
    lines = body.split("\n")[1:]
    assert [ln.split(". ", 1)[0] for ln in lines] == [str(i) for i in range(1, len(lines) + 1)]
    steps = [ln.split(". ", 1)[1] for ln in lines]
    # the first step counts the queried objects in the picture
    m = _COUNT.match(steps[0])
    assert m, steps[0]
    q = meta["query"]
    assert int(m.group(1)) == count(meta["objects"], q["color"], q["shape"])
    assert _parse_noun(m.group(2)) == (q["color"], q["shape"])
    running = int(m.group(1))
    for step in steps[1:]:
        cm = _COUNT.match(step)
        if cm:  # a count of the objects a removal touches, in the scene as it is by then
            color, shape = _parse_noun(cm.group(2))
            scenes = [apply_ops(meta["objects"], meta["ops"][:k]) for k in range(len(meta["ops"]))]
            if step.startswith("There"):  # the first removal counts the original picture
                scenes = scenes[:1]
            assert int(cm.group(1)) in [count(sc, color, shape) for sc in scenes], step
            continue
        am = _ARITH.fullmatch(step)
        assert am, step  # only counts and single arithmetic facts
        a, op, b, c = (int(am.group(1)), am.group(2), int(am.group(3)), int(am.group(4)))
        assert a == running and c == (a - b if op == "-" else a + b), step
        running = c
    assert str(running) == p.answer  # the chain ends at the simulated answer (solve, above)
    return len(steps)


def test_rationales_are_right_and_count_the_scene(bench, test_problems):
    seen = Counter()
    for p in test_problems:
        _check_rationale(p, bench)
        seen[p.meta["template"]] += 1
        assert p.meta["steps"] == TEMPLATES[p.meta["template"]] == len(p.meta["ops"]) + 1
        assert p.meta["level"] == p.meta["steps"]  # the frontier's difficulty level
    assert set(seen) == set(TEMPLATES)  # every template occurs in 300 problems


def test_rationale_example_and_styles(bench):
    p = Problem(id="x", question="Remove all red squares. How many objects are left?", answer="7",
                benchmark="shapes",
                meta={"objects": [{"color": "red", "shape": "square", "row": 1, "col": c}
                                  for c in (1, 2)]
                      + [{"color": "blue", "shape": "circle", "row": 2, "col": c}
                         for c in (1, 2, 3, 4)]
                      + [{"color": "red", "shape": "circle", "row": 3, "col": c}
                         for c in (1, 2, 3)],
                      "ops": [{"op": "remove", "color": "red", "shape": "square"}],
                      "query": {"color": None, "shape": None}})
    assert teacher_rationale(p) == (
        "Solution:\n1. There are 9 objects in total.\n2. There are 2 red squares.\n"
        "3. 9 - 2 = 7.\n\nAnswer:\n7")
    llava = teacher_rationale(p, style="llava")
    assert llava.startswith("1. There are 9") and "Solution" not in llava
    assert bench.score(llava, p).correct
    with pytest.raises(ValueError):
        teacher_rationale(Problem(id="y", question="?", answer="1", benchmark="shapes"))


def test_three_step_wording():
    qs = {s.template: s.question for s in generate_samples(400, "train", 3)}
    assert re.fullmatch(r"Remove all (red|green|blue) objects\. Then remove all "
                        r"(squares|circles|triangles)\. How many objects are left\?",
                        qs["remove_color_then_shape"])
    assert re.fullmatch(r"Add \d (red|green|blue) (square|circle|triangle)s?\. "
                        r"How many (squares|circles|triangles) are there\?", qs["add_count_shape"])
    assert re.fullmatch(r"How many (squares|circles|triangles) are there\?", qs["count_shape"])
    assert re.fullmatch(r"How many (red|green|blue) objects are there\?", qs["count_color"])


# -------------------------------------------------------------------- knobs
def test_grid_size_knob():
    small = ShapesConfig(grid_size=3, max_objects=9)
    samples = generate_samples(50, "test", 7, small)
    assert all(1 <= o["row"] <= 3 and 1 <= o["col"] <= 3 for s in samples for o in s.objects)
    assert _pngs(5, config=small) != _pngs(5)


def test_colour_and_shape_knobs():
    cfg = ShapesConfig(colors=("yellow", "purple", "orange", "cyan", "red", "blue"),
                       shapes=("diamond", "star"))
    samples = generate_samples(200, "test", 7, cfg)
    assert {o["color"] for s in samples for o in s.objects} == set(cfg.colors)
    assert {o["shape"] for s in samples for o in s.objects} == {"diamond", "star"}
    words = set(" ".join(s.question for s in samples).replace(".", " ").replace("?", " ").split())
    assert not words & {"green", "square", "squares", "circle", "circles", "triangles"}
    with pytest.raises(ValueError):
        ShapesConfig(colors=("red", "mauve"))
    with pytest.raises(ValueError):
        ShapesConfig(grid_size=2, max_objects=10)


def test_steps_and_template_knobs(bench):
    one = generate_samples(100, "test", 7, ShapesConfig(steps=(1,)))
    assert {s.steps for s in one} == {1} and all(not s.ops for s in one)
    three = generate_samples(100, "test", 7, ShapesConfig(steps=(3,)))
    assert {s.steps for s in three} == {3} and all(len(s.ops) == 2 for s in three)
    only = generate_samples(30, "test", 7, ShapesConfig(templates=("remove_color",)))
    assert {s.template for s in only} == {"remove_color"}
    with pytest.raises(ValueError):
        ShapesConfig(steps=(4,))
    with pytest.raises(ValueError):
        ShapesConfig(steps=(1,), templates=("remove_color",))


def test_answer_distribution_is_not_trivial(test_problems):
    stats = answer_stats([p.answer for p in test_problems])
    assert stats["majority_share"] < 0.25
    assert len(stats["histogram"]) >= 8
    assert min(stats["histogram"]) >= 0 and max(stats["histogram"]) <= 20


# -------------------------------------------------------------------- files
def test_write_and_load_round_trip(tmp_path, bench):
    info = write_shapes_dataset(tmp_path, n_train=40, n_test=20, seed=1234, progress=False)
    assert info["train"]["n"] == 40 and info["test"]["n"] == 20
    assert (tmp_path / "images").is_dir()
    for split, n in (("train", 40), ("test", 20)):
        loaded = bench.load(split, source=tmp_path)
        fresh = bench.load(split, limit=n)  # same default seed -> the same problems
        assert len(loaded) == n
        for a, b in zip(loaded, fresh):
            assert (a.id, a.question, a.answer, a.meta) == (b.id, b.question, b.answer, b.meta)
            assert isinstance(a.image, str)
            assert a.load_image().tobytes() == b.load_image().tobytes()
            assert bench.score(teacher_rationale(a), a).correct
    rats = [json.loads(line) for line in (tmp_path / "rationales.jsonl").read_text().splitlines()]
    assert len(rats) == 60 and len({r["id"] for r in rats}) == 60
    by_id = {p.id: p for s in ("train", "test") for p in bench.load(s, source=tmp_path)}
    assert all(r["rationale"] == teacher_rationale(by_id[r["id"]]) for r in rats)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["seed"] == 1234 and ShapesConfig.from_dict(cfg["config"]) == ShapesConfig()


def test_train_and_test_are_disjoint():
    def key(s):
        return (tuple(sorted((o["row"], o["col"], o["color"], o["shape"]) for o in s.objects)),
                s.question)

    train = {key(s) for s in generate_samples(3000, "train", 5)}
    test = {key(s) for s in generate_samples(500, "test", 5)}
    assert not train & test
    # even on a tiny world where collisions would be common
    cfg = ShapesConfig(grid_size=2, max_objects=3, min_objects=1, colors=("red",),
                       shapes=("square",), steps=(1,))
    train = {key(s) for s in generate_samples(200, "train", 5, cfg)}
    test = {key(s) for s in generate_samples(50, "test", 5, cfg)}
    assert not train & test


# ------------------------------------------------------------------ scoring
@pytest.mark.parametrize("reply,correct", [
    ("Answer:\n7", True),
    ("7.", True),
    ("seven", True),
    ("The answer is 7", True),
    ("3 + 4 = 7", True),
    ("Solution:\n1. There are 9 objects.\n\nAnswer:\n5\n\nAnswer:\n7", True),
    ("Answer: 5\nWait, let me recount.\nAnswer: 7 objects", True),
    ("Answer:\n8", False),
    ("There are many objects left.", False),
    ("", False),
    ("Answer:", False),
    ("7.5", False),
])
def test_scoring_awkward_replies(bench, reply, correct):
    p = Problem(id="q", question="?", answer="7", benchmark="shapes")
    score = bench.score(reply, p)
    assert score.correct is correct
    if correct:
        assert score.extracted == "7"


def test_rationale_words_are_whole_tokens_of_the_demo_base(test_problems):
    """Words the tiny tokenizer splits into letters ("Removing" -> Re m o v ing) came out
    misspelt in a third of a warm-up's replies that used them; the rationales avoid them."""
    from transformers import AutoTokenizer

    from r3v_train.demo.shipped import DEMO_BASE

    tok = AutoTokenizer.from_pretrained(DEMO_BASE)
    words = {w for p in test_problems for w in re.findall(r"[A-Za-z]+", p.meta["rationale"])}
    split = sorted(w for w in words if len(tok.tokenize(" " + w)) != 1)
    assert words and not split, split


def test_steps_consistent_reads_the_chain_not_the_picture(bench, test_problems):
    from r3v_eval.benchmarks.shapes import steps_consistent
    for p in test_problems[:200]:  # every teacher rationale holds together, in both styles
        assert bench.steps_consistent(p.meta["rationale"], p)
        assert bench.steps_consistent(teacher_rationale(p, style="llava"), p)
    q = "Remove all red squares. Then add 2 blue circles. How many objects are there?"
    good = ("Solution:\n1. There are 6 objects in total.\n2. There are 2 red squares.\n"
            "3. 6 - 2 = 4.\n4. 4 + 2 = 6.\n\nAnswer:\n6")
    assert steps_consistent(good, q)
    # a wrong count carried through correctly still holds together (the picture is not read)
    assert steps_consistent(good.replace("6 objects", "7 objects").replace("6 - 2 = 4", "7 - 2 = 5")
                            .replace("4 + 2 = 6", "5 + 2 = 7").replace("Answer:\n6", "Answer:\n7"), q)
    broken = {
        "false fact": good.replace("6 - 2 = 4", "6 - 2 = 3").replace("4 + 2", "3 + 2")
                          .replace("= 6.\n\n", "= 5.\n\n").replace("Answer:\n6", "Answer:\n5"),
        "operand not carried": good.replace("4 + 2 = 6", "5 + 2 = 7").replace("Answer:\n6",
                                                                              "Answer:\n7"),
        "subtracts another count": good.replace("6 - 2 = 4", "6 - 3 = 3").replace("4 + 2 = 6",
                                                                                   "3 + 2 = 5")
                                       .replace("Answer:\n6", "Answer:\n5"),
        "adds what the question does not": good.replace("4 + 2 = 6", "4 + 1 = 5")
                                               .replace("Answer:\n6", "Answer:\n5"),
        "answer not reached": good.replace("Answer:\n6", "Answer:\n4"),
        "no answer line": good.split("\n\nAnswer:")[0],
        "misnumbered": good.replace("3. 6 - 2", "4. 6 - 2"),
        "other words": good.replace("2. There are 2 red squares.", "2. Remove all red squares."),
        "starts with a fact": good.replace("1. There are 6 objects in total.\n2. There are 2 red "
                                           "squares.\n3. 6 - 2 = 4.\n4.", "1."),
    }
    for why, reply in broken.items():
        assert not steps_consistent(reply, q), why
