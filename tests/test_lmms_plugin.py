"""The lmms-eval plugin: model-argument checks, the document schema, scoring, the task class,
the wrappers in process, and the real ``lmms-eval`` / ``python -m lmms_eval`` / ``r3v eval``
commands end to end on ``r3v_shapes`` with a tiny offline model."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from r3v_eval.benchmarks import Problem, get_benchmark, write_local
from r3v_eval.lmms import MODEL_CLASSES, manifests, tasks_dir
from r3v_eval.lmms.args import parse_model_args
from r3v_eval.lmms.docs import (
    decode_samples,
    doc_to_problem,
    encode_samples,
    problem_to_doc,
    score_doc,
)
from r3v_eval.lmms.run import split_include_paths

VENV_BIN = Path(sys.executable).parent
TASK_NAMES = sorted([*(f"r3v_{b}" for b in ("chartqa", "tabmwp", "clevr_math", "miniwob", "geoqa",
                                             "geoqa_zh", "m3cot", "mmmu", "mathvista", "shapes", "tally")),
                     "r3v_miniwob_online"])


# ------------------------------------------------------------------ registration
def test_manifests_and_entry_point():
    from importlib.metadata import entry_points

    from lmms_eval.models.registry_v2 import ModelManifest

    found = {m.model_id: m for m in manifests()}
    assert set(found) == {"r3v_cot", "r3v_majority", "r3v_select"}
    assert all(isinstance(m, ModelManifest) for m in found.values())
    assert found["r3v_select"].simple_class_path == MODEL_CLASSES["r3v_select"]
    eps = [ep for ep in entry_points(group="lmms_eval.models") if ep.value == "r3v_eval.lmms:manifests"]
    assert eps, "entry point missing: reinstall with `pip install -e . --no-deps`"
    assert eps[0].load() is manifests


def test_lmms_eval_resolves_the_models():
    from lmms_eval.models import get_model

    from r3v_eval.lmms.models import R3VCoT, R3VMajority, R3VSelect

    assert get_model("r3v_cot") is R3VCoT
    assert get_model("r3v_majority") is R3VMajority
    assert get_model("r3v_select") is R3VSelect


# ---------------------------------------------------------------- model_args
def test_model_args_defaults_and_conversion(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # "m": a hub id, passed through when online
    a = parse_model_args("r3v_select", {"pretrained": "m"})
    assert (a.n, a.temperature, a.top_p, a.top_k, a.max_new_tokens) == (3, 0.9, 0.95, 50, 384)
    assert (a.backend, a.prompt_style, a.batch_size, a.select_max_new_tokens) == ("hf", "qwen", 1, 64)
    # what simple_parse_args_string and the lmms-eval CLI hand over: ints, floats, strings
    a = parse_model_args("r3v_majority", {"pretrained": "m", "n": 5, "temperature": 1, "top_p": "0.9",
                                          "top_k": "0", "batch_size": "4", "max_pixels": 12544,
                                          "adapter": "None", "device": "cpu", "prompt_style": "qwen2",
                                          "max_batch_size": None})
    assert (a.n, a.temperature, a.top_p, a.top_k, a.batch_size) == (5, 1.0, 0.9, 0, 4)
    assert a.max_pixels == 12544 and a.adapter is None and a.prompt_style == "qwen2"
    assert a.engine_kwargs() == {"dtype": "auto", "batch_size": 4, "device": "cpu", "max_pixels": 12544}
    v = parse_model_args("r3v_cot", {"pretrained": "m", "backend": "vllm", "tensor_parallel_size": 2})
    assert v.engine_kwargs()["tensor_parallel_size"] == 2 and v.engine_kwargs()["seed"] == 0


@pytest.mark.parametrize("model, raw, message", [
    ("r3v_select", {"pretrained": "m", "nn": 2}, "r3v_select: unknown model_args key 'nn' (did you mean 'n'?)"),
    ("r3v_cot", {"pretrained": "m", "select_max_new_tokens": 9}, "unknown model_args key 'select_max_new_tokens'"),
    ("r3v_majority", {"pretrained": "m", "select_choice": "candidates"}, "unknown model_args key 'select_choice'"),
    ("r3v_select", {"pretrained": "m", "select_choice": "vote"}, "select_choice='vote': choose one of generate, candidates"),
    ("r3v_select", {"pretrained": "m", "select_target": "letter"}, "select_target='letter': choose one of answer, answer_line"),
    ("r3v_cot", {"n": 2}, "needs pretrained="),
    ("r3v_majority", {"pretrained": "m", "n": 0}, "n=0: must be >= 1"),
    ("r3v_majority", {"pretrained": "m", "n": 2.5}, "n=2.5: expected an integer"),
    ("r3v_majority", {"pretrained": "m", "temperature": 0}, "temperature=0: must be > 0"),
    ("r3v_majority", {"pretrained": "m", "top_p": 1.5}, "top_p=1.5: must be in (0, 1]"),
    ("r3v_select", {"pretrained": "m", "prompt_style": "chatml"}, "prompt_style='chatml': choose one of qwen, llava, qwen2"),
    ("r3v_select", {"pretrained": "m", "backend": "tgi"}, "backend='tgi': choose one of hf, vllm"),
    ("r3v_select", {"pretrained": "m", "dtype": "fp8"}, "dtype='fp8'"),
    ("r3v_select", {"pretrained": "m", "batch_size": "auto"}, "batch_size='auto': 'auto' is not supported"),
    ("r3v_select", {"pretrained": "m", "batch_size": "x"}, "batch_size='x': expected an integer"),
    ("r3v_select", {"pretrained": "m", "max_model_len": 4096}, "max_model_len applies to backend=vllm only"),
    ("r3v_select", {"pretrained": "m", "min_pixels": 900, "max_pixels": 100}, "min_pixels=900 is larger"),
    ("r3v_select", {"pretrained": True}, "pretrained=True: expected a string"),
])
def test_model_args_errors_name_the_key(model, raw, message):
    with pytest.raises(ValueError) as info:
        parse_model_args(model, raw)
    assert message in str(info.value)
    assert str(info.value).startswith(model)


def test_wrapper_checks_args_before_loading_anything():
    from r3v_eval.lmms.models import R3VSelect

    with pytest.raises(ValueError, match="unknown model_args key 'nn'"):
        R3VSelect(pretrained="/does/not/exist", nn=2)  # no model load is attempted
    with pytest.raises(ValueError, match="needs pretrained"):
        R3VSelect()


# ------------------------------------------------------------- doc <-> Problem
def _choice_problem(tmp_path: Path) -> Problem:
    path = tmp_path / "pic.png"
    Image.new("RGB", (20, 10), "blue").save(path)
    return Problem(id="q7", question="Which is larger?", answer="B", benchmark="geoqa",
                   choices=["1 cm", "2 cm"], unit="cm", image=str(path),
                   meta={"source": "x", "nested": {"a": [1, 2]}})


def test_doc_problem_round_trip(tmp_path):
    import datasets

    from r3v_eval.lmms.docs import doc_features

    shapes = get_benchmark("shapes").load("test", limit=2)
    problems = shapes + [_choice_problem(tmp_path)]
    for p in problems:  # in memory
        q = doc_to_problem(problem_to_doc(p))
        assert (q.id, q.question, q.answer, q.benchmark, q.choices, q.unit, q.meta) == \
            (p.id, p.question, p.answer, p.benchmark, p.choices, p.unit, p.meta)
    ds = datasets.Dataset.from_list([problem_to_doc(p) for p in problems], features=doc_features())
    for p, doc in zip(problems, ds):  # through the Arrow table, as lmms-eval sees it
        q = doc_to_problem(doc)
        assert (q.id, q.question, q.answer, q.choices, q.unit, q.meta) == \
            (p.id, p.question, p.answer, p.choices, p.unit, p.meta)
        assert q.load_image().size == p.load_image().size
        assert q.load_image().tobytes() == p.load_image().tobytes()
    for p, doc in zip(problems, ds.remove_columns("image")):  # process_results' doc
        q = doc_to_problem(doc)
        assert q.image is None and q.answer == p.answer and q.choices == p.choices
    # the prompt the wrappers build is the same before and after the trip
    from r3v_eval import prompts

    bench = get_benchmark("shapes")
    assert prompts.cot_prompt(bench, doc_to_problem(ds[0]), "llava") == \
        prompts.cot_prompt(bench, shapes[0], "llava")
    with pytest.raises(ValueError, match="not an r3v task document"):
        doc_to_problem({"question": "q", "image": None})


# ------------------------------------------------------------------ scoring
def _doc(answer="3"):
    p = Problem(id="s1", question="How many?", answer=answer, benchmark="shapes")
    doc = problem_to_doc(p)
    del doc["image"]  # process_results gets the doc without images
    return doc


def test_score_plain_reply():
    assert score_doc(_doc(), ["Solution:\n1. count\n\nAnswer:\n3"]) == {"accuracy": 1.0}
    assert score_doc(_doc(), ["Answer:\n4"]) == {"accuracy": 0.0}
    assert score_doc(_doc(), ["no idea"]) == {"accuracy": 0.0}
    assert score_doc(_doc(), [["Answer: 3", "Answer: 4"]]) == {"accuracy": 1.0}


def test_score_majority_and_select_payloads():
    cands = ["Solution:\n1. a\n\nAnswer:\n5", "Answer:\n3", "Answer:\n3", "gibberish"]
    maj = encode_samples("majority", cands[1], cands, ["5", "3", "3", None])
    assert score_doc(_doc(), [maj]) == {"accuracy": 1.0, "majority_at_n": 1.0, "pass_at_n": 1.0}
    # tie 5 vs 3: the first sample's answer wins
    tie = encode_samples("majority", cands[0], cands[:2], ["5", "3"])
    assert score_doc(_doc(), [tie]) == {"accuracy": 0.0, "majority_at_n": 0.0, "pass_at_n": 1.0}
    sel = encode_samples("select", "The answer is 5", cands, [])
    assert score_doc(_doc(), [sel]) == {"accuracy": 0.0, "select_at_n": 0.0, "majority_at_n": 1.0,
                                        "pass_at_n": 1.0}
    sel = encode_samples("select", "Answer: 3", cands[:1], [])
    assert score_doc(_doc(), [sel]) == {"accuracy": 1.0, "select_at_n": 1.0, "majority_at_n": 0.0,
                                        "pass_at_n": 0.0}
    none_parse = encode_samples("select", None, ["x", "y"], [])
    assert score_doc(_doc(), [none_parse])["accuracy"] == 0.0


def test_payload_survives_lmms_eval_post_processing():
    from lmms_eval.api.reasoning import strip_reasoning_tags

    cands = ["<think>hmm", "ok</think> Answer: 3", 'quote " and \\ backslash\n\nAnswer: 3']
    text = encode_samples("majority", cands[1], cands, ["3", "3", "3"])
    assert "<" not in text and ">" not in text
    tags = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]
    back = decode_samples(strip_reasoning_tags(text, tags).strip())
    assert back["candidates"] == cands and back["final"] == cands[1]
    assert decode_samples("Answer: 3") is None
    assert decode_samples('{"r3v_strategy": "select", "candidates": [1]}') is None


# ---------------------------------------------------------------- the tasks
def test_tasks_dir_holds_every_task():
    d = tasks_dir()
    assert sorted(p.stem for p in d.glob("r3v_*.yaml")) == TASK_NAMES
    assert (d / "utils.py").is_file() and (d / "_default_template_yaml").is_file()
    for yaml_file in d.glob("r3v_*.yaml"):
        assert "until" not in yaml_file.read_text()  # set once, in the shared template
    assert "until:" in (d / "_default_template_yaml").read_text()


@pytest.fixture(scope="module")
def task_manager():
    from lmms_eval.tasks import TaskManager

    return TaskManager("WARNING", include_path=str(tasks_dir()), include_defaults=False)


def test_task_manager_indexes_and_loads_shapes(task_manager):
    assert task_manager.all_tasks == TASK_NAMES
    task = task_manager.load_task_or_group(["r3v_shapes"])["r3v_shapes"]
    from r3v_eval.lmms.task import R3VTask

    assert isinstance(task, R3VTask)
    assert task.config.test_split == "test" and len(task.test_docs()) == 500
    assert task.config.generation_kwargs["until"] == ["<|im_end|>"]
    assert "image" not in task.test_docs_no_media().column_names
    doc = task.test_docs()[0]
    assert doc["benchmark"] == "shapes" and doc["choices"] == [] and doc["unit"] == ""
    assert task.doc_to_text(doc).endswith("answer the question using a single numerical value.")
    assert isinstance(task.doc_to_visual(doc)[0], Image.Image)
    assert task.doc_to_target(doc) == doc["answer"]
    assert sorted(task.aggregation()) == ["accuracy", "majority_at_n", "pass_at_n", "select_at_n"]
    assert task.process_results(task.test_docs_no_media()[0], [f"Answer: {doc['answer']}"]) == \
        {"accuracy": 1.0}


def test_task_reads_local_files_from_env(task_manager, tmp_path, monkeypatch):
    problems = get_benchmark("shapes").load("val", limit=3)
    write_local(problems, tmp_path, "val")
    monkeypatch.setenv("R3V_DATA_SHAPES", str(tmp_path))
    monkeypatch.setenv("R3V_SPLIT_SHAPES", "val")
    task = task_manager.load_task_or_group(["r3v_shapes"])["r3v_shapes"]
    docs = task.test_docs()
    assert task.config.test_split == "val"
    assert [d["id"] for d in docs] == [p.id for p in problems]
    assert docs[1]["image"].size == problems[1].load_image().size
    monkeypatch.setenv("R3V_DATA_SHAPES", str(tmp_path / "missing"))
    with pytest.raises(Exception, match="R3V_DATA_SHAPES|local data file not found"):
        task_manager.load_task_or_group(["r3v_shapes"])


# ---------------------------------------------------------------- r3v eval
def test_split_include_paths():
    rest, paths = split_include_paths(["--model", "m", "--include_path", "a", "--include_path=b", "-x"])
    assert rest == ["--model", "m", "-x"] and paths == ["a", "b"]
    with pytest.raises(ValueError):
        split_include_paths(["--include_path"])


def test_cli_tasks_dir(capsys):
    from r3v_train.cli import main

    assert main(["tasks-dir"]) == 0
    assert Path(capsys.readouterr().out.strip()) == tasks_dir()
    assert main(["eval", "--help"]) == 0
    assert "--include_path" in capsys.readouterr().out


# ------------------------------------------------------- wrappers in process
@pytest.mark.slow
def test_wrappers_in_process(tiny_qwen):
    import datasets
    from lmms_eval.api.instance import Instance

    from r3v_eval.lmms.docs import doc_features
    from r3v_eval.lmms.models import R3VCoT, R3VSelect

    shapes = get_benchmark("shapes").load("test", limit=3)
    other = [Problem(id=f"c{i}", question=p.question, answer=p.answer, benchmark="clevr_math",
                     image=p.image) for i, p in enumerate(shapes[:2])]
    task_dict = {
        "r3v_shapes": datasets.DatasetDict({"test": datasets.Dataset.from_list(
            [problem_to_doc(p) for p in shapes], features=doc_features())}),
        "r3v_clevr_math": datasets.DatasetDict({"test": datasets.Dataset.from_list(
            [problem_to_doc(p) for p in other], features=doc_features())}),
    }
    order = [("r3v_shapes", 2), ("r3v_clevr_math", 0), ("r3v_shapes", 0), ("r3v_clevr_math", 1)]
    reqs = [Instance("generate_until", ("ctx", {"until": ["x"]}, None, i, t, "test"), 0,
                     metadata={"task": t, "doc_id": i, "repeats": 1}) for t, i in order]

    model = R3VSelect(pretrained=str(tiny_qwen), n=2, max_new_tokens=6, select_max_new_tokens=4,
                      device="cpu", batch_size="2")
    model.task_dict = task_dict
    outs = model.generate_until(reqs)
    assert len(outs) == 4
    for out in outs:
        payload = decode_samples(out)
        assert payload["r3v_strategy"] == "select" and len(payload["candidates"]) == 2
        assert isinstance(payload["final"], str)

    # choosing among the candidates' answers by the model's likelihood (sampling scripted, the
    # scoring real): the final answer is always one of the candidates'
    chooser = R3VSelect(pretrained=str(tiny_qwen), n=2, select_choice="candidates",
                        select_target="answer_line", device="cpu", batch_size="2")
    chooser.task_dict = task_dict
    chooser.engine.generate = lambda requests, sampling, progress=True: [
        ["Solution:\n1. x\n\nAnswer:\n3", "Answer:\n4"] for _ in requests]
    assert "select_choice=candidates, select_target=answer_line" in chooser.describe()
    for out in chooser.generate_until(reqs):
        assert decode_samples(out)["final"] in ("Answer:\n3", "Answer:\n4")

    cot = R3VCoT(pretrained=str(tiny_qwen), max_new_tokens=6, device="cpu")
    cot.task_dict = task_dict
    replies = cot.generate_until(reqs)
    assert all(isinstance(r, str) and decode_samples(r) is None for r in replies)
    # each reply belongs to its own request: re-asking one request alone gives the same text
    assert cot.generate_until([reqs[1]]) == [replies[1]]
    with pytest.raises(NotImplementedError, match="loglikelihood"):
        cot.loglikelihood(reqs)
    with pytest.raises(NotImplementedError, match="multi-round"):
        cot.generate_until_multi_round(reqs)
    cot.task_dict = {"other": datasets.DatasetDict({"test": datasets.Dataset.from_list([{"q": "x"}])})}
    bad = Instance("generate_until", ("ctx", {}, None, 0, "other", "test"), 0,
                   metadata={"task": "other", "doc_id": 0, "repeats": 1})
    with pytest.raises(ValueError, match="r3v_\\* tasks only"):
        cot.generate_until([bad])


# ----------------------------------------------------------- real commands
LIMIT = 4
N = 2


def _env():
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    return env


def _command(how: str, model: str, model_dir: Path, out: Path, extra=()) -> list[str]:
    flags = ["--model", model,
             "--model_args", f"pretrained={model_dir},n={N},max_new_tokens=16,device=cpu",
             "--tasks", "r3v_shapes", "--output_path", str(out), "--batch_size", "2",
             "--limit", str(LIMIT), *extra]
    include = ["--include_path", str(tasks_dir())]
    if how == "lmms-eval":
        return [str(VENV_BIN / "lmms-eval"), *flags, *include]
    if how == "python -m lmms_eval":
        return [sys.executable, "-m", "lmms_eval", *flags, *include]
    if how == "r3v eval":
        return [str(VENV_BIN / "r3v"), "eval", *flags]  # the tasks folder is added by r3v
    raise AssertionError(how)


RUNS = {
    "cot": ("lmms-eval", "r3v_cot", ()),
    "majority": ("lmms-eval", "r3v_majority", ()),
    "select": ("lmms-eval", "r3v_select", ("--log_samples",)),
    "r3v_eval": ("r3v eval", "r3v_majority", ()),
    "module": ("python -m lmms_eval", "r3v_select", ()),
    "bad_args": ("r3v eval", "r3v_select", ()),
}


@pytest.fixture(scope="module")
def e2e(tiny_qwen, tmp_path_factory):
    """Start every command once, two at a time (they spend most of their time indexing
    lmms-eval's ~2,000 built-in task YAMLs, on one core each)."""
    root = tmp_path_factory.mktemp("lmms_e2e")
    pool = ThreadPoolExecutor(max_workers=2)

    def run(name):
        how, model, extra = RUNS[name]
        out = root / name
        cmd = _command(how, model, tiny_qwen, out, extra)
        if name == "bad_args":
            cmd[cmd.index("--model_args") + 1] = f"pretrained={tiny_qwen},nn=2"
        proc = subprocess.run(cmd, check=False, env=_env(), cwd=root, capture_output=True, text=True,
                              timeout=600)
        return proc, out

    futures = {name: pool.submit(run, name) for name in RUNS}
    yield futures
    pool.shutdown(wait=True)


def _results(name, e2e):
    proc, out = e2e[name].result()
    log = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, log
    files = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
    assert len(files) == 1, f"no results file under {out}:\n{log}"  # lmms-eval exits 0 anyway
    data = json.loads(Path(files[0]).read_text())
    return data, out


def _check_metrics(res, expected):
    for metric in ("accuracy", "majority_at_n", "select_at_n", "pass_at_n"):
        key = f"{metric},none"
        if metric in expected:
            assert 0.0 <= res[key] <= 1.0, (key, res)
        else:
            assert key not in res, (key, res)


@pytest.mark.slow
def test_lmms_eval_r3v_cot(e2e):
    data, _ = _results("cot", e2e)
    res = data["results"]["r3v_shapes"]
    _check_metrics(res, {"accuracy"})
    assert data["n-samples"]["r3v_shapes"]["effective"] == LIMIT
    assert data["configs"]["r3v_shapes"]["generation_kwargs"]["until"] == ["<|im_end|>"]


@pytest.mark.slow
def test_lmms_eval_r3v_majority(e2e):
    data, _ = _results("majority", e2e)
    res = data["results"]["r3v_shapes"]
    _check_metrics(res, {"accuracy", "majority_at_n", "pass_at_n"})
    assert res["accuracy,none"] == res["majority_at_n,none"] <= res["pass_at_n,none"]


@pytest.mark.slow
def test_lmms_eval_r3v_select_logs_candidates(e2e):
    data, out = _results("select", e2e)
    res = data["results"]["r3v_shapes"]
    _check_metrics(res, {"accuracy", "majority_at_n", "select_at_n", "pass_at_n"})
    assert res["accuracy,none"] == res["select_at_n,none"]
    samples = glob.glob(str(out / "**" / "*_samples_r3v_shapes.jsonl"), recursive=True)
    assert len(samples) == 1
    rows = [json.loads(line) for line in Path(samples[0]).read_text().splitlines() if line.strip()]
    assert len(rows) == LIMIT
    for row in rows:
        payload = decode_samples(row["filtered_resps"] if isinstance(row["filtered_resps"], str)
                                 else row["filtered_resps"][0])
        assert payload["r3v_strategy"] == "select" and len(payload["candidates"]) == N
        assert row["pass_at_n"] >= max(row["select_at_n"], row["majority_at_n"])


@pytest.mark.slow
def test_r3v_eval_adds_the_tasks_folder(e2e):
    data, _ = _results("r3v_eval", e2e)
    _check_metrics(data["results"]["r3v_shapes"], {"accuracy", "majority_at_n", "pass_at_n"})


@pytest.mark.slow
def test_python_m_lmms_eval(e2e):
    data, _ = _results("module", e2e)
    _check_metrics(data["results"]["r3v_shapes"],
                   {"accuracy", "majority_at_n", "select_at_n", "pass_at_n"})


@pytest.mark.slow
def test_r3v_eval_exit_status_on_bad_model_args(e2e):
    proc, out = e2e["bad_args"].result()
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-3000:]
    assert "unknown model_args key 'nn'" in proc.stderr
    assert not glob.glob(str(out / "**" / "*_results.json"), recursive=True)
