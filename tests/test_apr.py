"""APR (irgan.adversarial.apr): the perturbation and loss against a hand computation, BPR when the
adversary is off, the loop against a plain reference, selection, and the estimator contract."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from helpers import planted
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from irgan.adversarial.apr import (APRConfig, APRRecommender, _initial_model, _Triples, adversarial_perturbation,
                                   apr_objective, fit_apr, row_perturbation)
from irgan.estimator import IRGAN
from irgan.metrics import evaluate
from irgan.models import MatrixFactorization
from irgan.training.objectives import bpr_objective
from irgan.training.sampling import PositiveSet, positive_pairs

FAST = dict(dim=8, lr=0.1, batch_size=32, pretrain_epochs=20, epochs=10, eval_every=2, patience=3, device="cpu")


@pytest.fixture(scope="module")
def data() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """60 users x 40 items in 4 groups; each user likes its group's 10 items: 6 in train, 4 held out."""
    return planted(0, 4, 15, 10, 6)


@pytest.fixture(scope="module")
def fitted(data) -> APRRecommender:
    return APRRecommender(**FAST).fit(data[0], validation=data[1])


# --- the loss and the perturbation, by hand ------------------------------------------------------

# 2 users, 3 items, 2 dimensions; user 0 appears twice and item 1 three times (twice as a negative),
# so each row's perturbation must follow the sum of its gradients over the batch.
P = np.array([[1.0, 0.0], [0.5, 1.0]])
Q = np.array([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.5]])
USERS, POS, NEG = np.array([0, 0, 1]), np.array([0, 2, 1]), np.array([1, 1, 0])
EPS, ADV_REG, L2 = 0.5, 0.7, 0.3


def tiny_model() -> MatrixFactorization:
    return MatrixFactorization.from_arrays(P, Q, np.zeros(3))


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return tuple(torch.as_tensor(a) for a in (USERS, POS, NEG))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


def reference(per_row: bool = True):
    """APR on the tiny model in numpy, triple by triple: Δ per triple (users, pos, neg), the loss,
    and its gradients with Δ held fixed. ``per_row=False``: each occurrence normalised alone (wrong)."""
    g_p, g_q = np.zeros_like(P), np.zeros_like(Q)
    occurrences = []
    for u, i, j in zip(USERS, POS, NEG):  # d softplus(-x) / dx = -sigmoid(-x)
        s = sigmoid(-P[u] @ (Q[i] - Q[j]))
        grads = (-s * (Q[i] - Q[j]), -s * P[u], s * P[u])
        g_p[u] += grads[0]
        g_q[i] += grads[1]
        g_q[j] += grads[2]
        occurrences.append(grads)
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    if per_row:
        delta = [(EPS * unit(g_p[u]), EPS * unit(g_q[i]), EPS * unit(g_q[j])) for u, i, j in zip(USERS, POS, NEG)]
    else:
        delta = [tuple(EPS * unit(g) for g in grads) for grads in occurrences]
    loss, grad_p, grad_q = 0.0, np.zeros_like(P), np.zeros_like(Q)
    for (u, i, j), (du, di, dj) in zip(zip(USERS, POS, NEG), delta):
        x = P[u] @ (Q[i] - Q[j])
        pu, qi, qj = P[u] + du, Q[i] + di, Q[j] + dj
        x_adv = pu @ (qi - qj)
        loss += softplus(-x) + ADV_REG * softplus(-x_adv) + L2 * (P[u] @ P[u] + Q[i] @ Q[i] + Q[j] @ Q[j]) / (3 * 2)
        s, s_adv = sigmoid(-x), sigmoid(-x_adv)
        grad_p[u] += -s * (Q[i] - Q[j]) - ADV_REG * s_adv * (qi - qj) + L2 * 2 * P[u] / 6
        grad_q[i] += -s * P[u] - ADV_REG * s_adv * pu + L2 * 2 * Q[i] / 6
        grad_q[j] += s * P[u] + ADV_REG * s_adv * pu + L2 * 2 * Q[j] / 6
    return [np.stack(d) for d in zip(*delta)], loss, grad_p, grad_q


def test_the_perturbation_is_eps_along_each_rows_summed_gradient():
    expected, _, _, _ = reference()
    got = adversarial_perturbation(tiny_model(), *batch(), EPS)
    for d, e in zip(got, expected):
        np.testing.assert_allclose(d.detach().numpy(), e, rtol=1e-5, atol=1e-7)
    # every row moves by exactly eps, and the same row moves the same way wherever it occurs
    for d in got:
        np.testing.assert_allclose(d.norm(dim=1).numpy(), EPS, rtol=1e-6)
    item_1 = (got[2][0], got[2][1], got[1][2])  # a negative twice, then a positive
    assert all(torch.equal(item_1[0], d) for d in item_1)
    # without an index each row is its own: the unit vector of a zero row is zero
    g = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.0, -0.5]])
    torch.testing.assert_close(row_perturbation(g, 2.0), torch.tensor([[1.2, 1.6], [0.0, 0.0], [0.0, -2.0]]))
    # rows of one index share their sum's direction, in the gradient's own precision
    shared = row_perturbation(g.double(), 2.0, torch.tensor([4, 1, 4]))
    row = 2.0 * np.array([3.0, 3.5]) / np.hypot(3.0, 3.5)  # rows 0 and 2 summed: (3, 3.5)
    torch.testing.assert_close(shared, torch.tensor(np.array([row, [0.0, 0.0], row])))
    # the fixture tells apart normalising each occurrence alone
    wrong, _, _, _ = reference(per_row=False)
    assert not np.allclose(wrong[2], expected[2], atol=1e-3)


def test_the_apr_loss_and_its_gradient_hold_the_perturbation_fixed():
    _, loss, grad_p, grad_q = reference()
    model = tiny_model()
    value = apr_objective(model, *batch(), EPS, ADV_REG, L2)
    value.backward()
    assert value.item() == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(model.user_emb.grad.numpy(), grad_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.item_emb.grad.numpy(), grad_q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eps, adv_reg", [(0.0, 1.0), (0.5, 0.0)])
def test_without_the_adversary_the_loss_is_bprs(eps, adv_reg):
    with_adversary, plain, bpr = tiny_model(), tiny_model(), tiny_model()
    apr_objective(with_adversary, *batch(), 0.5, 1.0).backward()
    value = apr_objective(plain, *batch(), eps, adv_reg)
    value.backward()
    reference_value = bpr_objective(bpr, *batch(), l2=0.0)
    reference_value.backward()
    assert value.item() == pytest.approx(reference_value.item(), rel=1e-6)
    for a, b, c in zip(plain.parameters(), bpr.parameters(), with_adversary.parameters()):
        torch.testing.assert_close(a.grad, b.grad)
    assert not torch.allclose(plain.user_emb.grad, with_adversary.user_emb.grad)


# --- the loop ------------------------------------------------------------------------------------

def test_the_epoch_batches_every_positive_once_with_true_negatives(data):
    train = data[0]
    positives = PositiveSet(train)
    users, items = positive_pairs(train)
    batches = list(_Triples(users, items, positives, 100).epoch(torch.Generator().manual_seed(0)))
    assert [len(b[0]) for b in batches] == [100, 100, 100]  # 360 pairs: the last 60 are dropped
    u, i, j = (torch.cat(parts) for parts in zip(*batches))
    keys = set((u * 40 + i).tolist())
    assert len(keys) == 300 and keys <= set((users * 40 + items).tolist())
    assert not positives.contains(u, j).any()


def reference_loop(train: sp.csr_matrix, config: APRConfig, seed: int) -> tuple[MatrixFactorization, MatrixFactorization]:
    """Plain BPR with torch's Adagrad on irgan.training.objectives.bpr_objective, a new optimizer per phase."""
    generator = torch.Generator().manual_seed(seed)
    positives = PositiveSet(train)
    triples = _Triples(*positive_pairs(train), positives, config.batch_size)
    model = _initial_model(*train.shape, config, seed)
    models = []
    for epochs in (config.pretrain_epochs, config.epochs):
        optimizer = torch.optim.Adagrad([model.user_emb, model.item_emb], lr=config.lr,
                                        initial_accumulator_value=config.adagrad_init)
        for _ in range(epochs):
            for u, i, j in triples.epoch(generator):
                optimizer.zero_grad()
                bpr_objective(model, u, i, j, l2=0.0).backward()
                optimizer.step()
        models.append(MatrixFactorization.from_arrays(model.user_emb.detach(), model.item_emb.detach(),
                                                      model.item_bias.detach()))
    return models[0], models[1]


@pytest.mark.parametrize("off", [{"eps": 0.0}, {"adv_reg": 0.0}])
def test_without_the_adversary_fit_apr_takes_bpr_steps(data, off):
    config = APRConfig(dim=4, batch_size=50, pretrain_epochs=2, epochs=2, **off)
    fit = fit_apr(data[0], config, seed=3, device="cpu")
    start, last = reference_loop(data[0], config, seed=3)
    for got, expected in ((fit.start, start), (fit.model, last)):
        torch.testing.assert_close(got.user_emb, expected.user_emb, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.item_emb, expected.item_emb, rtol=1e-5, atol=1e-6)
        assert not got.item_bias.any()  # the authors' MF has no bias
    adversarial = fit_apr(data[0], APRConfig(dim=4, batch_size=50, pretrain_epochs=2, epochs=2), seed=3, device="cpu")
    torch.testing.assert_close(adversarial.start.user_emb, fit.start.user_emb, rtol=0, atol=0)
    assert not torch.allclose(adversarial.model.user_emb, fit.model.user_emb)


def test_a_seed_fixes_the_fit(data):
    config = APRConfig(dim=4, batch_size=50, pretrain_epochs=2, epochs=2)
    a, b, c = (fit_apr(data[0], config, seed=seed, device="cpu").model for seed in (1, 1, 2))
    assert torch.equal(a.user_emb, b.user_emb) and torch.equal(a.item_emb, b.item_emb)
    assert not torch.equal(a.user_emb, c.user_emb)


def test_apr_beats_random_on_planted_groups(fitted, data):
    train, test = data
    random_p5 = evaluate(np.random.default_rng(0).random(train.shape), train, test, ks=(5,))["P@5"]
    apr_p5 = evaluate(fitted.model_, train, test, ks=(5,))["P@5"]
    assert random_p5 < 0.25 and apr_p5 > 0.6


def test_each_phase_keeps_its_best_validation_epoch(data):
    train, test = data
    model = APRRecommender(**{**FAST, "pretrain_epochs": 200, "epochs": 200}).fit(train, validation=test)
    for phase, chosen in (("bpr", model.best_pretrain_epoch_), ("apr", model.best_epoch_)):
        rows = [r for r in model.history_ if r["phase"] == phase]
        assert [r["epoch"] for r in rows] == list(range(0, 2 * len(rows), 2))
        best = max(rows, key=lambda r: r["P@5"])
        assert chosen == best["epoch"] and rows[-1]["epoch"] == chosen + 6  # patience: three checks without a gain
    assert model.validation_metrics_["P@5"] == pytest.approx(evaluate(model.model_, train, test)["P@5"])
    refit = APRRecommender(**{**FAST, "pretrain_epochs": model.best_pretrain_epoch_,
                              "epochs": model.best_epoch_}).fit(train)
    assert refit.validation_metrics_ is None and refit.best_epoch_ == model.best_epoch_
    torch.testing.assert_close(refit.model_.user_emb, model.model_.user_emb)  # same seed, same epochs


def test_any_cut_off_selects(data):
    train, test = data
    model = APRRecommender(**{**FAST, "select_metric": "NDCG@20"}).fit(train, validation=test)
    rows = [r for r in model.history_ if r["phase"] == "apr"]
    best = max(rows, key=lambda r: r["NDCG@20"])
    assert model.best_epoch_ == best["epoch"]
    # the kept model's figures are its check's, the selection's cut-off among them
    assert model.validation_metrics_ == pytest.approx({k: v for k, v in best.items() if k not in ("phase", "epoch")})


# --- the estimator contract ---------------------------------------------------------------------

def test_save_load_gives_identical_recommendations(fitted, tmp_path):
    fitted.save(tmp_path / "apr.pt")
    same = APRRecommender.load(tmp_path / "apr.pt", device="cpu")
    assert type(same.model_) is MatrixFactorization and type(same.start_) is MatrixFactorization
    users = np.arange(0, 60, 7)
    pd.testing.assert_frame_equal(same.recommend(users, k=5), fitted.recommend(users, k=5))
    assert torch.equal(same.start_.user_emb, fitted.start_.user_emb)
    assert same.get_params() == fitted.get_params() and same.history_ == fitted.history_
    assert (same.best_pretrain_epoch_, same.best_epoch_) == (fitted.best_pretrain_epoch_, fitted.best_epoch_)


def test_clone_keeps_parameters_and_refits_the_same(fitted, data):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "user_items_")
    copy.fit(data[0], validation=data[1])
    pd.testing.assert_frame_equal(copy.recommend([3, 40], k=5), fitted.recommend([3, 40], k=5))


def frame_of(matrix: sp.csr_matrix) -> pd.DataFrame:
    coo = matrix.tocoo()
    return pd.DataFrame({"user": [f"user-{u}" for u in coo.row], "item": [f"film-{i:02d}" for i in coo.col],
                         "rating": 5.0})


def test_raw_ids_survive_save_and_load(data, tmp_path):
    model = APRRecommender(**FAST).fit(frame_of(data[0]))
    top = model.recommend(["user-3", "user-40"], k=3)
    assert top["item"].str.startswith("film-").all()
    assert {int(i[5:]) // 10 for i in top["item"][:3]} == {0} and {int(i[5:]) // 10 for i in top["item"][3:]} == {2}
    model.save(tmp_path / "apr.pt")
    loaded = APRRecommender.load(tmp_path / "apr.pt", device="cpu")
    pd.testing.assert_frame_equal(loaded.recommend(["user-3", "user-40"], k=5), model.recommend(["user-3", "user-40"], k=5))


def test_grid_search_scores_each_fold_and_refits(data):
    positives = frame_of(data[0] + data[1])
    fast = {**FAST, "pretrain_epochs": 5, "epochs": 3}
    search = GridSearchCV(APRRecommender(**fast), {"eps": [0.0, 0.5]}, cv=KFold(3, shuffle=True, random_state=0))
    search.fit(positives)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.isfinite(scores).all() and (scores > 0).all()
    train_rows, test_rows = next(KFold(3, shuffle=True, random_state=0).split(positives))
    one = APRRecommender(**fast, eps=0.5).fit(positives.iloc[train_rows])
    assert search.cv_results_["split0_test_score"][1] == pytest.approx(one.score(positives.iloc[test_rows]))
    assert search.best_estimator_.user_items_.nnz == len(positives)


def test_the_fitted_model_plays_irgans_generator(fitted, data):
    model = IRGAN(generator=fitted.model_, init="random", dim=8, epochs=1, d_epochs=1, g_epochs=1,
                  device="cpu").fit(data[0], validation=data[1])
    assert type(model.generator_.scorer) is MatrixFactorization and model.generator_.scorer.dim == 8


@pytest.mark.parametrize("params, message", [
    ({"eps": -0.1}, "eps must be >= 0"),
    ({"adv_reg": -1.0}, "adv_reg must be >= 0"),
    ({"lr": 0.0}, "lr must be positive"),
    ({"dim": 0}, "dim must be >= 1"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"patience": 0}, "patience must be an integer >= 1 or None"),
    ({"patience": True}, "patience must be an integer >= 1 or None"),
    ({"select_metric": "AUC"}, "select_metric must be one of"),
    ({"epochs": 10**6}, "epochs must be at most"),
    ({"item_bias": "yes"}, "item_bias must be true or false"),
])
def test_bad_parameters_raise_one_line(params, message):
    with pytest.raises(ValueError, match=message):
        APRRecommender(**params)


# --- the defaults, the options the estimator passes on, odd inputs --------------------------------

TINY = APRConfig(dim=4, batch_size=50, pretrain_epochs=2, epochs=2, eval_every=1)


def test_fit_apr_defaults_to_seed_0_the_auto_device_and_no_bar(data, monkeypatch, capsys):
    monkeypatch.setattr("irgan.progress.interactive", lambda: True)  # a bar, if asked for, would show
    default = fit_apr(data[0], TINY)
    assert capsys.readouterr().err == ""
    explicit = fit_apr(data[0], TINY, seed=0, device="auto")
    assert torch.equal(default.model.user_emb, explicit.model.user_emb)
    fit_apr(data[0], TINY, device="cpu", show_progress=True)
    err = capsys.readouterr().err
    assert "BPR" in err and "APR" in err


def test_the_estimator_passes_seed_progress_and_verbose_on(data, monkeypatch, capsys):
    monkeypatch.setattr("irgan.progress.interactive", lambda: True)
    params = dict(dim=4, batch_size=50, pretrain_epochs=2, epochs=2, eval_every=1)
    model = APRRecommender(**params, seed=3, device="cpu", show_progress=True, verbose=True).fit(data[0],
                                                                                                 validation=data[1])
    err = capsys.readouterr().err
    assert "BPR" in err and "irgan.adversarial.apr: apr: best P@5" in err
    expected = fit_apr(data[0], TINY, validation=data[1], seed=3, device="cpu").model
    assert torch.equal(model.model_.user_emb, expected.user_emb)


def test_fit_apr_refuses_no_positives_and_a_misshapen_validation(data):
    with pytest.raises(ValueError, match="^cannot train APR on a matrix with no positives$"):
        fit_apr(sp.csr_matrix((3, 4)), TINY, device="cpu")
    one = fit_apr(sp.csr_matrix(([1.0], ([0], [0])), shape=(3, 4)), TINY, device="cpu")  # one positive is enough
    assert one.model.user_emb.shape == (3, 4)
    with pytest.raises(ValueError, match=r"^validation has shape \(2, 3\), train has shape \(60, 40\)$"):
        fit_apr(data[0], TINY, validation=sp.csr_matrix((2, 3)), device="cpu")


def test_a_user_who_liked_every_item_is_left_out_of_the_triples(data):
    """No negative exists for them: they get no triple, so their vector keeps its start."""
    train = data[0].tolil()
    train[0, :] = 1
    fit = fit_apr(train.tocsr(), TINY, seed=2, device="cpu")
    start = _initial_model(*train.shape, TINY, seed=2)
    torch.testing.assert_close(fit.model.user_emb[0], start.user_emb[0], rtol=0, atol=0)
    assert not torch.equal(fit.model.user_emb[1], start.user_emb[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_apr_trains_and_loads_on_the_device_asked_for(data, tmp_path):
    fit = fit_apr(data[0], TINY, device="cuda")
    assert fit.model.user_emb.device.type == fit.start.user_emb.device.type == "cuda"
    params = dict(dim=4, batch_size=50, pretrain_epochs=2, epochs=2)
    on_cpu = APRRecommender(**params, device="cpu").fit(data[0])  # not "auto", which is CUDA here
    assert on_cpu.model_.user_emb.device.type == on_cpu.start_.user_emb.device.type == "cpu"
    on_cpu.save(tmp_path / "apr.pt")
    loaded = APRRecommender.load(tmp_path / "apr.pt", device="cuda")
    assert loaded.model_.user_emb.device.type == loaded.start_.user_emb.device.type == "cuda"


def test_the_loop_applies_l2_and_learns_the_bias_only_when_asked(data):
    """l2 shrinks the embeddings it penalises; item_bias=True learns a bias that otherwise stays 0."""
    plain = fit_apr(data[0], TINY, seed=1, device="cpu").model
    shrunk = fit_apr(data[0], APRConfig(**{**TINY.__dict__, "l2": 50.0}), seed=1, device="cpu").model
    assert shrunk.item_emb.norm() < 0.9 * plain.item_emb.norm()
    assert not plain.item_bias.any()
    biased = fit_apr(data[0], APRConfig(**{**TINY.__dict__, "item_bias": True}), seed=1, device="cpu").model
    assert biased.item_bias.abs().min() > 0


def test_the_start_is_normal_truncated_at_two_standard_deviations():
    """The authors' start: N(0, init_std) cut at ±2 init_std, whose spread is 0.88 init_std."""
    std = 0.03
    model = _initial_model(300, 200, APRConfig(dim=64, init_std=std), seed=0)
    for table in (model.user_emb.detach(), model.item_emb.detach()):
        assert table.abs().max() <= 2 * std and table.max() > 1.95 * std and table.min() < -1.95 * std
        assert table.std().item() == pytest.approx(0.8796 * std, rel=0.03)
    assert not model.item_bias.any()


def test_a_seeded_fit_leaves_torchs_global_generator_alone(data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit_apr(data[0], TINY, seed=0, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_apr_config_checks_its_counts_in_one_line_and_takes_numpy_integers():
    """Each count's bound, the line naming it; patience 1 is a patience, a grid's numpy integer becomes an int."""
    import numpy as np

    from irgan.adversarial.apr import APRConfig
    from irgan.config import MAX_COUNT

    assert APRConfig(patience=1).patience == 1
    drawn = APRConfig(patience=np.int64(3)).patience
    assert type(drawn) is int and drawn == 3
    assert APRConfig(pretrain_epochs=0, epochs=0).pretrain_epochs == 0  # no BPR phase: a count may be 0
    for field, bad, bound in (("batch_size", 0, 1), ("eval_every", 0, 1), ("dim", 0, 1), ("pretrain_epochs", -1, 0),
                              ("epochs", -1, 0)):
        with pytest.raises(ValueError) as err:
            APRConfig(**{field: bad})
        assert str(err.value) == f"{field} must be >= {bound}, got {bad}"
    for field in ("pretrain_epochs", "epochs"):  # epoch counts are bounded, as every count a file or flag can set
        with pytest.raises(ValueError) as err:
            APRConfig(**{field: MAX_COUNT + 1})
        assert str(err.value) == f"{field} must be at most {MAX_COUNT:,}, got {MAX_COUNT + 1}"
