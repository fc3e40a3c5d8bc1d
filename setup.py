"""The one thing pyproject.toml cannot say: which packages the wheel holds. The code is found
as setuptools finds it, and ``recipes/`` (no code: the shipped recipes) is installed as the
package ``r3v_recipes``, read back through importlib.resources (r3v_train/recipe_library.py).
Everything else (metadata, dependencies, package data) is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

CODE = find_namespace_packages(include=["r3v_eval*", "r3v_train*", "tasks*"])
RECIPES = ["r3v_recipes"] + [f"r3v_recipes.{name}" for name in
                             find_namespace_packages("recipes", exclude=["__pycache__*"])]

setup(packages=CODE + RECIPES, package_dir={"r3v_recipes": "recipes"})
