"""Hostile files: crafted pickles, decompression bombs, hand-edited model files and training
states, the umask of written files, malformed run directories for ``irgan.plot``.

Each is refused with one line (ModelFileError for model files, ValueError for training states and
pretrained arrays, ``error: ...`` and exit 2 for the plot command), before any code runs and
before anything is decompressed or allocated beyond what the file holds.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import pickle
import re
import stat
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.overrides import TorchFunctionMode

from helpers import Evil, planted
from irgan.checkpoint import (MAX_UNPACK_RATIO, UNPACK_FLOOR_BYTES, ModelFileError, atomic_write, check_archive,
                              load_model, load_train_state, save_model, save_train_state, unpack_limit)
from irgan.config import BPRConfig, IRGANConfig
from irgan.estimator import IRGAN
from irgan.model_files import load_arrays, load_model_file
from irgan.models import MatrixFactorization, MLPScorer

REPO = Path(__file__).resolve().parents[1]
MiB = 2**20


def one_line(err: pytest.ExceptionInfo, path: Path | None = None) -> str:
    message = str(err.value)
    assert message and "\n" not in message, message
    if path is not None:
        assert message.startswith(str(path)), message
    return message


# --- code in pickles (case 1) ------------------------------------------------------------------

def test_bench_eval_refuses_a_crafted_authors_pickle_without_running_it(tmp_path, monkeypatch):
    """bench_eval reads the authors' model from the data folder: a crafted one is refused, its code never runs."""
    marker = tmp_path / "PWNED"
    folder = tmp_path / "data" / "irgan-ml100k"
    folder.mkdir(parents=True)
    (folder / "model_dns_ori.pkl").write_bytes(pickle.dumps([Evil(marker), np.zeros(3), np.zeros(3)], protocol=2))
    monkeypatch.setenv("IRGAN_DATA", str(tmp_path / "data"))
    monkeypatch.syspath_prepend(str(REPO))
    from benchmarks import bench_eval

    assert bench_eval.authors_folder() == folder
    with pytest.raises(ValueError, match="refusing to load .*system: only numpy arrays") as err:
        bench_eval.ml100k()
    one_line(err)
    assert not marker.exists()


def _sources() -> list[tuple[Path, str]]:
    """The code of irgan/, benchmarks/ and the notebooks' code cells."""
    files = [(p, p.read_text()) for folder in ("irgan", "benchmarks") for p in sorted((REPO / folder).rglob("*.py"))]
    for p in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(p.read_text())["cells"]
        files.append((p, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")))
    return files


def _call(text: str, start: int) -> str:
    """The text of the call whose opening parenthesis is at ``start``, up to its closing one."""
    depth = 0
    for end in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            return text[start:end + 1]
    return text[start:]


def test_every_loader_in_the_code_is_a_safe_one():
    """No plain pickle.load, no torch.load without weights_only=True, no np.load(allow_pickle=True)."""
    unsafe = []
    for path, text in _sources():
        for match in re.finditer(r"\bpickle\.loads?\(|\b(?:np|numpy)\.load\(|\btorch\.load\(", text):
            call = _call(text, match.end() - 1)
            if match.group().startswith("pickle") or re.search(r"allow_pickle\s*=\s*True", call) \
                    or (match.group().startswith("torch") and not re.search(r"weights_only\s*=\s*True", call)):
                unsafe.append(f"{path.relative_to(REPO)}: {match.group()}{call[1:60]}")
    assert not unsafe, unsafe


# --- decompression bombs (case 2) ------------------------------------------------------------

def deflate_bomb(path: Path, mib: int, member: str = "archive/data/0") -> Path:
    """A zip archive laid out like torch.save's, one entry ``mib`` MiB of zeros, deflated (~1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"format": "irgan-model-v2"}))
        with archive.open(member, "w", force_zip64=True) as entry:
            chunk = bytes(MiB)
            for _ in range(mib):
                entry.write(chunk)
    return path


def lying_archive(path: Path, claimed: int = 2**31) -> Path:
    """A small stored archive whose directory claims ``claimed`` bytes for its one entry."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data/0", b"0123456789")
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x01\x02")  # the central directory's entry: uncompressed size at offset 24
    data[at + 24:at + 28] = claimed.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def opened_entries(monkeypatch) -> list:
    """Names of the zip entries opened for reading (so decompressed): checking an archive must open none."""
    opened, real = [], zipfile.ZipFile.open

    def recording(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            opened.append(getattr(name, "filename", name))
        return real(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recording)
    return opened


LARGE = 10**7  # elements: far above any table of these tests' files, far below what the edits claim


class NoLargeTensors(TorchFunctionMode):
    """Records, and refuses before allocating, any tensor of more than LARGE elements off the meta
    device: a file's claimed sizes must be checked before anything is built at them."""

    FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full}

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.FACTORIES and str(kwargs.get("device", "cpu")) != "meta":
            size = kwargs.get("size", args[0] if len(args) == 1 and not isinstance(args[0], int) else args)
            if not isinstance(size, (tuple, list, torch.Size)) or not all(isinstance(n, int) for n in size):
                size = ()
            if math.prod(size) > LARGE:
                self.refused.append(f"{func.__name__}{tuple(size)}")
                raise MemoryError(f"the test refused {self.refused[-1]}")
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.device.type != "meta" and out.numel() > LARGE:
            self.refused.append(f"{getattr(func, '__name__', func)} -> {tuple(out.shape)}")
        return out


@pytest.fixture
def torch_load_calls(monkeypatch) -> list:
    """torch.load, recorded: a refused file must never reach it."""
    calls, real = [], torch.load

    def recording(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording)
    return calls


def test_unpack_limit_lets_real_models_through_and_stops_bombs():
    assert unpack_limit(0) == UNPACK_FLOOR_BYTES == 64 * MiB
    netflix = 1_300_000_000  # 480k users, 18k items, dim 128, two players, 100M int64 positives: stored, ratio <= 1
    assert unpack_limit(netflix) == MAX_UNPACK_RATIO * netflix > netflix
    assert unpack_limit(1_900_000) < 2_200_000_000  # the 1.9 MB archive of the issue, unpacking to 2.2 GB


@pytest.mark.parametrize("make", [
    pytest.param(lambda p: deflate_bomb(p, 80), id="deflate-80MiB"),
    pytest.param(lambda p: lying_archive(p), id="claims-2GiB"),
])
def test_bombs_are_refused_before_torch_load(tmp_path, torch_load_calls, opened_entries, make):
    path = make(tmp_path / "model.pt")
    assert path.stat().st_size < 200_000
    with pytest.raises(ModelFileError, match=r"its entries unpack to [\d,]+ bytes from [\d,]+ on disk, over the limit of "
                                             r"67,108,864 \(max\(64 MiB, 4 x its size\)\)") as err:
        load_model(path)
    one_line(err, path)
    with pytest.raises(ModelFileError, match="unpack to"):
        IRGAN.load(path)
    with pytest.raises(ValueError, match="not a loadable irgan training state: its entries unpack to") as err:
        load_train_state(path, IRGANConfig(), "fingerprint")
    one_line(err, path)
    assert torch_load_calls == [] and opened_entries == []  # the directory is read, nothing is inflated


def test_npz_bomb_and_oversized_array_header_are_refused(tmp_path):
    path = deflate_bomb(tmp_path / "init.npz", 80, member="user_emb.npy")
    with pytest.raises(ValueError, match="not a loadable .npz model file: its entries unpack to") as err:
        load_model_file(path, np.arange(3), np.arange(3))
    one_line(err, path)
    huge = tmp_path / "huge.npz"  # a header claiming 10^12 floats over 16 bytes of data
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32)) | {"shape": (10**12,)}
    with zipfile.ZipFile(huge, "w") as archive:
        with archive.open("user_emb.npy", "w") as entry:
            np.lib.format.write_array_header_1_0(entry, header)
            entry.write(bytes(16))
        for name, value in (("item_emb", np.zeros((3, 2), np.float32)), ("item_bias", np.zeros(3, np.float32))):
            with archive.open(f"{name}.npy", "w") as entry:
                np.lib.format.write_array(entry, value)
    with pytest.raises(ValueError, match="not a loadable .npz model file") as err:
        load_arrays(huge)
    one_line(err, huge)


def test_real_archives_pass_the_check(tmp_path):
    """torch.save's stored entries above the floor, and a small compressed npz, are not bombs."""
    big = tmp_path / "big.pt"
    torch.save({"table": torch.zeros(20 * MiB)}, big)  # 80 MiB stored
    check_archive(big)
    small = tmp_path / "init.npz"
    np.savez_compressed(small, user_emb=np.ones((3, 2), np.float32), item_emb=np.ones((4, 2), np.float32),
                        item_bias=np.zeros(4, np.float32))
    assert load_model_file(small, np.array([1, 2, 3]), np.array([4, 3, 2, 1])).n_items == 4


def test_files_torch_would_read_as_legacy_pickles_are_refused(tmp_path, torch_load_calls):
    """Not starting with a zip header (the legacy format, or data before the archive): torch would
    unpickle storages sized by the file's own claims."""
    legacy = tmp_path / "legacy.pt"
    torch.save({"format": "irgan-model-v2"}, legacy, _use_new_zipfile_serialization=False)
    prefixed = tmp_path / "prefixed.pt"
    torch.save({"format": "irgan-model-v2"}, tmp_path / "zip.pt")
    prefixed.write_bytes(b"#!/bin/sh\n" + (tmp_path / "zip.pt").read_bytes())
    for path in (legacy, prefixed):
        with pytest.raises(ModelFileError, match="not a loadable irgan model file: not a zip archive") as err:
            load_model(path)
        one_line(err, path)
    assert torch_load_calls == []


# --- hand-edited model files (case 3) ----------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A fitted IRGAN's model file, saved with side='best'."""
    train, _ = planted()
    model = IRGAN(epochs=1, d_epochs=1, g_epochs=1, pretrain=BPRConfig(epochs=1), dim=3, side="best", device="cpu")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    model.fit(train).save(path)
    return path


def edited(saved: Path, folder: Path, edit) -> Path:
    state = copy.deepcopy(torch.load(saved, weights_only=True))
    edit(state)
    path = folder / "edited.pt"
    torch.save(state, path)
    return path


def _put(*keys, value):
    def edit(state: dict) -> None:
        target = state
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _drop(*keys):
    def edit(state: dict) -> None:
        target = state
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return edit


@pytest.mark.parametrize("edit, words", [
    pytest.param(_put("params", "dim", value="5"), "dim must be an integer, got '5'", id="param-wrong-type"),
    pytest.param(_put("params", "d_temperature", value=float("nan")), "d_temperature must be a finite number",
                 id="param-nan"),
    pytest.param(_put("params", "pretrain", value="x"), "pretrain must be a BPRConfig", id="nested-param-wrong-type"),
    pytest.param(_put("params", "pretrain", "zzz", value=1), "pretrain has unknown field(s) ['zzz']",
                 id="nested-param-unknown"),
    pytest.param(_put("params", "seed", value="x"), "its parameter seed is 'x', of type str, not int",
                 id="own-param-wrong-type"),
    pytest.param(_put("params", value=[1, 2]), "it holds 'params' of type list, expected dict", id="params-not-dict"),
    pytest.param(_drop("fitted", "best"), "damaged irgan model file", id="fitted-without-best"),
    pytest.param(_put("fitted", value=[1]), "it holds 'fitted' of type list, expected dict", id="fitted-not-dict"),
    pytest.param(_put("estimator", value="Nope"), "a 'Nope', an estimator irgan does not know", id="unknown-estimator"),
    pytest.param(_put("estimator", value=["IRGAN"]), "'estimator' of type list, expected str",
                 id="estimator-not-str"),
    pytest.param(lambda s: s["user_ids"]["values"].pop(), "positives are 60 x 60 but it names 59 users",
                 id="ids-wrong-length"),
    pytest.param(_put("user_ids", "dtype", value="U10000000"), "ids have dtype 'U10000000'", id="ids-huge-dtype"),
    pytest.param(_drop("scorers", "generator"), "it lacks 'generator'", id="no-generator"),
    pytest.param(_put("scorers", "generator", "state", "item_bias", value=3), "'item_bias' of type int, expected a tensor",
                 id="table-not-tensor"),
    pytest.param(_put("scorers", "generator", "args", "dim", value=10**9),
                 "generator's dim=1000000000 is larger than any table it holds", id="args-claim-huge"),
    pytest.param(lambda s: s["user_items"].update(indices=s["user_items"]["indices"].float()),
                 "positives are stored as torch.float32", id="float-indices"),
])
def test_hand_edited_model_file_is_one_model_file_error(saved, tmp_path, edit, words):
    path = edited(saved, tmp_path, edit)
    with NoLargeTensors() as allocations, pytest.raises(ModelFileError) as err:
        IRGAN.load(path, device="cpu")
    assert words in one_line(err, path)
    assert allocations.refused == []  # nothing was built at the claimed size


def test_size_arguments_beyond_the_tables_are_refused_before_building(tmp_path):
    """An MLP's towers are built on CPU even under the meta device: its hidden size is checked first."""
    path = tmp_path / "mlp.pt"
    save_model(path, "BPRRecommender", {"model": MLPScorer(2, 3, dim=2, hidden=4)}, [1, 2], [1, 2, 3],
               sp.csr_matrix((2, 3), dtype=np.float32))
    state = torch.load(path, weights_only=True)
    state["scorers"]["model"]["args"]["hidden"] = 10**9
    torch.save(state, path)
    with NoLargeTensors() as allocations, \
            pytest.raises(ModelFileError, match="model's hidden=1000000000 is larger than any table it holds") as err:
        load_model(path)
    one_line(err, path)
    assert allocations.refused == []


class Wide(torch.nn.Module):
    """A scorer of one's own whose table is sized by an argument irgan does not know."""

    def __init__(self, n_users: int, n_items: int, width: int = 2) -> None:
        super().__init__()
        self.n_users, self.n_items, self.width = n_users, n_items, width
        self.table = torch.nn.Parameter(torch.zeros(n_items, width))

    def init_args(self) -> dict:
        return {"n_users": self.n_users, "n_items": self.n_items, "width": self.width}


def test_a_scorer_of_ones_own_claiming_a_huge_table_is_tried_on_meta_first(tmp_path):
    path = tmp_path / "wide.pt"
    save_model(path, "BPRRecommender", {"model": Wide(2, 3)}, [1, 2], [1, 2, 3], sp.csr_matrix((2, 3), dtype=np.float32))
    assert load_model(path, scorers=[Wide]).scorers["model"].width == 2
    state = torch.load(path, weights_only=True)
    state["scorers"]["model"]["args"]["width"] = 10**12
    torch.save(state, path)
    with pytest.raises(ModelFileError, match=r"arguments make table \(3, 1000000000000\), larger than the \(3, 2\)") as err:
        load_model(path, scorers=[Wide])
    one_line(err, path)


def test_the_edited_file_loads_unedited_and_with_missing_params(saved, tmp_path):
    """Control: the file loads; a parameter missing from it takes its default, as in version-1 files."""
    assert IRGAN.load(saved, device="cpu").chosen_side_ in ("generator", "discriminator")
    loaded = IRGAN.load(edited(saved, tmp_path, _drop("params", "g_lr")), device="cpu")
    assert loaded.config.g_lr == IRGANConfig().g_lr


def test_missing_best_is_refused_whatever_the_saved_side(saved, tmp_path):
    path = edited(saved, tmp_path, lambda s: (s["fitted"].pop("best"), s["params"].update(side="generator")))
    with pytest.raises(ValueError, match="side='best' needs both players' validation P@5"):
        IRGAN.load(path, device="cpu").set_params(side="best").model_


def test_damaged_version_1_file_is_one_line(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "irgan-checkpoint-v1", "user_ids": [1], "item_ids": [2]}, path)  # no tables, no config
    with pytest.raises(ModelFileError, match="damaged irgan model file: KeyError") as err:
        load_model(path)
    one_line(err, path)


# --- the umask (case 4) ------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "run.json", lambda f: f.write(b"{}"))
        save_model(tmp_path / "model.pt", "BPRRecommender", {"model": MatrixFactorization(2, 3)}, [1, 2], [1, 2, 3],
                   sp.csr_matrix((2, 3), dtype=np.float32))
        save_train_state(tmp_path / "train_state.pt", {"epoch": 0})
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["run.json", "model.pt", "train_state.pt"], mode)


# --- hand-edited training states (case 7) ------------------------------------------------------

CONFIG = IRGANConfig(epochs=3)


def train_state() -> dict:
    """A valid state after one outer epoch, shaped as irgan.adversarial.irgan.game._state writes it."""
    tables = {"user_emb": torch.zeros(4, 3), "item_emb": torch.zeros(6, 3), "item_bias": torch.zeros(6)}
    return {"epoch": 1, "seconds": 2.5, "config": dataclasses.asdict(CONFIG), "fingerprint": "abc",
            "generator": tables, "discriminator": dict(tables), "g_opt": {}, "d_opt": {},
            "rng": torch.Generator().get_state(), "fake_items": None, "history": [{"epoch": 0, "g_epoch": 0}],
            "best_generator": {"state": dict(tables), "score": 0.25, "info": {}},
            "best_discriminator": {"state": dict(tables), "score": -math.inf, "info": {}}}


@pytest.mark.parametrize("edit, words", [
    pytest.param(_put("epoch", value="1"), "holds 'epoch' of type str, expected int", id="epoch-str"),
    pytest.param(_put("epoch", value=True), "holds 'epoch' of type bool", id="epoch-bool"),
    pytest.param(_put("epoch", value=7), "its epoch is 7, outside 0..3", id="epoch-beyond-run"),
    pytest.param(_put("seconds", value=float("nan")), "seconds or best scores are not numbers", id="seconds-nan"),
    pytest.param(_put("generator", value=[1]), "holds 'generator' of type list, expected dict", id="tables-list"),
    pytest.param(_put("generator", "item_bias", value=[0.0] * 6), "'item_bias' of type list, expected a tensor",
                 id="table-list"),
    pytest.param(_put("discriminator", "item_emb", value=torch.full((6, 3), math.nan)),
                 "discriminator's item_emb holds NaN", id="table-nan"),
    pytest.param(_put("best_generator", "state", "user_emb", value=torch.zeros(5, 3)),
                 "best_generator has other tables than its generator", id="best-shape"),
    pytest.param(_drop("best_discriminator", "score"), "best_discriminator has no 'score'", id="best-no-score"),
    pytest.param(_put("rng", value=torch.zeros(3)), "rng is not a generator state", id="rng-float"),
    pytest.param(_put("fake_items", value="x"), "'fake_items' of type str, expected Tensor or NoneType",
                 id="fake-items-str"),
    pytest.param(_put("history", value=["row"]), "history holds a row that is not a dict", id="history-row-str"),
    pytest.param(_put("g_opt", value=3), "'g_opt' of type int, expected dict", id="optimizer-int"),
    pytest.param(_put("config", value="x"), "'config' of type str, expected dict", id="config-str"),
])
def test_hand_edited_train_state_is_one_value_error(tmp_path, edit, words):
    path = tmp_path / "train_state.pt"
    state = train_state()
    edit(state)
    save_train_state(path, state)
    with pytest.raises(ValueError, match="is a damaged irgan training state") as err:
        load_train_state(path, CONFIG, "abc")
    assert words in one_line(err, path)


def test_the_train_state_cases_start_from_a_valid_state(tmp_path):
    path = tmp_path / "train_state.pt"
    save_train_state(path, train_state())
    assert load_train_state(path, CONFIG, "abc")["epoch"] == 1
    with pytest.raises(ValueError, match="written with another config"):
        load_train_state(path, IRGANConfig(epochs=5), "abc")


# --- irgan.plot on malformed run directories (case 6) ------------------------------------------

ROW = {"epoch": 0, "g_epoch": 0, "g_reward": 0.1, "selection": {"P@5": 0.2}}


def plot(args: list[str], capsys) -> str:
    pytest.importorskip("matplotlib")
    from irgan.plot import main

    capsys.readouterr()
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.mark.parametrize("line, words", [
    pytest.param("{not json", "line 2: not valid JSON", id="not-json"),
    pytest.param("[1, 2]", "line 2: the row is an array, not an object", id="array"),
    pytest.param('"row"', "line 2: the row is a string, not an object", id="string"),
    pytest.param('{"g_epoch": 1}', "line 2: the row has no integer 'epoch'", id="no-epoch"),
    pytest.param('{"epoch": "0", "g_epoch": 1}', "line 2: the row has no integer 'epoch'", id="epoch-string"),
    pytest.param('{"epoch": 0, "g_epoch": 1.5}', "line 2: the row has no integer 'g_epoch'", id="g-epoch-float"),
    pytest.param('{"epoch": 0, "g_epoch": 1, "g_reward": "high"}', "line 2: the row has 'g_reward' as a string",
                 id="metric-string"),
    pytest.param('{"epoch": 0, "g_epoch": 1, "g_reward": 1' + "0" * 400 + "}", "line 2: the row has 'g_reward' too large",
                 id="metric-huge"),
    pytest.param('{"epoch": 1' + "0" * 400 + ', "g_epoch": 1}', "line 2: the row has no integer 'epoch'",
                 id="epoch-huge"),
    pytest.param("[" * 100_000 + "]" * 100_000, "line 2: not valid JSON", id="nested-too-deeply"),
    pytest.param('{"epoch": 0, "g_epoch": 1, "selection": [0.2]}', "line 2: the row has a 'selection' that is not",
                 id="selection-array"),
    pytest.param('{"epoch": 0, "g_epoch": 1, "selection": {"P@5": "x"}}', "line 2: the row has a 'selection'",
                 id="selection-string"),
])
def test_plot_malformed_history_line_names_file_and_line(tmp_path, capsys, line, words):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text("\n".join([json.dumps(ROW), line, json.dumps({**ROW, "g_epoch": 2})]) + "\n")
    err = plot([str(run)], capsys)
    assert f"{run / 'history.jsonl'}, {words}" in err
    assert not (run / "plots").exists()


@pytest.mark.parametrize("setup, words", [
    pytest.param(None, "does not exist", id="missing"),
    pytest.param(lambda d: d.mkdir(), "holds neither history.jsonl nor metrics.json", id="empty-dir"),
    pytest.param(lambda d: (d.mkdir(), (d / "history.jsonl").write_text("\n")), "history.jsonl holds no rows",
                 id="empty-history"),
    pytest.param(lambda d: (d.mkdir(), (d / "history.jsonl").write_bytes(b"\xff\xfe{}\n")), "is not UTF-8 text",
                 id="not-utf8"),
    pytest.param(lambda d: (d.mkdir(), (d / "metrics.json").write_text(json.dumps({"history": [ROW, 3]}))),
                 "metrics.json: history row 1 is a number, not an object", id="metrics-row"),
])
def test_plot_missing_or_empty_run_dir_is_one_line(tmp_path, capsys, setup, words):
    run = tmp_path / "run"
    if setup is not None:
        setup(run)
    assert words in plot([str(run)], capsys)


def test_plot_unwritable_output_folder_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text(json.dumps(ROW) + "\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    err = plot([str(run), "--out", str(blocker / "plots")], capsys)
    assert str(blocker / "plots") in err and "Traceback" not in err
    assert blocker.read_text() == "mine"
    assert sys.modules["irgan.plot"].DEFAULT_OUT not in {p.name for p in run.iterdir()}
