"""composable-mlops: a TFX pipeline from data to a served model, installable with `pip install -e .`."""
from pathlib import Path

from setuptools import find_packages, setup


def _direct_requirements() -> list:
    """The direct dependencies, read from infra/requirements.in (the one place they are pinned)."""
    lines = (Path(__file__).parent / "infra" / "requirements.in").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


setup(
    name="composable-mlops",
    version="0.1.0",
    description="TFX pipelines, composable model families, MLflow tracking and TF Serving deployment",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["cli*", "core*", "pipelines*", "release*", "ops*", "components*", "serving*"]),
    install_requires=_direct_requirements(),
    entry_points={"console_scripts": ["mlops=cli.main:entry"]},
)
