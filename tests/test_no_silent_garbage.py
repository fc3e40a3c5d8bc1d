"""No silent garbage (issue 33): answers keep their digits, the bad-row limit counts the whole
file, recipe values that would train garbage are refused before any model loads."""

from __future__ import annotations

import json

import pytest

from r3v_eval.benchmarks import DataError, get_benchmark
from r3v_eval.benchmarks.base import Problem
from r3v_train.config import ConfigError
from r3v_train.recipe_files import apply_overrides, coerce


@pytest.mark.parametrize("name", ["shapes", "clevr_math", "tabmwp", "tally", "chartqa"])
def test_a_long_integer_answer_keeps_every_digit(name):
    digits = "2" * 61
    bench = get_benchmark(name)
    problem = Problem(id="1", question="", answer=digits, benchmark=name)
    score = bench.score(f"Answer:\n{digits}", problem)
    assert score.extracted == digits and score.correct
    if name != "chartqa":  # chartqa's rule is 5% relaxed; the others are exact
        assert not bench.score(f"Answer:\n{digits[:-1]}3", problem).correct


def _rows(n, bad_at):
    return [("{not json" if i == bad_at else json.dumps({"id": str(i), "question": "q?",
                                                         "answer": str(i)}))
            for i in range(n)]


def test_the_bad_row_limit_counts_the_whole_file(tmp_path):
    (tmp_path / "train.jsonl").write_text("\n".join(_rows(200, bad_at=3)) + "\n")
    bench = get_benchmark("chartqa")
    problems = bench.load("train", tmp_path, limit=24)  # 1 bad row of 200: 0.5%, under 1%
    assert len(problems) == 24 and bench.last_load.rows == 200
    assert "rows past the limit counted" in bench.last_load.headline()
    (tmp_path / "train.jsonl").write_text("\n".join(_rows(50, bad_at=3)) + "\n")
    with pytest.raises(DataError, match="1 of 50 rows"):  # 2%: over the limit
        bench.load("train", tmp_path, limit=24)


@pytest.mark.parametrize("raw", ["inf", "-inf", ".inf", "nan", ".nan", "1e999"])
def test_non_finite_numbers_are_refused(raw):
    import yaml

    with pytest.raises(ConfigError, match="train.learning_rate: expected a finite number"):
        coerce(yaml.safe_load(raw), float, "train.learning_rate")


def test_a_duplicate_key_in_a_set_value_is_refused():
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        apply_overrides({}, ["data.options={a: 1, a: 2}"])


def test_pictures_outside_sane_bounds_are_refused_or_resized(tmp_path, caplog):
    import logging

    from PIL import Image

    from r3v_eval.benchmarks import images

    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(DataError, match=r"row 1: .*dot.png: picture of 1x1 pixels is too small"):
        images.open_image(tmp_path / "dot.png", "row 1")
    Image.new("RGB", (5000, 4000), (200, 10, 10)).save(tmp_path / "big.jpg")
    before = images.resized
    with caplog.at_level(logging.WARNING):
        big = images.open_image(tmp_path / "big.jpg", "row 2")
    assert big.size[0] * big.size[1] <= images.MAX_PIXELS and big.size[0] > big.size[1]
    assert images.resized == before + 1 and "resized to" in caplog.text and "row 2" in caplog.text


def test_only_the_users_own_gen_kwargs_are_warned_about(monkeypatch):
    from types import SimpleNamespace

    from r3v_eval.lmms import models as M

    warned = []
    monkeypatch.setattr(M, "logger", SimpleNamespace(warning=warned.append))
    stub = SimpleNamespace(model_name="r3v_select", strategy="select",
                           args=SimpleNamespace(max_new_tokens=12, temperature=0.7, top_p=1.0,
                                                top_k=0))
    stub.decoding = lambda: M.R3VModel.decoding(stub)
    stub.overridden_gen_kwargs = lambda g: M.R3VModel.overridden_gen_kwargs(stub, g)

    def request(gen_kwargs):
        return SimpleNamespace(args=("ctx", gen_kwargs, None, 0, "r3v_shapes", "test"))

    M.R3VModel._report_gen_kwargs(stub, [request(M.task_generation_defaults())])
    assert warned == []  # the task's defaults, nothing the user set
    M.R3VModel._report_gen_kwargs(stub, [request({**M.task_generation_defaults(),
                                                  "max_new_tokens": 99})])
    assert len(warned) == 1 and "max_new_tokens=99 -> 12" in warned[0]
    assert "temperature=0 ->" not in warned[0] and "until" not in warned[0]
