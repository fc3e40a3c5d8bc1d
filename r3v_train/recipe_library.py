"""The recipes r3v ships, found by name, in a checkout and in an installed wheel alike.

The recipes live in ``recipes/`` at the root of the project; the wheel installs that folder as
the package ``r3v_recipes`` (pyproject.toml's ``package-dir``). A name is a recipe's path inside
it without ``.yaml`` (``demo/r3v``, ``qwen2_vl_7b/chartqa``). :func:`resolve_recipe` is what
``r3v train --recipe`` / ``r3v pretrain --recipe`` / ``r3v demo`` go through: a path that exists
wins, else a shipped name, else an error naming the close names. Recipes include each other by
relative path (``base: ../backbones/qwen2_vl_7b.yaml``), so a shipped recipe, a copied tree
(:func:`copy_recipes`, ``r3v recipes --copy DIR``) and a checkout all read the same."""

from __future__ import annotations

import difflib
import importlib.resources
import shutil
from pathlib import Path

from r3v_train.recipe_files import ConfigError

#: the package the wheel installs ``recipes/`` as
PACKAGE = "r3v_recipes"
#: folders of launcher configs (``accelerate launch --config_file``), not ``r3v train`` recipes
LAUNCH_FOLDERS = ("accelerate", "deepspeed")
#: what is not a shipped file (the folder's own ``__init__.py`` is packaging, not a recipe)
_SKIP = ("__init__.py", "__pycache__")


def recipes_root() -> Path:
    """The folder of the shipped recipes: the checkout's ``recipes/`` when this r3v runs from a
    checkout (the recipes of this source tree, even if another r3v is installed), else the
    installed package :data:`PACKAGE`, read through importlib.resources."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "recipes" / "__init__.py").is_file():
        return checkout / "recipes"
    return installed_root()


def installed_root() -> Path:
    """The recipes of the installed wheel: the package :data:`PACKAGE`'s folder."""
    try:
        root = importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:
        raise ConfigError(f"the shipped recipes are missing (no package {PACKAGE}): reinstall r3v "
                          "(its wheel, docs/install.md)") from None
    if not isinstance(root, Path) or not root.is_dir():
        raise ConfigError(f"the shipped recipes ({PACKAGE}) are not a folder on disk ({root}): "
                          "install r3v with pip, not as a zip")
    return root


def recipe_names(root: Path | None = None) -> list[str]:
    """Every shipped recipe's name (``demo/r3v``), sorted; launcher configs left out."""
    root = root or recipes_root()
    names = (p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))
    return sorted(n for n in names if n.split("/", 1)[0] not in LAUNCH_FOLDERS)


def shipped_files(root: Path | None = None) -> list[Path]:
    """Every shipped file (recipes and launcher configs), relative to the root, sorted."""
    root = root or recipes_root()
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.is_file() and not any(part in _SKIP or part.endswith(".pyc")
                                             for part in p.relative_to(root).parts))


def as_name(spec: str | Path) -> str:
    """``spec`` as a recipe name: ``recipes/demo/r3v.yaml`` (a checkout's path, as the docs
    write it) and ``demo/r3v.yaml`` both read ``demo/r3v``."""
    name = Path(spec).as_posix()
    name = name[len("recipes/"):] if name.startswith("recipes/") else name
    return name[:-len(".yaml")] if name.endswith(".yaml") else name


def resolve_recipe(spec: str | Path) -> Path:
    """The recipe file ``spec`` means: a file that exists as given, else the shipped recipe of
    that name (a folder of that name, such as a run folder ``demo/r3v``, is not a recipe);
    anything else is a :class:`ConfigError` naming the close names."""
    path = Path(spec)
    if path.is_file():
        return path
    root = recipes_root()
    name = as_name(spec)
    names = recipe_names(root)
    if name in names:
        return root / f"{name}.yaml"
    near = close_names(name, names)
    hint = (f"close names: {', '.join(near)}" if near
            else "no shipped recipe has a close name")
    raise ConfigError(f"recipe not found: {spec} is neither a file nor a shipped recipe; {hint} "
                      "(`r3v recipes` lists them)")


def close_names(name: str, names: list[str], n: int = 6) -> list[str]:
    """Shipped names close to ``name``: spelled alike, in the folder it names, or the same
    file in another folder (``r3v`` -> ``demo/r3v``, ``demo_tally/r3v``)."""
    leaf = name.rsplit("/", 1)[-1]
    found = difflib.get_close_matches(name, names, n=n, cutoff=0.6)
    found += [c for c in names if c.startswith(name.rstrip("/") + "/")]
    alike = {c: difflib.SequenceMatcher(None, leaf, c.rsplit("/", 1)[-1]).ratio() for c in names}
    found += sorted((c for c in names if alike[c] >= 0.8), key=lambda c: -alike[c])
    return list(dict.fromkeys(found))[:n]


def describe(path: Path) -> str:
    """A recipe's first comment line (what it is), '' when it starts with none."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            return ""
    return ""


def listing(width: int = 100) -> str:
    """``r3v recipes``: one line per shipped recipe (its name and what its first comment says,
    cut to ``width`` columns), then where they are and how to use them."""
    root = recipes_root()
    names = recipe_names(root)
    pad = max(len(n) for n in names)
    lines = []
    for name in names:
        line = f"{name:<{pad}}  {describe(root / f'{name}.yaml')}".rstrip()
        lines.append(line if len(line) <= width else line[:width - 3] + "...")
    launch = ", ".join(f"{folder}/" for folder in LAUNCH_FOLDERS)
    lines += ["", f"{len(names)} recipes in {root} (launcher configs in {launch}).",
              "Run one by name: r3v train --recipe demo/r3v. "
              "Copy them out to edit: r3v recipes --copy DIR"]
    return "\n".join(lines)


def copy_recipes(dest: str | Path) -> list[Path]:
    """Write every shipped file under ``dest`` (same layout, so ``base:`` includes still
    resolve) and return the paths written. A file already there with other content is never
    overwritten: the copy stops before writing anything, naming it."""
    root = recipes_root()
    dest = Path(dest)
    files = shipped_files(root)
    differ = [rel for rel in files if (dest / rel).exists()
              and (not (dest / rel).is_file()
                   or (dest / rel).read_bytes() != (root / rel).read_bytes())]
    if differ:
        raise ConfigError(f"--copy {dest}: {len(differ)} file(s) there differ from the shipped "
                          f"ones (first: {dest / differ[0]}); nothing was written: copy to "
                          "another folder, or move them away first")
    written = []
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest / rel)
        written.append(dest / rel)
    return written
