"""The recipes r3v ships: YAML files, no code. The wheel installs this folder as the package
``r3v_recipes`` (pyproject.toml's package-dir), so an installed r3v reads them through
importlib.resources; ``r3v recipes`` lists them and ``r3v train --recipe demo/r3v`` takes a name
(:mod:`r3v_train.recipe_library`)."""
