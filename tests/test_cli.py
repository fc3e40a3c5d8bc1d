"""The `r3v` command: score, data shapes, tiny-model, errors (real subprocesses)."""

import json
import subprocess
import sys

import pytest

R3V = [sys.executable, "-m", "r3v_train.cli"]

# per benchmark: (a correct reply line, a wrong-but-parseable line, an unparseable line)
CASES = {
    "chartqa": ({"response": "Solution:\n1. Read the bar.\n\nAnswer:\n1,234", "answer": "1200"},
                {"response": "Answer: 1400", "answer": "1200"},
                {"response": "", "answer": "1200"}),
    "tabmwp": ({"response": "Answer: $5.50", "answer": "5.5"},
               {"response": "Answer: 3/4", "answer": "0.7"},
               {"response": "Answer:", "answer": "5.5"}),
    "clevr_math": ({"response": "Answer:\n3", "answer": "3"},
                   {"response": "Answer:\n4", "answer": "3"},
                   {"response": "I cannot tell.", "answer": "3"}),
    "geoqa": ({"response": "Answer: (B)", "answer": "B", "choices": ["30°", "40°", "50°", "60°"]},
              {"response": "Answer: (C)", "answer": "B", "choices": ["30°", "40°", "50°", "60°"]},
              {"response": "", "answer": "B", "choices": ["30°", "40°", "50°", "60°"]}),
    "geoqa_zh": ({"response": "答案 Answer: (A)", "answer": "A", "choices": ["30°", "40°"]},
                 {"response": "Answer: (B)", "answer": "A", "choices": ["30°", "40°"]},
                 {"response": "", "answer": "A", "choices": ["30°", "40°"]}),
    "m3cot": ({"response": "The answer is B.", "answer": "B", "choices": ["cat", "dog"]},
              {"response": "Answer: A", "answer": "B", "choices": ["cat", "dog"]},
              {"response": "", "answer": "B", "choices": ["cat", "dog"]}),
    "mmmu": ({"response": "Answer: (A)", "answer": "A", "choices": ["1", "2", "3", "4"]},
             {"response": "Answer: (D)", "answer": "A", "choices": ["1", "2", "3", "4"]},
             {"response": "", "answer": "A", "choices": ["1", "2", "3", "4"]}),
    "mathvista": ({"response": "Answer: 12", "answer": "12"},
                  {"response": "Answer: 13", "answer": "12"},
                  {"response": "", "answer": "12"}),
    "miniwob": ({"response": "Answer: click(0.3, 0.5)", "answer": "click(0.33, 0.48)",
                 "meta": {"boxes": [[2, 85, 104, 116]]}},
                {"response": "Answer: click(0.9, 0.9)", "answer": "click(0.33, 0.48)",
                 "meta": {"boxes": [[2, 85, 104, 116]]}},
                {"response": "", "answer": 'type("Bob")'}),
    "tally": ({"response": "Solution:\n1. The first is red: 0 + 4 = 4.\n2. The last is red.\n\n"
                          "Answer:\n4", "answer": "4"},
              {"response": "Answer:\n5", "answer": "4"},
              {"response": "several", "answer": "4"}),
    "shapes": ({"response": "Solution:\n1. 9 - 2 = 7.\n\nAnswer:\n7", "answer": "7"},
               {"response": "Answer:\n6", "answer": "7"},
               {"response": "many", "answer": "7"}),
}


def run(args, **kw):
    return subprocess.run(R3V + args, capture_output=True, text=True, timeout=300, **kw)


def test_every_registered_benchmark_has_a_score_case():
    from r3v_eval.benchmarks import benchmark_names

    assert sorted(CASES) == benchmark_names()


@pytest.mark.parametrize("name", sorted(CASES))
def test_score_each_benchmark(name, tmp_path):
    good, wrong, bad = CASES[name]
    path = tmp_path / "replies.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (good, wrong, bad)))
    res = run(["score", "--benchmark", name, str(path)])
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["correct"] for r in rows] == [True, False, False]
    assert rows[0]["extracted"] is not None and rows[1]["extracted"] is not None
    assert rows[2]["extracted"] is None
    assert "accuracy 0.3333 (1/3)" in res.stderr


def test_score_bad_lines_name_their_line_numbers(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"response": "Answer: 1", "answer": "1"}\n{not json\n'
                    '{"answer": "2"}\n{"response": "x", "answer": "1", "choices": "AB"}\n')
    res = run(["score", "--benchmark", "clevr_math", str(path)])
    assert res.returncode == 2
    assert res.stdout == ""
    assert "line 2: not valid JSON" in res.stderr
    assert "line 3: missing required key 'response'" in res.stderr
    assert "line 4: 'choices' must be a list" in res.stderr


def test_score_unknown_benchmark_and_missing_file(tmp_path):
    res = run(["score", "--benchmark", "nope", str(tmp_path / "x.jsonl")])
    assert res.returncode == 2 and "unknown benchmark 'nope'" in res.stderr
    res = run(["score", "--benchmark", "chartqa", str(tmp_path / "x.jsonl")])
    assert res.returncode == 2 and "input file not found" in res.stderr


def test_data_shapes_writes_the_canonical_schema(tmp_path):
    res = run(["data", "shapes", "--out", str(tmp_path / "d"), "--n-train", "12", "--n-test", "5",
               "--seed", "3", "--grid", "3", "--max-objects", "6", "--steps", "1,2"])
    assert res.returncode == 0, res.stderr
    test_rows = [json.loads(l) for l in (tmp_path / "d" / "test.jsonl").read_text().splitlines()]
    assert len(test_rows) == 5
    assert all((tmp_path / "d" / r["image"]).is_file() for r in test_rows)
    assert all(r["meta"]["steps"] in (1, 2) for r in test_rows)
    rationales = (tmp_path / "d" / "rationales.jsonl").read_text().splitlines()
    assert len(rationales) == 17
    from r3v_eval.benchmarks import get_benchmark

    probs = get_benchmark("shapes").load("train", source=tmp_path / "d")
    assert len(probs) == 12 and probs[0].load_image().size[0] > 0


def test_data_shapes_bad_knob_is_a_clear_error(tmp_path):
    res = run(["data", "shapes", "--out", str(tmp_path / "d"), "--colors", "red,octarine"])
    assert res.returncode == 2 and "octarine" in res.stderr


@pytest.mark.slow
def test_tiny_model_builds(tmp_path):
    res = run(["tiny-model", "--arch", "llava", "--out", str(tmp_path / "m")])
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "m" / "config.json").is_file()
    assert json.loads((tmp_path / "m" / "r3v_tiny.json").read_text())["tie_embeddings"] is False
    res = run(["tiny-model", "--arch", "qwen2_vl", "--no-tie-embeddings", "--out",
               str(tmp_path / "q")])
    assert res.returncode == 0, res.stderr
    info = json.loads((tmp_path / "q" / "r3v_tiny.json").read_text())
    assert info["arch"] == "qwen2_vl" and info["tie_embeddings"] is False


def test_only_the_projects_own_errors_are_one_line(monkeypatch, capsys):
    from r3v_train import cli

    assert cli.main(["train", "--recipe", "/no/such/recipe.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "recipe not found: /no/such/recipe.yaml" in err

    def crash(args):
        raise ValueError("a bug deep inside a library")

    monkeypatch.setattr(cli, "_cmd_leaderboard", crash)
    with pytest.raises(ValueError, match="a bug deep inside a library"):  # keeps its traceback
        cli.main(["leaderboard", "x"])
