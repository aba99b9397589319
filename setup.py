# Only the package list lives here: pyproject.toml cannot mix discovered packages with the data
# packages mapped from the top-level grammar/ and stdlib/ folders (every stdlib subfolder ships).
from pathlib import Path

from setuptools import find_packages, setup

stdlib_subpackages = sorted(
    "ftlang._stdlib." + ".".join(p.relative_to("stdlib").parts)
    for p in Path("stdlib").rglob("*") if p.is_dir() and "__pycache__" not in p.parts
)
setup(
    packages=[*find_packages(include=["ftlang", "ftlang.*"]), "ftlang._grammar", "ftlang._stdlib",
              *stdlib_subpackages],
    package_dir={"ftlang._grammar": "grammar", "ftlang._stdlib": "stdlib"},
)
