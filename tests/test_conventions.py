"""Package conventions: ``irgan.__version__``, ``irgan --version``, and the readers at the top level."""
from __future__ import annotations

import configparser
import importlib.metadata

import irgan
from conftest import REPO
from irgan.cli import main


def setup_cfg_version() -> str:
    """The version setup.cfg declares, read independently of irgan."""
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(REPO / "setup.cfg")
    return setup["metadata"]["version"]


def test_version_is_the_installed_distributions():
    assert irgan.__version__ == importlib.metadata.version("irgan") == setup_cfg_version()


def test_version_falls_back_to_setup_cfg_in_a_source_checkout(monkeypatch):
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert irgan._version() == setup_cfg_version()


def test_irgan_version_prints_it(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"irgan {irgan.__version__}\n"
    assert main(["-V"]) == 0 and irgan.__version__ in capsys.readouterr().out


def test_read_ratings_is_importable_from_irgan(tmp_path):
    from irgan import read_ratings
    from irgan.data.readers import read_ratings as home
    assert read_ratings is home and "read_ratings" in irgan.__all__
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating\n7,007,5\n8,9,1\n")
    ratings = read_ratings(path)
    assert ratings["item"].tolist() == ["007", "9"] and ratings["rating"].tolist() == [5.0, 1.0]
