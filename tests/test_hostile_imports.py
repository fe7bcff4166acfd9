"""Files are data: a scorer named in run.json, a tuning file or a model file is never imported
unless the user names it now; parts and tuning files are checked like model files; compressed
ratings unpack under a cap; counts are bounded; saving errors and non-scorers get one line."""
from __future__ import annotations

import bz2
import errno
import gzip
import io
import json
import lzma
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers import zip_of
from irgan import compare as compare_cli
from irgan import train as train_cli
from irgan.checkpoint import ModelFileError, atomic_write, load_model
from irgan.config import MAX_COUNT, BPRConfig, IRGANConfig
from irgan.data import DataError, load_dataset, read_ratings
from irgan.estimator import IRGAN

TINY = ["--split", "random", "--epochs", "1", "--d-epochs", "1", "--g-epochs", "1", "--pretrain-epochs", "1",
        "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    """30 users x 20 items, 8 ratings of 5 each: every row a positive."""
    rng = np.random.default_rng(0)
    rows = [f"{u},{i},5" for u in range(30) for i in rng.choice(20, 8, replace=False)]
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def evil_module(tmp_path, monkeypatch) -> Path:
    """A module on sys.path whose import writes a marker file: importing it is the attack."""
    marker = tmp_path / "imported"
    (tmp_path / "evilmod_irgan.py").write_text(textwrap.dedent(f"""
        from pathlib import Path
        Path({str(marker)!r}).write_text("ran")
        from irgan.models import MatrixFactorization as Evil
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("evilmod_irgan", None)
    yield marker
    sys.modules.pop("evilmod_irgan", None)


def small_frame() -> pd.DataFrame:
    """12 users x 15 items, 6 positives each."""
    rng = np.random.default_rng(1)
    pairs = [(u, i) for u in range(12) for i in rng.choice(15, 6, replace=False)]
    return pd.DataFrame(pairs, columns=["user", "item"])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: "), err
    assert "Traceback" not in "\n".join(err)
    return err[-1]


# --- a scorer named in a file is never imported ---------------------------------------------------

def interrupted_run(ratings: Path, out: Path) -> Path:
    """A run folder that --resume continues: run.json and init.pt, cut short before the game."""
    import irgan.adversarial.irgan.game

    def stop(*args, **kwargs):
        raise KeyboardInterrupt
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(irgan.adversarial.irgan.game, "_setup", stop)
        assert train_cli.main(["--dataset", str(ratings), *TINY, "--out", str(out)]) == 130
    assert (out / "run.json").is_file()
    return out


@pytest.mark.parametrize("field", ["g_scorer", "d_scorer"])
def test_resume_never_imports_a_scorer_named_in_run_json(ratings, tmp_path, monkeypatch, capsys, evil_module, field):
    run = interrupted_run(ratings, tmp_path / "run")
    request = json.loads((run / "run.json").read_text())
    request["config"][field] = "evilmod_irgan:Evil"
    (run / "run.json").write_text(json.dumps(request))
    capsys.readouterr()
    assert train_cli.main(["--resume", str(run), "--quiet"]) == 2
    line = error_line(capsys)
    flag = "--" + field.replace("_", "-")
    assert "evilmod_irgan:Evil" in line and f"{flag} evilmod_irgan:Evil" in line
    assert not evil_module.exists(), "the module named in run.json was imported"
    assert "evilmod_irgan" not in sys.modules
    import evilmod_irgan  # noqa: F401  (importable all along: the refusal was the rule, not an ImportError)
    assert evil_module.exists()


def test_resume_imports_a_scorer_the_user_names_again(ratings, tmp_path, monkeypatch, capsys, evil_module):
    run = interrupted_run(ratings, tmp_path / "run")
    request = json.loads((run / "run.json").read_text())
    request["config"]["g_scorer"] = "evilmod_irgan:Evil"
    (run / "run.json").write_text(json.dumps(request))
    (run / "init.pt").unlink()  # pretrained for the MF scorer the run started with
    assert train_cli.main(["--resume", str(run), "--quiet", "--g-scorer", "evilmod_irgan:Evil"]) == 0
    assert evil_module.exists()  # named on this command line: imported, as asked


def test_a_tuning_file_cannot_name_a_scorer(ratings, tmp_path, capsys, evil_module):
    out = tmp_path / "cmp"
    args = ["--dataset", str(ratings), "--split", "random", "--models", "pop", "--seeds", "1", "--trials", "0",
            "--quiet", "--out", str(out)]
    assert compare_cli.main(args) == 0
    tuning = out / "parts" / "pop.tuning.json"
    record = json.loads(tuning.read_text())
    record["params"] = {"g_scorer": "evilmod_irgan:Evil"}
    tuning.write_text(json.dumps(record))
    (out / "results.json").unlink()
    capsys.readouterr()
    assert compare_cli.main(args) == 2
    line = error_line(capsys)
    assert str(tuning) in line and "g_scorer" in line
    assert not evil_module.exists()


def test_an_irgan_tuning_file_is_checked_against_its_search_space(ratings, tmp_path):
    """The IRGAN candidate's params go straight into IRGANConfig: a scorer key is refused by name."""
    from irgan.protocol import CANDIDATES
    good = {"params": {"dim": 16, "g_lr": 0.001, "d_lr": 0.001, "d_l2": 0.2, "pretrain": {"l2": 0.1}},
            "validation": 0.1, "trials": [], "seconds": 1.0}
    compare_cli._check_tuning(good, CANDIDATES["irgan"])
    for params, words in (({**good["params"], "g_scorer": "evilmod_irgan:Evil"}, "g_scorer"),
                          ({**good["params"], "dim": 7}, "dim"),
                          ({**good["params"], "g_lr": "0.001"}, "g_lr"),
                          ({**good["params"], "pretrain": {"l2": 0.1, "init": "x.pkl"}}, "init"),
                          ({**good["params"], "d_l2": 1e9}, "d_l2")):
        with pytest.raises(ValueError, match=words):
            compare_cli._check_tuning({**good, "params": params}, CANDIDATES["irgan"])


def test_a_model_file_never_imports_its_scorer_names(tmp_path, evil_module):
    train = small_frame()
    model = IRGAN(epochs=1, d_epochs=1, g_epochs=1, pretrain=BPRConfig(epochs=1), min_rating=None,
                  validation_fraction=0.3, device="cpu").fit(train)
    path = tmp_path / "model.pt"
    model.save(path)
    state = torch.load(path, weights_only=True)
    for key in ("g_scorer", "generator"):
        edited = {**state, "params": {**state["params"], key: "evilmod_irgan:Evil"}}
        torch.save(edited, tmp_path / "edited.pt")
        with pytest.raises(ModelFileError, match="scorers=\\[TheClass\\]"):
            IRGAN.load(tmp_path / "edited.pt")
    assert not evil_module.exists()


def test_a_model_file_names_a_scorer_the_user_passes(tmp_path):
    """scorers=[cls] names 'module:Class' in this call: a file naming it loads."""
    from irgan.models import MatrixFactorization
    train = small_frame()
    model = IRGAN(epochs=1, d_epochs=1, g_epochs=1, pretrain=BPRConfig(epochs=1), min_rating=None,
                  validation_fraction=0.3, device="cpu").fit(train)
    path = tmp_path / "model.pt"
    model.save(path)
    state = torch.load(path, weights_only=True)
    name = "irgan.models.mf:MatrixFactorization"
    torch.save({**state, "params": {**state["params"], "d_scorer": name}}, tmp_path / "named.pt")
    assert IRGAN.load(tmp_path / "named.pt", scorers=[MatrixFactorization]).config.d_scorer == name


# --- scorers that are not scorers, and ones with only the two methods -----------------------------

class OnlyTwoMethods(nn.Module):
    """The README's contract and nothing more: no n_users, n_items or init_args."""

    def __init__(self, users: int, items: int) -> None:
        super().__init__()
        self.emb_u, self.emb_i = nn.Embedding(users, 4), nn.Embedding(items, 4)

    def score(self, u, i):
        return (self.emb_u(u) * self.emb_i(i)).sum(-1)

    def score_users(self, u):
        return self.emb_u(u) @ self.emb_i.weight.T


class NotAModule:
    def __init__(self, n_users, n_items) -> None:
        pass


class NoArguments(nn.Module):
    def __init__(self) -> None:
        super().__init__()


def test_a_scorer_with_only_the_two_methods_saves_and_loads(tmp_path):
    train = small_frame()
    model = IRGAN(generator=OnlyTwoMethods, discriminator=OnlyTwoMethods, init="random", epochs=1, d_epochs=1,
                  g_epochs=1, min_rating=None, validation_fraction=0.3, device="cpu").fit(train)
    model.save(tmp_path / "m.pt")
    same = IRGAN.load(tmp_path / "m.pt", scorers=[OnlyTwoMethods])
    assert same.recommend([0, 1], k=2).equals(model.recommend([0, 1], k=2))
    same.save(tmp_path / "again.pt")  # a loaded one saves again
    assert IRGAN.load(tmp_path / "again.pt", scorers=[OnlyTwoMethods]).recommend([0], k=2).equals(
        model.recommend([0], k=2))


def test_an_instance_irgan_did_not_build_says_what_it_must_provide(tmp_path):
    from irgan.checkpoint import save_model
    scorer = OnlyTwoMethods(4, 4)
    with pytest.raises(ValueError, match="init_args"):
        save_model(tmp_path / "x.pt", "IRGAN", {"generator": scorer}, np.arange(4), np.arange(4),
                   np.zeros((4, 4)))


@pytest.mark.parametrize("cls, words", [(NotAModule, "torch.nn.Module"), (NoArguments, r"\(n_users, n_items\)"),
                                        (nn.Linear, "score")])
def test_a_class_that_is_no_scorer_is_one_line(cls, words):
    from irgan.models.build import build_scorer
    import scipy.sparse as sp
    with pytest.raises(ValueError, match=words):
        build_scorer(cls, sp.csr_matrix(np.eye(4, dtype=np.float32)))


@pytest.mark.parametrize("spec, words", [("torch.nn:Linear", "score"), ("json:JSONDecoder", "cannot be built as JSONDecoder(n_users, n_items)"), ("fractions:Fraction", "not a scorer")])
def test_the_cli_names_a_class_that_is_no_scorer_in_one_line(ratings, tmp_path, capsys, spec, words):
    assert train_cli.main(["--dataset", str(ratings), *TINY, "--g-scorer", spec, "--out", str(tmp_path / "r")]) == 2
    assert words in error_line(capsys)


# --- parts files are data ---------------------------------------------------------------------------

@pytest.fixture
def finished_compare(ratings, tmp_path) -> tuple[list[str], Path]:
    out = tmp_path / "cmp"
    args = ["--dataset", str(ratings), "--split", "random", "--models", "pop", "--seeds", "1", "--trials", "0",
            "--quiet", "--out", str(out)]
    assert compare_cli.main(args) == 0
    (out / "results.json").unlink()
    return args, out


@pytest.mark.parametrize("name, text, words", [
    ("pop.tuning.json", '{"x": 1}', "params"),
    ("pop.tuning.json", '{"params": {}, "validation": {"a": 1}, "trials": [], "seconds": 1}', "validation"),
    ("pop.tuning.json", "garbage", "Expecting value"),
    ("pop.tuning.json", "[1, 2]", "JSON object"),
    ("pop.seed0.json", '{"test": {"P@5": "high"}, "per_user": {"index": []}, "seconds": 1, "also": {}}', "P@5"),
    ("pop.seed0.json", '{"test": {}, "per_user": {"index": [1, 2], "P@5": [0.5]}, "seconds": 1, "also": {}}',
     "as long as its index"),
    ("pop.seed0.json", '{"test": {}, "per_user": {"index": [1]}, "seconds": -3, "also": {}}', "seconds"),
])
def test_a_bad_parts_file_is_one_line_naming_it(finished_compare, capsys, name, text, words):
    args, out = finished_compare
    (out / "parts" / name).write_text(text)
    capsys.readouterr()
    assert compare_cli.main(args) == 2
    line = error_line(capsys)
    assert str(out / "parts" / name) in line and words in line
    assert (out / "parts" / name).read_text() == text  # the user's file is left as it was


def test_a_truncated_parts_model_file_is_fitted_again(finished_compare):
    args, out = finished_compare
    model = out / "parts" / "pop.seed0.pt"
    good = model.read_bytes()
    model.write_bytes(good[: len(good) // 2])
    assert compare_cli.main(args) == 0
    load_model(model)  # whole again
    assert json.loads((out / "results.json").read_text())["models"]["pop"]["test"]


def test_a_garbage_compare_json_is_one_line_naming_it(finished_compare, capsys):
    args, out = finished_compare
    (out / "compare.json").write_text("not json")
    capsys.readouterr()
    assert compare_cli.main(args) == 2
    assert str(out / "compare.json") in error_line(capsys)


# --- counts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--seeds", "--trials", "--splits"])
def test_compare_counts_are_bounded(ratings, tmp_path, capsys, flag):
    args = ["--dataset", str(ratings), "--models", "pop", "--quiet", "--out", str(tmp_path / "c"),
            flag, "99999999999999999999"]
    assert compare_cli.main(args) == 2
    assert f"{MAX_COUNT:,}" in error_line(capsys)
    assert not (tmp_path / "c" / "parts").exists()


def test_compare_needs_a_model(ratings, tmp_path, capsys):
    assert compare_cli.main(["--dataset", str(ratings), "--models", ",", "--out", str(tmp_path / "c")]) == 2
    assert "no model" in error_line(capsys)


@pytest.mark.parametrize("field", ["epochs", "d_epochs", "g_epochs"])
def test_epoch_counts_are_bounded(field):
    IRGANConfig(**{field: MAX_COUNT})
    with pytest.raises(ValueError, match=f"{field} must be at most"):
        IRGANConfig(**{field: MAX_COUNT + 1})
    with pytest.raises(ValueError, match="pretrain.epochs must be at most"):
        IRGANConfig(pretrain={"epochs": 10**20})


# --- bounded reading of compressed files ---------------------------------------------------------------

BOMB_BYTES = 3 << 19  # 1.5 MiB of newlines: refused at a 1 MiB cap, read at the default


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz", "zip"])
def test_a_compressed_file_is_refused_past_the_cap(tmp_path, kind):
    rows = b"1,2,5\n" + b"\n" * BOMB_BYTES
    packed = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
              "zip": lambda b: zip_of({"r.csv": b})}[kind](rows)
    path = tmp_path / "ratings.bin"
    path.write_bytes(packed)
    with pytest.raises(DataError, match="unpacks to more than 1,048,576 bytes.*--max-unpacked-mb"):
        read_ratings(path, max_unpacked_mb=1)
    assert len(read_ratings(path)) == 1  # the same file is read under the default cap


def test_unpacking_is_a_stream_held_under_the_cap(tmp_path, monkeypatch):
    """The decompressor is never asked for more than a chunk at a time: memory stays near the cap."""
    import irgan.data.files as files
    asked = []
    real = gzip.GzipFile.read

    def read(self, size=-1):
        asked.append(size)
        return real(self, size)
    monkeypatch.setattr(gzip.GzipFile, "read", read)
    path = tmp_path / "ratings.gz"
    path.write_bytes(gzip.compress(b"1,2,5\n" + b"\n" * BOMB_BYTES))
    with pytest.raises(DataError, match="unpacks to more than"):
        read_ratings(path, max_unpacked_mb=1)
    assert asked and all(0 < size <= files._CHUNK_BYTES for size in asked)
    assert len(asked) <= (1 << 20) // files._CHUNK_BYTES + 2  # stopped at the cap, not read to the end


def test_a_parquet_file_whose_columns_unpack_past_the_cap_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    n = 200_000
    table = pa.table({"user": np.arange(n, dtype=np.int64) % 7, "item": np.arange(n, dtype=np.int64) % 5})
    path = tmp_path / "r.parquet"
    pq.write_table(table, path, compression="zstd", use_dictionary=False)  # plain: 3.2 MB unpacked
    assert path.stat().st_size < 1 << 20  # under the cap on disk: its unpacking is what is refused
    with pytest.raises(DataError, match="over the limit"):
        read_ratings(path, max_unpacked_mb=1)
    assert len(read_ratings(path)) == n


def test_the_cli_takes_a_higher_cap(ratings, tmp_path, capsys):
    packed = tmp_path / "ratings.csv.gz"
    packed.write_bytes(gzip.compress(ratings.read_bytes() + b"\n" * (3 << 20)))
    assert train_cli.main(["--dataset", str(packed), *TINY, "--out", str(tmp_path / "a"),
                           "--max-unpacked-mb", "1"]) == 2
    assert "--max-unpacked-mb" in error_line(capsys)
    assert train_cli.main(["--dataset", str(packed), *TINY, "--out", str(tmp_path / "b"),
                           "--max-unpacked-mb", "8"]) == 0


# --- what is not a ratings file ----------------------------------------------------------------------------

def test_a_folder_fifo_or_link_loop_is_not_a_ratings_file(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, words in ((tmp_path, "a folder"), (fifo, "not a regular file"), (loop, "leads nowhere")):
        with pytest.raises(DataError, match=words):
            load_dataset(str(path))
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("ml-100kk")


# --- saving --------------------------------------------------------------------------------------------------

class FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)

    def close(self) -> None:
        self.file.close()
        super().close()


def test_a_full_disk_while_saving_is_one_oserror_naming_the_file(tmp_path, monkeypatch):
    import irgan.checkpoint as checkpoint
    real = os.fdopen
    monkeypatch.setattr(checkpoint.os, "fdopen", lambda fd, mode: FullDisk(real(fd, mode), 100))
    target = tmp_path / "init.pt"
    with pytest.raises(OSError) as caught:
        atomic_write(target, lambda f: torch.save({"x": torch.zeros(1000)}, f))
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_full_disk_in_a_run_is_one_error_line_and_the_folder_stays(ratings, tmp_path, monkeypatch, capsys):
    import irgan.checkpoint as checkpoint
    real = os.fdopen
    writes = []

    def fdopen(fd, mode):
        writes.append(fd)
        return FullDisk(real(fd, mode), 10**9 if len(writes) < 3 else 10)  # run.json, init.pt, then full
    monkeypatch.setattr(checkpoint.os, "fdopen", fdopen)
    out = tmp_path / "run"
    assert train_cli.main(["--dataset", str(ratings), *TINY, "--out", str(out)]) == 2
    line = error_line(capsys)
    assert line.startswith("error: No space left on device: ") and str(out) in line
    assert (out / "run.json").is_file() and (out / "init.pt").is_file()  # resumable
    monkeypatch.undo()
    assert train_cli.main(["--resume", str(out), "--quiet"]) == 0
