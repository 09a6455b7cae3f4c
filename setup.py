"""Package discovery that pyproject.toml cannot express: every package under edgekit/ and edgekit_demo/ (a new
backend folder needs no edit here), plus the top-level targets/ shipped inside the package as edgekit._targets."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["edgekit", "edgekit.*", "edgekit_demo", "edgekit_demo.*"]),
        "edgekit._targets",
        "edgekit._targets.devices",
    ],
    package_dir={"edgekit._targets": "targets", "edgekit._targets.devices": "targets/devices"},
)
