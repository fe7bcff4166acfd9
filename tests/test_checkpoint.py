"""The one model file (``irgan.checkpoint.save_model`` / ``load_model``): round trips, refusals of
foreign, crafted and damaged files (one line each, no code run), custom scorers, and the
version-1 files of the old CLI, converted on load. Atomic writes."""
from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from helpers import Evil
from irgan.checkpoint import (FORMAT, STATE_FORMAT, ModelFileError, atomic_write, load_model, load_train_state,
                              save_model, save_train_state)
from irgan.config import BPRConfig, IRGANConfig
from irgan.models import SCORERS, MatrixFactorization, MLPScorer, Popularity, register_scorer

USERS = np.array([10, 20, 30, 40])
ITEMS = np.array(["a", "b", "c", "d", "e", "f"])



class TinyScorer(nn.Module):
    """A scorer irgan does not know: no init_args(), rebuilt from (n_users, n_items)."""

    def __init__(self, n_users: int, n_items: int) -> None:
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        g = torch.Generator().manual_seed(n_users * 1000 + n_items)
        self.user_vec = nn.Parameter(torch.randn(n_users, 2, generator=g))
        self.item_vec = nn.Parameter(torch.randn(n_items, 2, generator=g))

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user_vec[users] * self.item_vec[items]).sum(-1)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_vec[users] @ self.item_vec.T


def mf(seed: int = 0) -> MatrixFactorization:
    g = torch.Generator().manual_seed(seed)
    model = MatrixFactorization(4, 6, dim=3, init_scale=1.0, generator=g)
    with torch.no_grad():
        model.item_bias.normal_(generator=g)
    return model


def positives() -> sp.csr_matrix:
    return sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0], [0, 1, 0, 0, 0, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]],
                                  np.float32))


def same_scores(a: nn.Module, b: nn.Module, n_users: int = 4) -> bool:
    users = torch.arange(n_users)
    with torch.no_grad():
        return torch.equal(a.score_users(users), b.score_users(users))


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message, message
    return message


@pytest.fixture
def saved(tmp_path) -> Path:
    """A valid model file: G an MF, D an MLP, raw ids (ints, strings), positives, params, fitted."""
    path = tmp_path / "model.pt"
    save_model(path, "IRGAN", {"generator": mf(0), "discriminator": MLPScorer(4, 6, dim=3, hidden=5,
                                                                              generator=torch.Generator().manual_seed(1))},
               USERS, ITEMS, positives(), params={"dim": 3}, fitted={"history": []})
    return path


def rewrite(path: Path, edit) -> Path:
    """Load the file's dict, apply ``edit`` to it in place, save it back."""
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)
    return path


# --- round trip ------------------------------------------------------------------------------

def test_model_file_round_trip(tmp_path):
    G, D, M = mf(0), MLPScorer(4, 6, dim=3, hidden=5, generator=torch.Generator().manual_seed(1)), Popularity(positives())
    config = IRGANConfig(dim=3, epochs=2, reward="paper", pretrain=BPRConfig(epochs=7))
    params = {**dataclasses.asdict(config), "seed": np.int64(3)}
    fitted = {"history": [{"epoch": 0, "selection": {"P@5": np.float32(0.25)}}], "best": {"epoch": 1},
              "dataset": tmp_path / "ratings.csv", "refit": False}
    path = tmp_path / "run" / "model.pt"
    save_model(path, "IRGAN", {"generator": G, "discriminator": D, "model": M}, USERS, ITEMS, positives(), params, fitted)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["model.pt"]  # no temp file left

    got = load_model(path)
    assert got.estimator == "IRGAN"
    assert set(got.scorers) == {"generator", "discriminator", "model"}
    assert type(got.scorers["generator"]) is MatrixFactorization and type(got.scorers["discriminator"]) is MLPScorer
    assert type(got.scorers["model"]) is Popularity
    assert got.scorers["generator"].init_args() == G.init_args()
    assert got.scorers["discriminator"].init_args() == D.init_args()
    for role, original in (("generator", G), ("discriminator", D), ("model", M)):
        assert same_scores(got.scorers[role], original), role
        for key, value in original.state_dict().items():
            assert torch.equal(got.scorers[role].state_dict()[key], value), (role, key)
    assert got.user_ids.tolist() == USERS.tolist() and got.user_ids.dtype.kind == "i"
    assert got.item_ids.tolist() == ITEMS.tolist() and all(type(i) is str for i in got.item_ids)
    assert got.user_items.shape == (4, 6) and (got.user_items != positives()).nnz == 0
    assert got.params == {**dataclasses.asdict(config), "seed": 3}
    assert IRGANConfig(**{k: v for k, v in got.params.items() if k != "seed"}) == config
    assert got.fitted == {"history": [{"epoch": 0, "selection": {"P@5": 0.25}}], "best": {"epoch": 1},
                          "dataset": str(tmp_path / "ratings.csv"), "refit": False}


@pytest.mark.parametrize("users, items", [
    pytest.param(np.array(["u1", "u2", "u3", "u4"]), np.arange(100, 106), id="string-users"),
    pytest.param(np.array([1.5, 2.5, 3.5, 4.5]), np.array(["x", "yy", "zzz", "w", "v", "ü"]), id="float-users"),
    pytest.param(np.array(["a", "b", "c", "d"], dtype=object), np.array(list("abcdef"), dtype=object), id="object"),
])
def test_model_file_keeps_raw_ids(tmp_path, users, items):
    save_model(tmp_path / "m.pt", "BPRRecommender", {"model": mf()}, users, items, positives())
    got = load_model(tmp_path / "m.pt")
    assert got.user_ids.tolist() == users.tolist() and got.item_ids.tolist() == items.tolist()
    assert [type(u) for u in got.user_ids.tolist()] == [type(u) for u in users.tolist()]
    assert got.params == {} and got.fitted == {}


def test_save_model_refuses_ids_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="cannot save user id"):
        save_model(tmp_path / "m.pt", "X", {"model": mf()}, np.array([(1, 2), 3, 4, 5], dtype=object), ITEMS,
                   positives())
    assert not (tmp_path / "m.pt").exists()
    with pytest.raises(ValueError, match="cannot save user id None of type NoneType: ids must be str, int or float"):
        save_model(tmp_path / "m.pt", "X", {"model": mf()}, np.array([3, None, 4, 5], dtype=object), ITEMS,
                   positives())
    assert not (tmp_path / "m.pt").exists()


# --- files that are not model files ----------------------------------------------------------

def test_load_model_refuses_a_file_that_is_not_a_model_file(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a loadable irgan model file") as err:
        load_model(text)
    assert one_line(err).startswith(str(text))
    other = tmp_path / "other.pt"
    for content in ({"format": "something-else", "weights": torch.zeros(2)}, [1, 2, 3], {"user_emb": torch.zeros(2)},
                    {"format": STATE_FORMAT, "epoch": 1}):  # a training state is not a model file either
        torch.save(content, other)
        with pytest.raises(ModelFileError, match=f"not an irgan model file \\(expected format '{FORMAT}'\\)") as err:
            load_model(other)
        one_line(err)
    assert issubclass(ModelFileError, ValueError)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path)  # a folder


def test_the_payload_is_live(tmp_path):
    """Control: a plain unpickler does run it, so the refusal below is real."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(Evil(marker)))
    assert marker.exists()


def test_load_model_refuses_a_crafted_pickle_without_running_it(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.pt"
    crafted = {"format": FORMAT, "estimator": "IRGAN", "scorers": {"generator": {"kind": "mf", "args": Evil(marker)}}}
    torch.save(crafted, path)
    with pytest.raises(ModelFileError, match="not a loadable irgan model file") as err:
        load_model(path)
    one_line(err)
    with open(path, "wb") as f:  # a bare pickle, not torch's zip layout
        pickle.dump(crafted, f, protocol=2)
    with pytest.raises(ModelFileError, match="not a loadable irgan model file") as err:
        load_model(path)
    one_line(err)
    torch.save({"format": "irgan-checkpoint-v1", "generator": Evil(marker)}, path)  # nor through the old format
    with pytest.raises(ModelFileError, match="not a loadable irgan model file"):
        load_model(path)
    assert not marker.exists()


# --- damaged model files ---------------------------------------------------------------------

def _grow_ids(state: dict) -> None:
    """One more user in the id maps (and positives), none in the scorers' tables."""
    state["user_ids"]["values"].append(50)
    state["user_items"]["shape"][0] += 1
    indptr = state["user_items"]["indptr"]
    state["user_items"]["indptr"] = torch.cat([indptr, indptr[-1:]])


def _set(path: list[str], value):
    def edit(state: dict) -> None:
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _nan(role: str, name: str, value: float):
    def edit(state: dict) -> None:
        state["scorers"][role]["state"][name][1] = value
    return edit


@pytest.mark.parametrize("edit, words", [
    pytest.param(lambda s: s.pop("scorers"), ["damaged", "it has no 'scorers'"], id="no-scorers"),
    pytest.param(lambda s: s.pop("user_ids"), ["damaged", "user_ids"], id="no-user-ids"),
    pytest.param(lambda s: s["scorers"]["generator"].pop("state"), ["damaged", "state"], id="no-state"),
    pytest.param(lambda s: s["scorers"]["generator"]["state"].pop("item_bias"), ["damaged"], id="no-tensor"),
    pytest.param(_grow_ids, ["generator is sized 4 x 6 but the id maps hold 5 users x 6 items"], id="ids-vs-rows"),
    pytest.param(lambda s: s["item_ids"]["values"].pop(), ["positives are 4 x 6 but it names 4 users and 5 items"],
                 id="ids-vs-positives"),
    pytest.param(_set(["scorers", "generator", "args", "n_users"], 5), ["generator is sized 5 x 6 but the id maps hold 4 users"],
                 id="args-vs-table"),
    pytest.param(_nan("generator", "item_emb", float("nan")), ["generator's item_emb holds NaN or infinite"], id="nan"),
    pytest.param(_nan("discriminator", "item_bias", float("inf")), ["discriminator's item_bias holds NaN or infinite"],
                 id="inf"),
    pytest.param(_set(["scorers", "discriminator", "kind"], "Mystery"),
                 ["discriminator is a 'Mystery' scorer", "scorers=[Mystery]", "register_scorer"], id="unknown-kind"),
])
def test_load_model_refuses_a_damaged_file(saved, edit, words):
    rewrite(saved, edit)
    with pytest.raises(ModelFileError) as err:
        load_model(saved)
    message = one_line(err)
    assert message.startswith(str(saved))
    for word in words:
        assert word in message, (word, message)


def test_the_damage_cases_start_from_a_valid_file(saved):
    """Control for the test above: the file it damages loads, and rewriting it unchanged keeps it loadable."""
    assert set(load_model(saved).scorers) == {"generator", "discriminator"}
    assert set(load_model(rewrite(saved, lambda s: None)).scorers) == {"generator", "discriminator"}


# --- scorers of one's own --------------------------------------------------------------------

def test_custom_scorer_loads_when_its_class_is_passed(tmp_path):
    tiny = TinyScorer(4, 6)
    with torch.no_grad():
        tiny.item_vec.mul_(3)  # not what the constructor draws
    path = tmp_path / "m.pt"
    save_model(path, "IRGAN", {"generator": tiny, "discriminator": mf()}, USERS, ITEMS, positives())
    with pytest.raises(ModelFileError, match=r"'TinyScorer' scorer.*scorers=\[TinyScorer\].*register_scorer") as err:
        load_model(path)
    one_line(err)
    got = load_model(path, scorers=[TinyScorer])
    assert type(got.scorers["generator"]) is TinyScorer and type(got.scorers["discriminator"]) is MatrixFactorization
    assert same_scores(got.scorers["generator"], tiny)
    assert not same_scores(got.scorers["generator"], TinyScorer(4, 6))


def test_registered_scorer_loads_without_being_passed(tmp_path):
    name = "tiny-for-test_checkpoint"
    assert name not in SCORERS
    register_scorer(TinyScorer, name)
    try:
        tiny = TinyScorer(4, 6)
        save_model(tmp_path / "m.pt", "BPRRecommender", {"model": tiny}, USERS, ITEMS, positives())
        assert torch.load(tmp_path / "m.pt", weights_only=True)["scorers"]["model"]["kind"] == name
        got = load_model(tmp_path / "m.pt")
        assert type(got.scorers["model"]) is TinyScorer and same_scores(got.scorers["model"], tiny)
    finally:
        SCORERS.pop(name, None)


# --- version-1 files (the old CLI's model.pt) -------------------------------------------------

def test_old_cli_model_file_loads_as_mf_scorers(tmp_path):
    g = torch.Generator().manual_seed(0)
    tables = {role: {"user_emb": torch.randn(4, 3, generator=g), "item_emb": torch.randn(6, 3, generator=g),
                     "item_bias": torch.randn(6, generator=g)} for role in ("generator", "discriminator")}
    path = tmp_path / "model.pt"
    torch.save({"format": "irgan-checkpoint-v1", **tables, "config": dataclasses.asdict(IRGANConfig()),
                "user_ids": USERS.tolist(), "item_ids": ITEMS.tolist(), "extra": {"seed": 0}}, path)
    got = load_model(path)
    assert got.estimator == "IRGAN" and set(got.scorers) == {"generator", "discriminator"}
    for role, tensors in tables.items():
        scorer = got.scorers[role]
        assert type(scorer) is MatrixFactorization and (scorer.n_users, scorer.n_items, scorer.dim) == (4, 6, 3)
        for name, value in tensors.items():
            assert torch.equal(getattr(scorer, name).detach(), value), (role, name)
        expected = tensors["user_emb"] @ tensors["item_emb"].T + tensors["item_bias"]
        with torch.no_grad():
            torch.testing.assert_close(scorer.score_users(torch.arange(4)), expected)
    assert got.user_ids.tolist() == USERS.tolist() and got.item_ids.tolist() == ITEMS.tolist()
    assert got.user_items.shape == (4, 6) and got.user_items.nnz == 0  # v1 files did not keep the positives
    assert got.params == {**dataclasses.asdict(IRGANConfig()), "seed": 0}  # the v1 seed becomes a parameter again
    assert got.fitted["seed"] == 0 and got.fitted["config"] == dataclasses.asdict(IRGANConfig())


def test_old_cli_model_file_is_checked_too(tmp_path):
    path = tmp_path / "model.pt"
    bad = {"user_emb": torch.zeros(4, 3), "item_emb": torch.full((6, 3), float("nan")), "item_bias": torch.zeros(6)}
    good = {"user_emb": torch.zeros(4, 3), "item_emb": torch.zeros(6, 3), "item_bias": torch.zeros(6)}
    old = {"format": "irgan-checkpoint-v1", "generator": bad, "discriminator": good,
           "config": dataclasses.asdict(IRGANConfig()), "user_ids": USERS.tolist(), "item_ids": ITEMS.tolist(),
           "extra": {}}
    torch.save(old, path)
    with pytest.raises(ModelFileError, match="generator's item_emb holds NaN") as err:
        load_model(path)
    one_line(err)
    torch.save({**old, "generator": good, "item_ids": ITEMS.tolist()[:5]}, path)  # 5 item ids, 6 item rows
    with pytest.raises(ModelFileError, match="damaged") as err:
        load_model(path)
    one_line(err)


def _old_cli_file(path: Path, **changes) -> Path:
    """A version-1 model.pt as the old CLI wrote it (MF tables for G and D, ids as lists, ``extra``), with
    ``changes`` (a change to None leaves the key out)."""
    tables = {"user_emb": torch.zeros(4, 3), "item_emb": torch.zeros(6, 3), "item_bias": torch.zeros(6)}
    old = {"format": "irgan-checkpoint-v1", "generator": tables, "discriminator": dict(tables),
           "config": dataclasses.asdict(IRGANConfig()), "user_ids": USERS.tolist(), "item_ids": ITEMS.tolist(),
           "extra": {"seed": 3, "dataset": "ml-100k"}}
    torch.save({k: v for k, v in {**old, **changes}.items() if v is not None}, path)
    return path


@pytest.mark.parametrize("extra, seed", [
    pytest.param({"seed": 3, "dataset": "ml-100k"}, 3, id="seed-kept"),
    pytest.param({}, 0, id="no-seed"),  # save_checkpoint called without seed=
    pytest.param(None, 0, id="no-extra"),
])
def test_old_cli_model_file_keeps_its_seed(tmp_path, extra, seed):
    got = load_model(_old_cli_file(tmp_path / "model.pt", extra=extra))
    assert got.params == {**dataclasses.asdict(IRGANConfig()), "seed": seed}
    assert got.fitted == {"config": dataclasses.asdict(IRGANConfig()), **(extra or {})}


def test_old_cli_model_file_with_an_id_it_cannot_hold_names_the_id_map(tmp_path):
    for key, n, kind in (("user_ids", 4, "user"), ("item_ids", 6, "item")):
        path = _old_cli_file(tmp_path / "model.pt", **{key: [f"x{i}".encode() for i in range(n)]})  # bytes ids
        with pytest.raises(ModelFileError, match="damaged irgan model file: ValueError") as err:
            load_model(path)
        assert f"cannot save {kind} id b'x0' of type bytes" in one_line(err), key


def _old_estimator_file(path: Path, estimator: str, fitted: dict, params: dict) -> Path:
    """A version-1 estimator file ("irgan-estimator-v1"), as Recommender.save wrote it: the fitted
    players' tables inside ``fitted``, beside what fitting found."""
    m = positives()
    torch.save({"format": "irgan-estimator-v1", "estimator": estimator, "params": params,
                "user_ids": {"values": USERS.tolist(), "dtype": "int64"},
                "item_ids": {"values": ITEMS.tolist(), "dtype": "object"},
                "user_items": {"shape": list(m.shape), "indptr": torch.from_numpy(m.indptr.astype(np.int64)),
                               "indices": torch.from_numpy(m.indices.astype(np.int64))},
                "fitted": fitted}, path)
    return path


def test_old_irgan_estimator_file_loads_as_mf_players(tmp_path):
    G, D = mf(0), mf(1)
    params = {**dataclasses.asdict(IRGANConfig(dim=3)), "seed": 3, "device": "auto", "side": "discriminator"}
    found = {"history": [{"epoch": 0, "g_epoch": 0}], "best": {"generator": {"epoch": 0}}}
    path = _old_estimator_file(tmp_path / "irgan.pt", "IRGAN", {"generator": G.state_dict(),
                                                                 "discriminator": D.state_dict(), **found}, params)
    got = load_model(path)
    assert got.estimator == "IRGAN" and set(got.scorers) == {"generator", "discriminator"}
    for role, original in (("generator", G), ("discriminator", D)):
        assert type(got.scorers[role]) is MatrixFactorization and got.scorers[role].init_args()["dim"] == 3
        assert same_scores(got.scorers[role], original), role
    assert got.fitted == found and got.params == params  # the players' tables leave ``fitted``
    assert got.user_ids.tolist() == USERS.tolist() and got.item_ids.tolist() == ITEMS.tolist()
    assert (got.user_items != positives()).nnz == 0  # estimator files did keep the positives


def test_old_popularity_estimator_file_loads_as_a_popularity_scorer(tmp_path):
    counts = Popularity(positives()).state_dict()
    path = _old_estimator_file(tmp_path / "pop.pt", "PopularityRecommender",
                               {"model": counts, "validation_metrics": None}, {"min_rating": 4.0})
    got = load_model(path)
    assert got.estimator == "PopularityRecommender" and set(got.scorers) == {"model"}
    assert type(got.scorers["model"]) is Popularity and got.scorers["model"].init_args() == {"n_items": 6}
    assert torch.equal(got.scorers["model"].counts, counts["counts"])
    assert got.fitted == {"validation_metrics": None} and got.params == {"min_rating": 4.0}


# --- atomic writes ---------------------------------------------------------------------------

def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_bytes(b"old")

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert target.read_bytes() == b"old"
    atomic_write(tmp_path / "new" / "x.bin", lambda f: f.write(b"ok"))  # creates the folder
    assert (tmp_path / "new" / "x.bin").read_bytes() == b"ok"
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["x.bin"]


def test_save_model_replaces_a_file_whole(tmp_path):
    path = tmp_path / "m.pt"
    save_model(path, "BPRRecommender", {"model": mf(0)}, USERS, ITEMS, positives())
    save_model(path, "BPRRecommender", {"model": mf(1)}, USERS, ITEMS, positives())
    assert same_scores(load_model(path).scorers["model"], mf(1))
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


# --- training states (save_train_state / load_train_state) --------------------------------------

RUN = IRGANConfig(epochs=3)


def train_state(config: IRGANConfig = RUN, **changes) -> dict:
    """A state shaped as irgan.adversarial.irgan.game._state writes it, after one outer epoch, edited."""
    g = torch.Generator().manual_seed(0)
    tables = {"user_emb": torch.randn(4, 3, generator=g), "item_emb": torch.randn(6, 3, generator=g),
              "item_bias": torch.zeros(6)}
    state = {"epoch": 1, "seconds": 2.5, "config": dataclasses.asdict(config), "fingerprint": "abc",
             "generator": tables, "discriminator": dict(tables), "g_opt": {}, "d_opt": {},
             "rng": torch.Generator().get_state(), "fake_items": None, "history": [{"epoch": 0, "g_epoch": 0}],
             "best_generator": {"state": dict(tables), "score": 0.25, "info": {}},
             "best_discriminator": {"state": dict(tables), "score": -math.inf, "info": {}}}
    return {**state, **changes}


@pytest.mark.parametrize("changes", [
    pytest.param({"epoch": 0, "seconds": 0.0}, id="nothing-done-yet"),
    pytest.param({"epoch": 3, "seconds": 0.4}, id="finished-in-under-a-second"),
])
def test_train_state_round_trip_at_the_ends_of_the_run(tmp_path, changes):
    """Any epoch in 0..epochs and any seconds >= 0 resume: a tiny run can finish all its epochs in under a second."""
    path = tmp_path / "train_state.pt"
    save_train_state(path, train_state(**changes))
    got = load_train_state(path, RUN, "abc")
    assert (got["epoch"], got["seconds"]) == (changes["epoch"], changes["seconds"])
    for name, value in train_state()["generator"].items():
        assert torch.equal(got["generator"][name], value) and torch.equal(got["best_generator"]["state"][name], value)


def _nan_best_table(state: dict) -> dict:
    state["best_discriminator"] = {**state["best_discriminator"], "state": {**state["generator"],
                                                                            "item_emb": torch.full((6, 3), math.nan)}}
    return state


@pytest.mark.parametrize("state, reason", [
    pytest.param(train_state(epoch="1"), "it holds 'epoch' of type str, expected int", id="epoch-str"),
    pytest.param({k: v for k, v in train_state().items() if k not in ("epoch", "best_generator")},
                 "it lacks ['best_generator', 'epoch']", id="keys-missing"),
    pytest.param(train_state(seconds=-1.0), "its seconds or best scores are not numbers", id="seconds-negative"),
    pytest.param(train_state(best_generator={**train_state()["best_generator"], "score": math.nan}),
                 "its seconds or best scores are not numbers", id="best-g-score-nan"),
    pytest.param(_nan_best_table(train_state()), "its best_discriminator's item_emb holds NaN or infinite values",
                 id="best-d-table-nan"),
    pytest.param(train_state(rng=torch.zeros(3)), "its rng is not a generator state (a 1-d uint8 tensor)", id="rng"),
    pytest.param(train_state(history=[{"epoch": 0}, "row"]), "its history holds a row that is not a dict",
                 id="history-row"),
])
def test_damaged_train_state_is_refused_in_one_line_naming_the_entry(tmp_path, state, reason):
    path = tmp_path / "train_state.pt"
    save_train_state(path, state)
    with pytest.raises(ValueError) as err:
        load_train_state(path, RUN, "abc")
    assert one_line(err) == f"{path} is a damaged irgan training state: {reason}"


@pytest.mark.parametrize("content", [
    pytest.param({**train_state(), "format": "irgan-train-state-v1"}, id="older-state-same-keys"),
    pytest.param({"format": FORMAT, "estimator": "IRGAN"}, id="model-file"),
    pytest.param([1, 2, 3], id="list"),
])
def test_load_train_state_refuses_what_is_not_a_training_state_of_today(tmp_path, content):
    path = tmp_path / "train_state.pt"
    torch.save(content, path)
    with pytest.raises(ValueError) as err:
        load_train_state(path, RUN, "abc")
    assert one_line(err) == (f"{path} is not an irgan training state (expected format {STATE_FORMAT!r}; a state from "
                             "an older irgan cannot be resumed: start the run again)")


def test_train_state_of_another_run_is_refused_as_such_not_as_damaged(tmp_path):
    """A state at epoch 4 of a 5-epoch run, resumed with epochs=3, is another config; it is not checked
    against the 3 epochs (that would call it damaged). Other data is named as such too."""
    path = tmp_path / "train_state.pt"
    save_train_state(path, train_state(IRGANConfig(epochs=5), epoch=4))
    with pytest.raises(ValueError) as err:
        load_train_state(path, RUN, "abc")
    assert one_line(err) == f"{path} was written with another config (differs in ['epochs']): cannot resume"
    assert load_train_state(path, IRGANConfig(epochs=5), "abc")["epoch"] == 4
    with pytest.raises(ValueError) as err:
        load_train_state(path, IRGANConfig(epochs=5), "other")
    assert one_line(err) == f"{path} was written for other data (different shape or positives): cannot resume"


def test_train_state_written_before_patience_existed_resumes_as_without_patience(tmp_path):
    path = tmp_path / "train_state.pt"
    state = train_state()
    del state["config"]["patience"]
    save_train_state(path, state)
    assert load_train_state(path, RUN, "abc")["config"] == dataclasses.asdict(RUN)  # patience None: never stop early
    with pytest.raises(ValueError) as err:
        load_train_state(path, IRGANConfig(epochs=3, patience=2), "abc")
    assert one_line(err) == f"{path} was written with another config (differs in ['patience']): cannot resume"
