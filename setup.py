"""Package discovery that pyproject.toml cannot express: every package under edgekit/ and edgekit_demo/ (a new
backend folder needs no edit here), the top-level targets/ shipped inside the package as edgekit._targets, and
constraints.txt (the exact versions tested together) inside edgekit."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildWithTestedVersions(build_py):
    """Ship constraints.txt (the exact versions tested together) inside the package: `edgekit doctor` of an
    installed wheel compares the environment with it, while pyproject.toml names only ranges."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):  # an editable install reads the checkout's own file
            target = Path(self.build_lib) / "edgekit" / "constraints.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile("constraints.txt", target)


setup(
    cmdclass={"build_py": BuildWithTestedVersions},
    packages=[
        *find_packages(include=["edgekit", "edgekit.*", "edgekit_demo", "edgekit_demo.*"]),
        "edgekit._targets",
        "edgekit._targets.devices",
    ],
    package_dir={"edgekit._targets": "targets", "edgekit._targets.devices": "targets/devices"},
)
