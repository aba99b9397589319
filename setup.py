# Only the package list lives here: pyproject.toml cannot mix discovered packages with the two
# data packages mapped from the top-level grammar/ and stdlib/ folders.
from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ftlang", "ftlang.*"]), "ftlang._grammar", "ftlang._stdlib",
              "ftlang._stdlib.models", "ftlang._stdlib.templates", "ftlang._stdlib.hardware"],
    package_dir={"ftlang._grammar": "grammar", "ftlang._stdlib": "stdlib"},
)
