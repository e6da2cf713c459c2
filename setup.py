from pathlib import Path

from setuptools import setup

here = Path(__file__).parent
about = {}
exec((here / "tfcyclegan" / "version.py").read_text(), about)

setup(
    name="tfcyclegan",
    version=about["__version__"],
    description="CycleGAN unpaired image-to-image translation in TensorFlow/Keras 3",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The click front end lives in cli/ but installs as tfcyclegan_cli, so it does
    # not take the generic top-level name `cli` in site-packages.
    packages=["tfcyclegan", "tfcyclegan_cli"],
    package_dir={"tfcyclegan": "tfcyclegan", "tfcyclegan_cli": "cli"},
    install_requires=[
        line for line in (here / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")
    ],
    entry_points={"console_scripts": ["tfcyclegan=tfcyclegan_cli.main:main"]},
)
