"""`r3v export`, `r3v export-data` and the loop's figures in the tracker, on one tiny run.

The run is the tiny recipe's R3V run on a random-weight tiny Qwen2-VL with real TRL training
(one step a stage) and ``train.report_to=tensorboard``. Its *evaluation* is the real model
(greedy, sampled, select), so the export must give the same replies; its *pool* is sampled by
the scripted :class:`helpers.GoldAwareEngine`, so that every kind of self-generated example
(SFT, refine, select) appears (a random-weight model is never right).

Checked: the exported folder round-trips through plain transformers, lmms-eval's own
``qwen2_vl`` model and ``r3v_select`` with the run's own replies; the exported data set loads
with ``datasets`` in both forms and trains one TRL ``SFTTrainer`` step as it is; the TensorBoard
event files hold each iteration's figures at its step.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import GoldAwareEngine, no_eos
from r3v_eval import prompts
from r3v_eval.benchmarks import get_benchmark
from r3v_eval.lmms import tasks_dir
from r3v_eval.lmms.docs import decode_samples
from r3v_train import cli, loop
from r3v_train.config import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "tiny" / "shapes.yaml"
VENV_BIN = Path(sys.executable).parent
N_TEST = 4
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tiny_qwen, tmp_path_factory):
    """The tiny checkpoint, with a generation config that writes to max_new_tokens (no end of
    sequence, no blank token): replies to compare, not empty strings."""
    import shutil
    from types import SimpleNamespace

    from transformers import AutoProcessor, GenerationConfig

    d = tmp_path_factory.mktemp("base") / "talkative"
    shutil.copytree(tiny_qwen, d)
    gen = GenerationConfig.from_pretrained(d)
    no_eos(SimpleNamespace(model=SimpleNamespace(generation_config=gen),
                           processor=AutoProcessor.from_pretrained(d)))
    gen.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def run(base, tmp_path_factory):
    """The finished tiny run (sampling scripted, evaluation real); its folder."""
    out = tmp_path_factory.mktemp("export") / "run"
    cfg = load_recipe(RECIPE, [f"model.pretrained={base}", f"run.out_dir={out}",
                               "train.max_steps=1", "data.train_limit=12",
                               f"data.test_limit={N_TEST}", "train.report_to=tensorboard"])
    bench = get_benchmark("shapes")
    scripted = GoldAwareEngine(bench.load("train", limit=12))
    real_load = loop.load_engine

    def load_engine(*args, batch_size, **kwargs):  # the sampling engine is the scripted one
        if batch_size == cfg.sampling.batch_size:
            return scripted
        return real_load(*args, batch_size=batch_size, **kwargs)

    assert cfg.sampling.batch_size != cfg.eval.batch_size
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "load_engine", load_engine)
        loop.run(cfg)
    return out


def _outcomes(run_dir: Path, t: int, metric: str) -> list[dict]:
    rows = [json.loads(line) for line in
            (run_dir / f"iter_{t}" / "eval_outcomes.jsonl").read_text().splitlines()]
    return [r for r in rows if r["metric"] == metric]


def exported_to(command: str, run, tmp_path_factory):
    """``r3v <command> RUN --out <fresh folder>`` (it must succeed); the folder."""
    out = tmp_path_factory.mktemp(command) / "out"
    assert cli.main([command, str(run), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    return exported_to("export", run, tmp_path_factory)


# ------------------------------------------------------------------ the model
def test_export_is_a_standalone_safetensors_model_with_a_card(run, exported):
    from huggingface_hub import ModelCard

    names = {p.name for p in exported.iterdir()}
    assert "model.safetensors" in names and "config.json" in names, names
    assert "generation_config.json" in names and "README.md" in names, names
    assert any("chat_template" in n for n in names), names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth"))], names
    assert not (exported / "adapter_config.json").exists()
    card = ModelCard.load(exported / "README.md")
    assert card.data.library_name == "transformers" and "r3v" in card.data.tags
    assert card.data.base_model is None  # a local base is named in the text, not as a hub id
    assert card.data.eval_results and {r.metric_name for r in card.data.eval_results} >= {"greedy"}
    text = card.text
    for part in ("## Base model", "`r3v`: R³V", "## Metrics per iteration", "## Compute",
                 "optimizer steps", "## Recipe"):
        assert part in text, part
    recipe = yaml.safe_load(text.split("```yaml\n")[1].split("```")[0])
    assert recipe == yaml.safe_load((run / "config.yaml").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    for h in metrics["history"]:  # one table row per iteration, with its greedy accuracy
        assert f"| {h['iteration']} | {100 * h['metrics']['greedy']:.1f} |" in text


def test_plain_transformers_gives_the_runs_greedy_replies(run, exported):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(exported)
    processor = AutoProcessor.from_pretrained(exported)
    processor.tokenizer.padding_side = "left"
    bench = get_benchmark("shapes")
    problems = bench.load("test", limit=N_TEST)
    texts = [processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                          "text": prompts.cot_prompt(bench, p, "qwen")}]}],
        add_generation_prompt=True, tokenize=False) for p in problems]
    inputs = processor(text=texts, images=[[p.load_image()] for p in problems], padding=True,
                       return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=48)
    replies = [r.strip() for r in processor.batch_decode(out[:, inputs["input_ids"].shape[1]:],
                                                          skip_special_tokens=True)]
    expected = {o["problem_id"]: o["reply"] for o in _outcomes(run, 2, "greedy")}
    assert replies == [expected[p.id] for p in problems]
    assert any(replies), "the tiny model wrote nothing: the comparison would be empty"


def _lmms(model: str, model_args: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1")
    cmd = [str(VENV_BIN / "lmms-eval"), "--model", model, "--model_args", model_args,
           "--tasks", "r3v_shapes", "--include_path", str(tasks_dir()), "--limit", str(N_TEST),
           "--output_path", str(out), "--log_samples", *extra]
    return subprocess.run(cmd, env=env, cwd=out.parent, capture_output=True, text=True,
                          timeout=600)


def _lmms_replies(out: Path, proc) -> list[str]:
    samples = glob.glob(str(out / "**" / "*_samples_r3v_shapes.jsonl"), recursive=True)
    assert samples, (proc.stdout + proc.stderr)[-4000:]
    rows = sorted((json.loads(line) for line in Path(samples[0]).read_text().splitlines()
                   if line.strip()), key=lambda r: r["doc_id"])
    return [r["filtered_resps"] if isinstance(r["filtered_resps"], str) else r["filtered_resps"][0]
            for r in rows]


def test_lmms_eval_models_give_the_runs_replies(run, exported, tmp_path):
    """lmms-eval's own qwen2_vl: the run's greedy replies; r3v_select: the run's select@3
    candidates and selection (the same seeded samples, now from the merged weights)."""
    greedy = {o["problem_id"]: o["reply"] for o in _outcomes(run, 2, "greedy")}
    select = {o["problem_id"]: o for o in _outcomes(run, 2, "select@3")}
    ids = [p.id for p in get_benchmark("shapes").load("test", limit=N_TEST)]

    proc = _lmms("qwen2_vl", f"pretrained={exported},device=cpu,device_map=cpu",
                 tmp_path / "qwen2_vl", "--gen_kwargs", "max_new_tokens=48")
    assert [r.strip() for r in _lmms_replies(tmp_path / "qwen2_vl", proc)] == [greedy[i] for i in ids]

    proc = _lmms("r3v_select", f"pretrained={exported},n=3,max_new_tokens=48,device=cpu",
                 tmp_path / "select")
    for i, reply in zip(ids, _lmms_replies(tmp_path / "select", proc)):
        payload = decode_samples(reply)
        assert payload["candidates"] == select[i]["candidates"]
        assert payload.get("final") == select[i]["reply"]


def test_push_to_hub_uploads_the_folder(run, tmp_path, monkeypatch):
    """No network here: the upload is huggingface_hub's, replaced by a recorder."""
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda *a, **k: calls.append(("create", a, k)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **k: calls.append(("upload", k)))
    out = tmp_path / "model"
    assert cli.main(["export", str(run), "--iteration", "1", "--out", str(out),
                     "--push-to-hub", "someone/r3v-tiny"]) == 0
    assert calls[0][1] == ("someone/r3v-tiny",) and calls[0][2]["repo_type"] == "model"
    assert calls[1][1]["folder_path"] == str(out) and calls[1][1]["repo_id"] == "someone/r3v-tiny"
    assert "iteration 1" in (out / "README.md").read_text()


# ------------------------------------------------------------------ the data
@pytest.fixture(scope="module")
def data_dir(run, tmp_path_factory):
    return exported_to("export-data", run, tmp_path_factory)


def test_exported_data_loads_in_both_forms_with_counts_in_the_card(run, data_dir):
    from datasets import load_dataset
    from huggingface_hub import DatasetCard
    from PIL import Image

    for t in (1, 2):
        examples = [json.loads(line) for line in
                    (run / f"iter_{t}" / "examples.jsonl").read_text().splitlines()]
        own = [e for e in examples if e["kind"] in ("sft", "refine", "select")]
        trl = load_dataset(str(data_dir), "trl", split=f"iter_{t}")
        share = load_dataset(str(data_dir), "sharegpt", split=f"iter_{t}")
        assert len(trl) == len(share) == len(own) > 0
        assert set(trl["kind"]) == {"sft", "refine", "select"}
        row, srow = trl[0], share[0]
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert isinstance(row["images"][0], Image.Image) and len(row["images"]) == 1
        assert srow["messages"][0]["content"] == "<image>" + row["messages"][0]["content"]
        assert srow["messages"][1] == row["messages"][1]
        assert {(e["prompt"], e["completion"]) for e in own} == {
            (r["messages"][0]["content"], r["messages"][1]["content"]) for r in trl}
    info = json.loads((data_dir / "sharegpt" / "dataset_info.json").read_text())
    assert info["r3v_iter_1"]["formatting"] == "sharegpt"
    assert info["r3v_iter_1"]["columns"] == {"messages": "messages", "images": "images"}
    card = DatasetCard.load(data_dir / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["trl", "sharegpt"]
    counts = json.loads((run / "metrics.json").read_text())["history"][2]["examples"]
    assert f"| 2 | {counts['sft']} | {counts['refine']} | {counts['select']} |" in card.text


def test_trl_sft_trainer_trains_one_step_on_the_exported_data(data_dir, base, tmp_path):
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    dataset = load_dataset(str(data_dir), "trl", split="iter_1")
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2,
                     max_length=None, use_cpu=True, bf16=False, report_to=[], save_strategy="no",
                     disable_tqdm=True)
    trainer = SFTTrainer(model=str(base), args=args, train_dataset=dataset)
    result = trainer.train()
    assert trainer.state.global_step == 1 and result.training_loss > 0


# ------------------------------------------------------------------ the tracker
def test_tensorboard_holds_each_iterations_figures_at_its_step(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "runs" / "r3v"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    metrics = json.loads((run / "metrics.json").read_text())

    def series(tag):
        return {e.step: e.value for e in acc.Scalars(tag)}

    assert series("eval/greedy") == pytest.approx(
        {h["iteration"]: h["metrics"]["greedy"] for h in metrics["history"]})
    assert set(series("eval/select@3")) == {0, 1, 2}
    assert series("pool/positives") == {1: metrics["history"][1]["pool"]["positives"],
                                        2: metrics["history"][2]["pool"]["positives"]}
    assert {"examples/refine", "examples/select", "compute/optimizer_steps"} <= tags
    assert series("compute/optimizer_steps")[2] == metrics["compute"]["optimizer_steps"]
    # TRL's training curves of every stage, under the same run folder
    trl_runs = glob.glob(str(run / "iter_*" / "model" / "runs" / "*"))
    assert len(trl_runs) == 3


def test_a_resumed_run_logs_an_iteration_once_and_an_unknown_tracker_is_named(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from r3v_train.tracking import LoopTracker

    entry = {"iteration": 1, "metrics": {"greedy": 0.25}, "pool": {"positives": 3},
             "skipped": {"filtered_positive": 2}}
    for _ in range(2):  # a run, then the same run resumed
        tracker = LoopTracker("tensorboard", tmp_path, "r3v", {"run": {"seed": 0}})
        tracker.log_iteration(entry, {"optimizer_steps": 4})
        tracker.finish()
    acc = EventAccumulator(str(tmp_path / "runs" / "r3v"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("eval/greedy")] == [(1, 0.25)]
    assert [e.value for e in acc.Scalars("skipped/filtered_positive")] == [2]
    said = []
    assert not LoopTracker("azure_ml", tmp_path / "x", "r3v", {}, say=said.append).active
    assert "azure_ml" in said[0] and "tensorboard" in said[0]
