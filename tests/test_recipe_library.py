"""The shipped recipes: found by name (``r3v train --recipe demo/r3v``), listed and copied out by
``r3v recipes``, read from the installed package ``r3v_recipes`` when there is no checkout, and
carried by the built wheel. (The wheel installed in a fresh environment and run outside the
checkout is scripts/test-wheel.sh, which CI runs.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from r3v_train import cli, recipe_library
from r3v_train.config import ConfigError, load_recipe
from r3v_train.recipe_library import (copy_recipes, installed_root, recipe_names, recipes_root,
                                      resolve_recipe)

ROOT = Path(__file__).resolve().parents[1]


def test_a_checkout_reads_its_own_recipes_folder():
    assert recipes_root() == ROOT / "recipes"
    names = recipe_names()
    assert {"demo/r3v", "demo/quick/r3v", "demo/pretrain", "tiny/shapes",
            "qwen2_vl_7b/chartqa", "backbones/qwen2_vl_7b"} <= set(names)
    assert not [n for n in names if n.startswith(("accelerate/", "deepspeed/"))]  # launch configs


def test_a_name_resolves_to_the_shipped_recipe_and_a_file_that_exists_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = ROOT / "recipes" / "demo" / "r3v.yaml"
    for spec in ("demo/r3v", "demo/r3v.yaml", "recipes/demo/r3v.yaml", Path("demo/r3v")):
        assert resolve_recipe(spec) == shipped, spec
    (tmp_path / "demo" / "r3v").mkdir(parents=True)  # a run folder of that name is no recipe
    assert resolve_recipe("demo/r3v") == shipped
    mine = tmp_path / "recipes" / "demo" / "r3v.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("base: ../../other.yaml\n")
    assert resolve_recipe("recipes/demo/r3v.yaml") == Path("recipes/demo/r3v.yaml")
    assert load_recipe("demo/quick/r3v") == load_recipe(ROOT / "recipes/demo/quick/r3v.yaml")


@pytest.mark.parametrize("spec, close", [
    ("demo/r3vv", "demo/r3v"),
    ("r3v", "demo/r3v"),                 # the same file in its folders
    ("qwen2_vl_7b/chartqaa", "qwen2_vl_7b/chartqa"),
    ("demo", "demo/r3v"),                # a folder: its recipes
])
def test_a_bad_name_is_one_line_naming_close_names_exit_2(spec, close, capsys):
    assert cli.main(["train", "--recipe", spec]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0, err
    assert f"recipe not found: {spec} is neither a file nor a shipped recipe" in err
    assert "close names:" in err and close in err.split("close names:")[1]


def test_a_name_close_to_nothing_says_so():
    with pytest.raises(ConfigError, match="no shipped recipe has a close name.*r3v recipes"):
        resolve_recipe("zzzzzz")


def test_r3v_recipes_lists_names_with_what_they_are(capsys):
    assert cli.main(["recipes"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "R3V: SFT + self-refine" in lines["demo/r3v"]
    assert "demo/quick/warmup" in lines and "accelerate/single_gpu" not in lines
    assert f"{len(recipe_names())} recipes in {ROOT / 'recipes'}" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_r3v_recipes_copy_writes_a_tree_whose_includes_still_resolve(tmp_path, capsys):
    dest = tmp_path / "mine"
    assert cli.main(["recipes", "--copy", str(dest)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (dest / "deepspeed" / "zero2.json").is_file()
    assert not (dest / "__init__.py").exists()
    # base: ../r3v.yaml and settings.yaml, read from the copy
    assert load_recipe(dest / "demo/quick/r3v.yaml") == load_recipe("demo/quick/r3v")
    assert cli.main(["recipes", "--copy", str(dest)]) == 0  # the same files again: fine
    edited = dest / "demo" / "r3v.yaml"
    edited.write_text(edited.read_text() + "# mine\n")
    (dest / "tiny" / "shapes.yaml").unlink()
    capsys.readouterr()
    assert cli.main(["recipes", "--copy", str(dest)]) == 2
    err = capsys.readouterr().err
    assert "differ from the shipped ones" in err and str(edited) in err
    assert edited.read_text().endswith("# mine\n")
    assert not (dest / "tiny" / "shapes.yaml").exists()  # nothing written


def test_an_install_reads_the_r3v_recipes_package(tmp_path, monkeypatch):
    """Without a checkout the recipes are the installed package r3v_recipes (importlib.resources)."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "recipes", site / "r3v_recipes")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "r3v_recipes", raising=False)
    root = installed_root()
    assert root == site / "r3v_recipes"
    assert recipe_names(root) == recipe_names()
    # no such package (a broken install); a name no environment has, since an editable
    # install of the checkout also provides r3v_recipes
    monkeypatch.setattr(recipe_library, "PACKAGE", "r3v_recipes_not_installed")
    with pytest.raises(ConfigError, match="shipped recipes are missing.*reinstall r3v"):
        installed_root()


def _tracked(*paths: str) -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *paths],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def test_the_wheel_holds_the_code_tasks_recipes_and_shipped_base(tmp_path):
    src = tmp_path / "src"
    for rel in _tracked():  # a clean copy: no stale build/ reaches the wheel
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Package would be ignored" not in proc.stderr  # every data folder is a listed package
    (wheel,) = (tmp_path / "dist").glob("r3v-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    want = {f"r3v_recipes/{rel[len('recipes/'):]}" for rel in _tracked("recipes")}
    want |= {rel for rel in _tracked("r3v_eval", "r3v_train", "tasks")}
    missing = sorted(want - inside)
    assert not missing, f"the wheel lacks {len(missing)} tracked files, e.g. {missing[:5]}"
    assert "r3v_recipes/demo/quick/r3v.yaml" in inside
    assert "r3v_train/demo/assets/demo_base/model.safetensors" in inside


def test_ci_runs_the_wheel_test_after_the_suite():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test-wheel.sh" in ci
    assert ci.index("bash scripts/test-wheel.sh") > ci.index(".venv/bin/python -m pytest -q")
    script = (ROOT / "scripts" / "test-wheel.sh").read_text()
    for needed in ('-c "$CONSTRAINTS"', "r3v demo --quick", "r3v doctor",
                   "lmms-eval --model r3v_select", 'cd "$WORK/run"', "unset PYTHONPATH"):
        assert needed in script, needed
