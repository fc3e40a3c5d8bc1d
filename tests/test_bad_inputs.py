"""Every foreseeable mistake a user can make gets one clear line: the real `r3v` command, in a
subprocess, exits 2 with a message that names the key, file or value, and no traceback (issue
33). One row per mistake; a new edge is a new row."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_folder

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "tiny" / "shapes.yaml"
R3V = [sys.executable, "-m", "r3v_train.cli"]


def r3v(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([*R3V, *args], capture_output=True, text=True, timeout=300, env=env,
                          input=stdin)


def train(out: Path, *sets: str, recipe: Path = RECIPE) -> list[str]:
    args = ["train", "--recipe", str(recipe), "--set", f"run.out_dir={out}"]
    for s in sets:
        args += ["--set", s]
    return args


@pytest.fixture
def ws(tmp_path):
    """A work space: a plain file, a binary file, an empty file, a one-file data set, a recipe
    with a key given twice, and a read-only folder."""
    (tmp_path / "a_file").write_text("not a folder\n")
    (tmp_path / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "one.jsonl").write_text('{"id": "1", "question": "q", "answer": "1"}\n')
    (tmp_path / "twice.yaml").write_text(
        f"base: {RECIPE}\ntrain:\n  lora_r: 8\n  learning_rate: 1.0e-3\n  lora_r: 16\n")
    run = run_folder(tmp_path, "a_run", "r3v", "shapes", {"greedy": 0.5})  # trained: iteration 1
    (run / "iter_1" / "model").mkdir()
    (run / "iter_1" / "model" / "DONE").write_text('{"kind": "sft", "method": "lora"}')
    (run / "iter_1" / "model" / "train_config.json").write_text('{"base_model_path": "/no/base"}')
    run_folder(tmp_path, "untrained_run", "r3v", "shapes", {"greedy": 0.5})
    ro = tmp_path / "read_only"
    ro.mkdir()
    ro.chmod(0o555)
    yield tmp_path
    ro.chmod(0o755)


# (case id, the command's arguments from the work space, what the one line must name)
CASES = [
    ("out_dir is a file", lambda w: train(w / "a_file"), "a_file"),
    ("out_dir under a file", lambda w: train(w / "a_file" / "run"), "run.out_dir"),
    ("model folder missing", lambda w: train(w / "r", "model.pretrained=/no/such/model"),
     "/no/such/model"),
    ("hub model not cached offline",
     lambda w: train(w / "r", "model.pretrained=nobody-r3v/not-a-model"), "nobody-r3v/not-a-model"),
    ("tiny with a bad arch", lambda w: train(w / "r", "model.pretrained=tiny:qwen9:tiny"),
     "tiny:qwen9:tiny"),
    ("unparseable --set value", lambda w: train(w / "r", "train.lora_r=[8"), "train.lora_r"),
    ("negative max_pixels", lambda w: train(w / "r", "model.max_pixels=-5"), "model.max_pixels"),
    ("min_pixels above max_pixels",
     lambda w: train(w / "r", "model.max_pixels=100", "model.min_pixels=200"), "model.min_pixels"),
    ("hub benchmark offline, no data.source",
     lambda w: train(w / "r", "data.benchmark=chartqa", "data.teacher_rationales=null"),
     "data.source"),
    ("one .jsonl as data.source", lambda w: train(w / "r", f"data.source={w / 'one.jsonl'}"),
     "data.source"),
    ("data.source missing", lambda w: train(w / "r", f"data.source={w / 'nowhere'}"), "nowhere"),
    ("learning rate inf", lambda w: train(w / "r", "train.learning_rate=inf"),
     "train.learning_rate"),
    ("learning rate .nan", lambda w: train(w / "r", "train.learning_rate=.nan"),
     "train.learning_rate"),
    ("duplicate recipe key", lambda w: train(w / "r", recipe=w / "twice.yaml"),
     "duplicate key 'lora_r'"),
    ("benchmark option of a wrong type", lambda w: train(w / "r", "data.options.seed=x"), "seed"),
    ("unknown recipe key", lambda w: train(w / "r", "train.lora_rank=8"), "train.lora_rank"),
    ("recipe missing", lambda w: ["train", "--recipe", str(w / "none.yaml")], "none.yaml"),
    ("score a binary file", lambda w: ["score", "--benchmark", "shapes", str(w / "binary.jsonl")],
     "binary.jsonl"),
    ("score an empty file", lambda w: ["score", "--benchmark", "shapes", str(w / "empty.jsonl")],
     "empty.jsonl"),
    ("score a missing file", lambda w: ["score", "--benchmark", "shapes", str(w / "no.jsonl")],
     "no.jsonl"),
    ("leaderboard --out under a file",
     lambda w: ["leaderboard", str(w), "--out", str(w / "a_file" / "board.md")], "a_file"),
    ("data shapes --n-train -1",
     lambda w: ["data", "shapes", "--out", str(w / "d"), "--n-train", "-1"], "-1"),
    ("data shapes --out a file", lambda w: ["data", "shapes", "--out", str(w / "a_file"),
                                            "--n-train", "2", "--n-test", "2"], "a_file"),
    ("export a folder that is not a run", lambda w: ["export", str(w), "--out", str(w / "e")],
     "not an r3v run folder"),
    ("export a run with no trained model",
     lambda w: ["export", str(w / "untrained_run"), "--out", str(w / "e")], "no trained model"),
    ("export an iteration the run lacks", lambda w: ["export", str(w / "a_run"), "--iteration",
                                                     "7", "--out", str(w / "e")], "--iteration 7"),
    ("export --out a folder with files",
     lambda w: ["export", str(w / "a_run"), "--out", str(w)], "not an empty folder"),
    ("export-data a folder that is not a run",
     lambda w: ["export-data", str(w / "read_only"), "--out", str(w / "e")], "not an r3v run folder"),
    ("export-data a run with no saved data",
     lambda w: ["export-data", str(w / "a_run"), "--out", str(w / "e")],
     "no self-generated training data"),
    ("tiny-model --out a file",
     lambda w: ["tiny-model", "--arch", "qwen2_vl", "--out", str(w / "a_file")], "a_file"),
]
if os.geteuid() != 0:  # root writes anywhere
    CASES.append(("out_dir not writable", lambda w: train(w / "read_only" / "run"), "read_only"))


@pytest.mark.parametrize("args,names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_clear_line(ws, args, names):
    res = r3v(*args(ws))
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.returncode == 2, res.stderr[-3000:]
    assert names in res.stderr, res.stderr[-3000:]


def test_a_second_train_on_a_running_folder_exits_at_once(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / "run.lock", "a+") as fh:  # as a running `r3v train` holds it
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = r3v(*train(out))
    assert res.returncode == 2 and "in use" in res.stderr and "Traceback" not in res.stderr


def test_a_failed_first_start_does_not_lock_the_folder(tmp_path):
    """A typo fails after config.yaml is written; the corrected command is accepted (here it
    fails later, on its own next mistake, not on "a different config")."""
    out = tmp_path / "run"
    first = r3v(*train(out, f"data.source={tmp_path / 'typo'}"))
    assert first.returncode == 2 and (out / "config.yaml").is_file()
    (out / "iter_0" / "model" / "checkpoint-1").mkdir(parents=True)  # a partial stage: stale
    second = r3v(*train(out, "model.pretrained=/no/such/model"))
    assert second.returncode == 2 and "/no/such/model" in second.stderr, second.stderr[-2000:]
    log = (out / "progress.log").read_text()
    assert "starting afresh with the new config (differs in: model.pretrained, data.source)" in log
    assert not (out / "iter_0").exists()
    assert "/no/such/model" in (out / "config.yaml").read_text()


def test_a_finished_stage_still_refuses_a_changed_config(tmp_path):
    out = tmp_path / "run"
    assert r3v(*train(out, "model.pretrained=/no/such/model")).returncode == 2
    (out / "iter_0" / "model").mkdir(parents=True)
    (out / "iter_0" / "model" / "DONE").write_text("{}")
    res = r3v(*train(out, "model.pretrained=/no/such/model", "train.learning_rate=0.5"))
    assert res.returncode == 2 and "differs in: train.learning_rate" in res.stderr
    assert "iter_0/model/DONE" in res.stderr
