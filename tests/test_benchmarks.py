"""Smoke runs of the scripts in benchmarks/, each at a tiny size, so that a change that breaks one fails here."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import reproduce_cfgan

REAL_DATA = Path(os.environ.get("IRGAN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.mark.parametrize("real", [False, True], ids=["synthetic", "released-split"])
def test_reproduce_cfgan_tiny(real, tmp_path, capsys, monkeypatch):
    if not real:
        monkeypatch.setenv("IRGAN_DATA", str(tmp_path / "none"))
    elif not (REAL_DATA / "cfgan-ml100k" / "ML100K.test").is_file():
        pytest.skip("real data not found: set IRGAN_DATA to a folder holding cfgan-ml100k/ (see data/README.md)")
    else:
        monkeypatch.setenv("IRGAN_DATA", str(REAL_DATA))
    rows = reproduce_cfgan.main(["--tiny", "--json", str(tmp_path / "seeds.json")])
    out = capsys.readouterr().out
    assert list(rows) == [0] and rows[0]["epochs"] == 2
    assert all(0 <= rows[0][m] <= 1 for m in reproduce_cfgan.METRICS)
    assert json.loads((tmp_path / "seeds.json").read_text())["0"]["P@5"] == rows[0]["P@5"]
    assert ("synthetic data" in out) != real and "| seed 0 | 2 |" in out
