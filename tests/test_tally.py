"""The tally world: an easy-to-hard benchmark whose level is the number of items in a row."""

from __future__ import annotations

from collections import Counter

import pytest

from r3v_eval.benchmarks import get_benchmark
from r3v_eval.benchmarks.tally import TallyBenchmark
from r3v_eval.benchmarks.tally.render import BACKGROUND, CELL_LINE, DOT, render_row
from r3v_eval.benchmarks.tally.world import (
    COLORS,
    Item,
    TallyConfig,
    TallyConfigError,
    chain_items,
    generate_samples,
    rationale,
)

ROW = [Item("red", 4), Item("blue", 3), Item("green", 2)]
GOOD = ("Solution:\n1. The first is red: 0 + 4 = 4.\n2. After red is blue: 4 + 3 = 7.\n"
        "3. After blue is green: 7 + 2 = 9.\n4. The last is green.\n\nAnswer:\n9")


def test_the_rationale_repeats_one_step_per_item():
    assert rationale(ROW) == GOOD
    assert chain_items(GOOD) == ROW
    one = rationale([Item("pink", 1)])
    assert one == "Solution:\n1. The first is pink: 0 + 1 = 1.\n2. The last is pink.\n\nAnswer:\n1"


@pytest.mark.parametrize("broken, why", [
    (GOOD.replace("4 + 3 = 7", "4 + 3 = 8").replace("7 + 2 = 9", "8 + 2 = 10")
     .replace("Answer:\n9", "Answer:\n10"), "a false fact"),
    (GOOD.replace("7 + 2 = 9", "6 + 2 = 8").replace("Answer:\n9", "Answer:\n8"),
     "a fact not starting from the running total"),
    (GOOD.replace("After blue is green", "After red is green"), "an after-link to the wrong item"),
    (GOOD.replace("After blue is green", "After blue is red"), "a colour twice"),
    (GOOD.replace("The last is green", "The last is blue"), "the last line naming another item"),
    (GOOD.replace("Answer:\n9", "Answer:\n8"), "an answer the chain did not reach"),
    (GOOD.replace("3. After", "4. After"), "misnumbered lines"),
    (GOOD.replace("green", "teal"), "an unknown colour"),
    (GOOD.replace("\n4. The last is green.", ""), "no last line"),
    (GOOD.replace("\n\nAnswer:\n9", ""), "no answer line"),
])
def test_broken_chains_do_not_hold_together(broken, why):
    assert chain_items(broken) is None, why


def test_splits_are_deterministic_disjoint_and_cover_every_level_evenly():
    bench = TallyBenchmark(sizes={"train": 200, "test": 100})
    train, test = bench.load("train"), bench.load("test")
    assert [p.meta for p in bench.load("test")] == [p.meta for p in test]
    assert Counter(p.meta["level"] for p in test) == {2: 20, 3: 20, 4: 20, 5: 20, 6: 20}
    assert Counter(p.meta["level"] for p in train) == {lv: 40 for lv in range(2, 7)}
    rows = lambda ps: {tuple((x["color"], x["dots"]) for x in p.meta["items"]) for p in ps}
    assert not rows(train) & rows(test)
    for p in test:
        items = [Item(**x) for x in p.meta["items"]]
        assert len({x.color for x in items}) == len(items) == p.meta["level"]
        assert p.answer == str(sum(x.dots for x in items))
        assert bench.score(p.meta["rationale"], p).correct
        assert bench.steps_consistent(p.meta["rationale"], p)
        assert bench.teacher_rationale(p) == p.meta["rationale"]
    other = TallyBenchmark(seed=7, sizes={"test": 100}).load("test")
    assert [p.meta["items"] for p in other] != [p.meta["items"] for p in test]


def test_the_picture_shows_the_row_left_to_right_with_empty_cells_after_it():
    cfg = TallyConfig()
    img = render_row(ROW, cfg)
    assert img.size == (cfg.cell * cfg.max_items, cfg.cell)
    c = cfg.cell
    for i, item in enumerate(ROW):  # a coloured cell, with the corner dot of its die face (2+ dots) white
        assert img.getpixel((int(i * c + 0.5 * c), 3)) == COLORS[item.color]
        assert img.getpixel((int(i * c + 0.28 * c), int(0.28 * c))) == DOT
    empty = img.crop((len(ROW) * c + 2, 2, cfg.max_items * c - 2, c - 2))
    assert {rgb for _n, rgb in empty.getcolors()} <= {BACKGROUND, CELL_LINE}
    with pytest.raises(ValueError, match="does not fit"):
        render_row([Item(col, 1) for col in COLORS][:7], cfg)


def test_perception_rows_are_single_steps_in_the_chains_words():
    from r3v_train.demo.perception import after_question, perception_rows

    bench = get_benchmark("tally")
    rows = perception_rows(bench, 300, seed=0)
    assert {r["skill"] for r in rows} == {"first", "after", "arith"}
    for r in rows:
        assert "\n" not in r["completion"] and "Answer" not in r["completion"]
        if r["skill"] == "after":
            color = r["prompt"].removeprefix("What comes after ").rstrip("?")
            assert r["prompt"] == after_question(color)
            assert (r["completion"].startswith(f"After {color} is ")
                    or r["completion"] == f"The last is {color}.")
    lasts = [r for r in rows if r["completion"].startswith("The last")]
    assert lasts  # the end of a row is taught for every length
    with pytest.raises(ValueError, match="perception skills"):
        perception_rows(bench, 3, seed=0, skills={"count": 1.0})


@pytest.mark.parametrize("knobs, message", [
    ({"max_items": 9}, "max_items: 1..8"),
    ({"min_items": 4, "max_items": 3}, "min_items"),
    ({"max_dots": 6}, "max_dots"),
    ({"colors": ["red", "teal"]}, "unknown colour 'teal'"),
    ({"colors": ["red", "red"]}, "each colour once"),
])
def test_bad_knobs_are_named(knobs, message):
    with pytest.raises(TallyConfigError, match=message):
        TallyConfig(**knobs)


def test_recipe_options_build_the_world():
    bench = get_benchmark("tally", {"seed": 3, "sizes": {"test": 10},
                                    "config": {"min_items": 3, "max_items": 4}})
    assert sorted({p.meta["level"] for p in bench.load("test")}) == [3, 4]
    assert len(generate_samples(5, "val", 3, bench.config)) == 5
    with pytest.raises(ValueError, match="unknown split"):
        TallyBenchmark(sizes={"dev2": 3})
