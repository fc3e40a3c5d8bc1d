"""Where a model spec points (issue 33): ``--model_args pretrained=`` of the lmms-eval wrappers
is checked and resolved as recipes' ``model.pretrained`` is (a missing folder is one clear line,
``shipped:<name>`` is the shipped folder), ``r3v eval`` stops early with exit status 1, and the
``r3v`` help texts speak to users."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from r3v_eval.lmms.args import parse_model_args
from r3v_eval.lmms.run import run_lmms_eval
from r3v_eval.model_source import ModelSourceError, shipped_assets
from r3v_train.cli import build_parser
from r3v_train.config import ConfigError
from r3v_train.demo.shipped import ASSETS, DEMO_BASE
from r3v_train.model_source import check_pretrained

ROOT = Path(__file__).resolve().parents[1]


def _r3v(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "r3v_train.cli", *argv], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("model", ["r3v_select", "r3v_cot", "r3v_majority"])
def test_missing_model_folder_is_one_clear_line(model):
    with pytest.raises(ValueError) as info:
        parse_model_args(model, {"pretrained": "/no/such/dir"})
    message = str(info.value)
    assert isinstance(info.value, ModelSourceError) and "\n" not in message
    assert message.startswith(f"{model}: model_args pretrained")
    assert "no such model folder: /no/such/dir" in message and "give a local model folder" in message


def test_r3v_eval_stops_on_a_missing_model_folder(capsys):
    code = run_lmms_eval(["--model", "r3v_select", "--model_args", "pretrained=/no/such/dir,n=2",
                          "--tasks", "r3v_shapes", "--limit", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        "r3v eval: r3v_select: model_args pretrained: no such model folder: /no/such/dir (nor a "
        "hub id owner/name); give a local model folder (as save_pretrained writes it), a hub id "
        "or shipped:<name>"]


def test_r3v_eval_command_exit_status():
    proc = _r3v("eval", "--model", "r3v_cot", "--model_args=pretrained=/no/such/dir",
                "--tasks", "r3v_shapes")
    assert proc.returncode == 1, proc.stderr
    assert "no such model folder: /no/such/dir" in proc.stderr
    assert "Repo id must be in the form" not in proc.stderr and "Traceback" not in proc.stderr


def test_shipped_name_resolves_as_in_recipes():
    assert shipped_assets() == ASSETS
    args = parse_model_args("r3v_select", {"pretrained": "shipped:demo_base", "n": 2})
    assert Path(args.pretrained) == DEMO_BASE
    with pytest.raises(ValueError, match=r"'shipped:nope' is not a shipped model \(known: "
                                         r"shipped:demo_base\)") as info:
        parse_model_args("r3v_cot", {"pretrained": "shipped:nope"})
    assert str(info.value).startswith("r3v_cot: model_args pretrained")


def test_r3v_train_keeps_its_config_errors():
    with pytest.raises(ConfigError, match="model.pretrained: no such model folder: /no/such/dir"):
        check_pretrained("/no/such/dir")


def _subparser(name: str):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[name]


def test_top_level_help_is_for_users():
    text = _r3v("--help").stdout
    assert "r3v trains vision-language models" in text and "r3v demo" in text
    for developer_word in ("thin entry points", "``", "lazy"):
        assert developer_word not in text


@pytest.mark.parametrize("command", ["demo", "tiny-model"])
def test_every_flag_has_a_help_text(command):
    parser = _subparser(command)
    missing = [a.option_strings for a in parser._actions if not a.help]
    assert not missing
    text = parser.format_help()
    for action in parser._actions:
        if action.help != "==SUPPRESS==":
            assert action.help.split()[0] in text


def test_eval_help_lists_every_task(capsys):
    assert run_lmms_eval(["--help"]) == 0
    text = capsys.readouterr().out
    for task in sorted(p.stem for p in (ROOT / "tasks").glob("r3v_*.yaml")):
        assert task in text, task
