# Only the package list lives here: pyproject.toml cannot mix discovered packages with the data
# packages mapped from the top-level grammar/ and stdlib/ folders (every stdlib subfolder ships).
from pathlib import Path

from setuptools import find_namespace_packages, setup

stdlib_subpackages = sorted(
    "ftlang._stdlib." + ".".join(p.relative_to("stdlib").parts)
    for p in Path("stdlib").rglob("*") if p.is_dir() and "__pycache__" not in p.parts
)
setup(
    # namespace discovery: data-only folders such as ftlang/report/templates are packages too
    packages=[*find_namespace_packages(include=["ftlang", "ftlang.*"], exclude=["*.__pycache__"]),
              "ftlang._grammar", "ftlang._stdlib",
              *stdlib_subpackages],
    package_dir={"ftlang._grammar": "grammar", "ftlang._stdlib": "stdlib"},
)
