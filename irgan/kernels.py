"""Compiled CPU kernels (numba) for the hot loops: G's softmax for a batch of users (logits,
exp, sums, expected item and the draws, row by row in cache), D's SGD step over pairs, the
evaluation's top k and first-hit ranks, membership in a user's positives, DNS's best candidate,
and D's minibatches in index order.

Each kernel does in one read what the torch path (``irgan.training.fast_mf``, ``policy``,
``sampling`` and ``metrics``: the reference the tests compare against) does in several full passes
or in per-pair scatters: RESULTS.md ("Compiled kernels") has the measurements. ``enabled(tensor)``
says whether a tensor takes them: numba is installed with irgan, the tensor is on the CPU, and
``use(False)`` has not switched them off. They are deterministic; kernels over independent rows
split them over ``threads()`` threads (torch's count, kept for them by ``serial_torch`` while
torch's own operations run on one) with the same result for any count.
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Iterator

import numpy as np
import torch

try:
    import numba
except ImportError:  # pragma: no cover - numba is in install_requires; the torch path still works without it
    numba = None

_ON = numba is not None


def enabled(tensor: torch.Tensor) -> bool:
    """Whether work on ``tensor`` goes through the compiled kernels."""
    return _ON and tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64, torch.int32, torch.int64)


@contextlib.contextmanager
def use(on: bool) -> Iterator[None]:
    """Switch the kernels on or off inside a ``with`` block (off: the torch reference path)."""
    global _ON
    before, _ON = _ON, on and numba is not None
    try:
        yield
    finally:
        _ON = before


# Kernels over a model's parameters may assume them finite (all fast-math flags: a NaN there is
# caught by the game's divergence check at the end of the outer epoch); kernels over scores a user's
# model gave keep NaN and infinity as they are (-inf marks excluded items, NaN must be noticed).
FINITE, NOT_FINITE = True, {"reassoc", "contract", "arcp", "nsz", "afn"}


def _jit(function=None, *, fastmath=FINITE):
    if function is None:
        return lambda f: _jit(f, fastmath=fastmath)
    return numba.njit(cache=True, fastmath=fastmath, nogil=True)(function) if numba is not None else function


_POOL: list[ThreadPoolExecutor] = []
_SERIAL = {"depth": 0, "threads": 1}  # inside ``serial_torch``: how deep, and the count the kernels keep
_SERIAL_LOCK = threading.Lock()


def threads() -> int:
    """Threads the kernels split rows over: torch's count (``torch.set_num_threads``), or inside
    ``serial_torch`` the count torch had on entry."""
    return _SERIAL["threads"] if _SERIAL["depth"] else torch.get_num_threads()


def serial_torch(function):
    """Decorate a training function: while it runs, torch's own operations use one thread and the
    kernels split their rows over the threads torch had; the count is put back after. Where the
    kernels do the work, torch's small parallel operations gain little, and the OpenMP threads they
    wake keep spinning on the cores the kernels' threads need: on ml-100k two threads were no faster
    than one before this, often slower, and a quarter faster after (RESULTS.md). The count is the
    process's: other threads' torch operations run on one thread meanwhile too. Results do not
    change: torch then runs as with one thread, and the kernels give the same rows on any count."""
    @functools.wraps(function)
    def serially(*args, **kwargs):
        with _SERIAL_LOCK:
            if _SERIAL["depth"] == 0:
                _SERIAL["threads"] = torch.get_num_threads()
                torch.set_num_threads(1)
            _SERIAL["depth"] += 1
        try:
            return function(*args, **kwargs)
        finally:
            with _SERIAL_LOCK:
                _SERIAL["depth"] -= 1
                if _SERIAL["depth"] == 0:
                    torch.set_num_threads(_SERIAL["threads"])
    return serially


def _over_rows(kernel, n_rows: int, *args, part: bool = False) -> None:
    """``kernel(*args, start, stop)`` on runs of rows split over ``threads()`` threads: the kernels
    release the GIL, and each row's result is the same for any count. Python threads rather than
    numba's own: its parallel kernels took seconds more to compile each, and its OpenMP layer reset
    torch's thread count (one thread became two). With ``part``, ``kernel(*args, index of the run,
    start, stop)``, for a kernel keeping sums per run (``row_runs(n_rows)`` of them)."""
    bounds = _parts(n_rows, row_runs(n_rows))
    _run_all([(lambda i=i: kernel(*args, i, bounds[i], bounds[i + 1])) if part else
              (lambda i=i: kernel(*args, bounds[i], bounds[i + 1])) for i in range(len(bounds) - 1)])


def _run_all(tasks: list) -> None:
    """Call every task (independent kernel calls), on the calling thread and up to ``threads()`` - 1
    of the pool's, each taking the next task left: the caller starts at once, and a pool thread slow
    to wake takes fewer."""
    helpers = min(threads(), os.cpu_count() or 1, len(tasks)) - 1
    left = iter(tasks)  # next() on it is atomic under the GIL: each task is taken once

    def drain() -> None:
        for task in left:
            task()
    if helpers > 0 and not _POOL:
        _POOL.append(ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="irgan-kernels"))
    later = [_POOL[0].submit(drain) for _ in range(max(0, helpers))]
    try:
        drain()
    finally:
        for future in later:
            future.result()


def row_runs(n_rows: int) -> int:
    """How many runs ``_over_rows`` splits ``n_rows`` rows into: one per thread (``threads()``), four per thread
    when there are several (uneven rows even out), at most one per row and at least one."""
    count = max(1, min(threads(), os.cpu_count() or 1, n_rows))
    return 1 if count == 1 else min(n_rows, 4 * count)


def _parts(n: int, parts: int) -> np.ndarray:
    """Bounds splitting range(n) into ``parts`` near-equal runs (n when fewer rows; one, empty, for none)."""
    return np.linspace(0, n, max(1, min(n, parts)) + 1).astype(np.int64)


# Cephes' single-precision exp: exp(x) = 2^k exp(r), |r| <= ln 2 / 2, exp(r) by a degree-7
# polynomial, 2^k written into a float's exponent bits. Written out so that the loop vectorizes
# (numba's math.exp is one libm call per element, 10x slower here); within 2 ulp of torch.exp.
_LOG2E, _LN2_HI, _LN2_LO = 1.44269504088896341, 0.693359375, -2.12194440e-4
_EXP_LOW = -87.3  # below this exp(x) is under float32's smallest normal: the result is then 0


LANES = 16  # independent running maxima: numba's max() over a loop does not vectorize, 16 lanes do
BLOCK = 16  # columns per block sum: draws walk the block sums, then one block's columns


@_jit
def _row_max(row, lanes):
    """max(row), through LANES running maxima (five times faster here than one)."""
    n = row.shape[0]
    lanes[:] = row[0]
    for b in range(0, n - LANES + 1, LANES):
        for j in range(LANES):
            v = row[b + j]
            lanes[j] = v if v > lanes[j] else lanes[j]
    top = lanes[0]
    for j in range(LANES):
        top = lanes[j] if lanes[j] > top else top
    for i in range(n - n % LANES, n):
        top = row[i] if row[i] > top else top
    return top


@_jit
def _exp_shifted(x, shift, bits, blocks):
    """x[i] = exp(x[i] - shift) (float32, x <= shift); blocks[b] the sum of x's b-th BLOCK of
    columns after it; returns their total. ``bits`` an int32 scratch as long as x."""
    _exp_in_place(x, shift, bits)
    return _block_sums_row(x, blocks)


@_jit
def _exp_in_place(x, shift, bits):
    """x[i] = exp(x[i] - shift) for float32 x <= shift; ``bits`` an int32 scratch as long as x."""
    scale = bits.view(np.float32)
    for i in range(x.shape[0]):
        v = max(x[i] - shift, np.float32(_EXP_LOW))
        k = np.floor(v * np.float32(_LOG2E) + np.float32(0.5))
        t = v - k * np.float32(_LN2_HI) - k * np.float32(_LN2_LO)
        y = ((((np.float32(1.9875691500e-4) * t + np.float32(1.3981999507e-3)) * t + np.float32(8.3334519073e-3)) * t
              + np.float32(4.1665795894e-2)) * t + np.float32(1.6666665459e-1)) * t + np.float32(5.0000001201e-1)
        x[i] = (y * t * t + t + np.float32(1)) * (x[i] - shift >= np.float32(_EXP_LOW))
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)
    for i in range(x.shape[0]):
        x[i] *= scale[i]


@_jit
def _block_sums_row(x, blocks):
    """blocks[b] = sum of x's b-th BLOCK of columns; returns their total."""
    total = np.float32(0)
    full = x.shape[0] // BLOCK
    for b in range(full):
        block = np.float32(0)
        for j in range(BLOCK):  # a constant trip count: unrolled into vector adds
            block += x[b * BLOCK + j]
        blocks[b] = block
        total += block
    if full < blocks.shape[0]:
        block = np.float32(0)
        for i in range(full * BLOCK, x.shape[0]):
            block += x[i]
        blocks[full] = block
        total += block
    return total


@_jit
def _log1p_unit(t):
    """log(1 + t) for t in [0, 1], float64: 2 atanh(s), s = t / (2 + t) <= 1/3, by its series to s^15
    (relative error under 2e-9), written out so that a loop over it vectorizes."""
    s = t / (2.0 + t)
    q = s * s
    return 2.0 * s * (1.0 + q * (1 / 3 + q * (1 / 5 + q * (1 / 7 + q * (1 / 9 + q * (1 / 11 + q * (1 / 13 + q / 15)))))))


CHUNK = 256  # D's pairs per chunk: gathered, then their exp/log in one vector loop, then scattered


@_jit
def _pointwise_sgd(users, first, second, labels, user_emb, item_emb, item_bias, lr, l2, user_grad, user_n, item_grad):
    """D's summed BCE gradient over the pairs from the parameters before the step: (users[p],
    first[p], labels[p]) when ``labels`` is given; else each triple k's (users[k], first[k], 1) and
    (users[k], second[k], 0), side by side. The users' rows stepped in place (each shrunk as n SGD
    steps of its L2 would), the items' gradients and counts added to ``item_grad`` (n_items, dim + 2).
    ``user_grad``/``user_n`` are zero scratch, left zero; a run of pairs of one user (the pairs come
    grouped by user) sums its gradient in ``running`` before one write. Returns the loss, BCE plus
    l2/2 of the squared rows per pair (float64)."""
    dim = user_emb.shape[1]
    given = labels.shape[0] > 0
    n_pairs = labels.shape[0] if given else 2 * users.shape[0]
    xs = np.empty(CHUNK, np.float32)
    ts = np.empty(CHUNK, np.float32)
    gs = np.empty(CHUNK, np.float32)
    us = np.empty(CHUNK, np.int64)
    items = np.empty(CHUNK, np.int64)
    ys = np.empty(CHUNK, np.float32)
    bits = np.empty(CHUNK, np.int32)
    running = np.zeros(dim, np.float32)
    current = -1
    loss = 0.0
    penalty = 0.0
    for c in range(0, n_pairs, CHUNK):
        m = min(CHUNK, n_pairs - c)
        for j in range(m):
            p = c + j
            if given:
                u, i, label = users[p], first[p], labels[p]
            else:
                k, is_first = p >> 1, (p & 1) == 0
                u, i, label = users[k], first[k] if is_first else second[k], np.float32(1 if is_first else 0)
            us[j], items[j], ys[j] = u, i, label
            x = item_bias[i]
            square = item_bias[i] * item_bias[i]
            for d in range(dim):
                x += user_emb[u, d] * item_emb[i, d]
                square += user_emb[u, d] * user_emb[u, d] + item_emb[i, d] * item_emb[i, d]
            penalty += square
            xs[j] = x
            ts[j] = -abs(x)
        _exp_in_place(ts[:m], np.float32(0), bits[:m])  # t = exp(-|x|)
        for j in range(m):  # BCE with logits, stable: max(x, 0) - label x + log(1 + t)
            x, t, label = xs[j], ts[j], ys[j]
            loss += max(x, np.float32(0)) - label * x + _log1p_unit(np.float64(t))
            gs[j] = (np.float32(1) if x >= 0 else t) / (np.float32(1) + t) - label  # sigmoid(x) - label
        for j in range(m):
            u, i, g = us[j], items[j], gs[j]
            if u != current:
                for d in range(dim):  # element by element: numba's slice copies cost more than the sums
                    if current >= 0:
                        user_grad[current, d] = running[d]
                    running[d] = user_grad[u, d]
                current = u
            for d in range(dim):
                running[d] += g * item_emb[i, d]
                item_grad[i, d] += g * user_emb[u, d]
            item_grad[i, dim] += g
            item_grad[i, dim + 1] += 1
            user_n[u] += 1
    if current >= 0:
        for d in range(dim):
            user_grad[current, d] = running[d]
    most = 0
    for p in range(users.shape[0]):  # every user a pair has
        most = max(most, user_n[users[p]])
    shrinks = np.empty(most + 1)  # (1 - lr l2)^n by table: a power per user costs more than its update
    shrinks[0] = 1.0
    for n in range(1, most + 1):
        shrinks[n] = shrinks[n - 1] * (1.0 - lr * l2)
    for p in range(users.shape[0]):
        u = users[p]
        n = user_n[u]
        if n == 0:
            continue
        shrink = shrinks[n]
        for d in range(dim):
            user_emb[u, d] = shrink * user_emb[u, d] - lr * user_grad[u, d]
            user_grad[u, d] = 0.0
        user_n[u] = 0
    return loss + l2 * penalty / 2


def pointwise_sgd(user_emb: torch.Tensor, item_emb: torch.Tensor, item_bias: torch.Tensor, users: torch.Tensor,
                  items: torch.Tensor, labels: torch.Tensor | None, lr: float, l2: float, scratch: dict,
                  fake: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
    """One SGD step of D's pointwise loss (``fast_mf.pointwise_loss``) on MF tables (float32, no
    grad): user rows stepped in place, the items' summed gradient and their counts in the batch,
    [item_emb | item_bias | count] (n_items, dim + 2), returned for the caller to sum over processes
    (in one call) and apply. The pairs are (users, items, labels); or, with ``labels`` None, each
    triple's (users[k], items[k], 1) and (users[k], fake[k], 0) side by side, as ``DUpdate.triples``
    orders a full step, read where they are. ``scratch`` keeps the zeroed user buffers between calls."""
    if scratch.get("shape") != tuple(user_emb.shape):
        scratch.update(shape=tuple(user_emb.shape), grad=np.zeros(tuple(user_emb.shape), user_emb.numpy().dtype),
                       n=np.zeros(user_emb.shape[0], np.int64))
    item_grad = torch.zeros(item_emb.shape[0], item_emb.shape[1] + 2, dtype=user_emb.dtype)
    pairs = (users, items, torch.zeros(0, dtype=torch.long), labels.to(torch.float32)) if labels is not None \
        else (users, items, fake, torch.zeros(0))
    loss = _pointwise_sgd(*(t.numpy() for t in pairs), user_emb.numpy(), item_emb.numpy(), item_bias.numpy(), lr, l2,
                          scratch["grad"], scratch["n"], item_grad.numpy())
    return float(loss), item_grad


@_jit
def _bpr_sgd(users_ext, items_ext, users, pos, neg, batch, lr, l2, p, qi, qj, g):
    """``fast_mf.bpr_sgd_step`` on each run of ``batch`` triples in turn: the gradients from the
    tables as the batch found them (held in the scratch p, qi, qj, g), then the users' rows (but
    their constant column) and the items' stepped, repeated rows adding up as ``index_add_``."""
    width = users_ext.shape[1]
    for s in range(0, users.shape[0], batch):
        m = min(batch, users.shape[0] - s)
        for t in range(m):
            x = np.float32(0)
            for d in range(width):
                p[t, d], qi[t, d], qj[t, d] = users_ext[users[s + t], d], items_ext[pos[s + t], d], items_ext[neg[s + t], d]
                x += p[t, d] * (qi[t, d] - qj[t, d])
            g[t] = lr / (np.float32(1) + np.exp(x))  # -lr d/dx of -log sigmoid(x)
        for t in range(m):
            for d in range(width - 1):
                users_ext[users[s + t], d] += g[t] * (qi[t, d] - qj[t, d]) - lr * l2 * p[t, d]
        for t in range(m):
            for d in range(width):
                items_ext[pos[s + t], d] += g[t] * p[t, d] - lr * l2 * qi[t, d]
        for t in range(m):
            for d in range(width):
                items_ext[neg[s + t], d] += -g[t] * p[t, d] - lr * l2 * qj[t, d]


def bpr_sgd(users_ext: torch.Tensor, items_ext: torch.Tensor, users: torch.Tensor, pos: torch.Tensor,
            neg: torch.Tensor, batch_size: int, lr: float, l2: float) -> None:
    """One pass of BPR's SGD over (users, pos, neg) in batches of ``batch_size`` on packed MF
    tables ([user_emb | 1], [item_emb | item_bias], float32), in place: ``fast_mf.bpr_sgd_step``
    per batch, without a dozen tensor operations per step."""
    width = users_ext.shape[1]
    scratch = [np.empty((batch_size, width), np.float32) for _ in range(3)]
    _bpr_sgd(users_ext.numpy(), items_ext.numpy(), users.numpy(), pos.numpy(), neg.numpy(), batch_size,
             np.float32(lr), np.float32(l2), *scratch, np.empty(batch_size, np.float32))


@_jit
def _draw_row(row, blocks, total, u, out, picked, prefix, guide):
    """out[k] = the first column of ``row`` whose running sum exceeds u[k] total (u in [0, 1)), and
    picked[k] its value in ``row``. Each draw starts at the block a guide table names for its
    uniform (Chen's indexed search: about two block steps a draw, in any order, no sort), then
    walks that block's columns; a threshold left at the total by rounding takes the last column
    with weight. ``prefix`` (float64) and ``guide`` (int64) are scratch, one longer than / as long
    as ``blocks``."""
    k = u.shape[0]
    if k == 0:
        return
    n, n_blocks = row.shape[0], blocks.shape[0]
    running = 0.0
    prefix[0] = 0.0
    for b in range(n_blocks):  # prefix[b + 1]: the running sum to the end of block b
        running += blocks[b]
        prefix[b + 1] = running
    b = 0
    for c in range(n_blocks):  # guide[c]: the first block whose end passes the start of cell c
        start = c * total / n_blocks
        while b < n_blocks - 1 and prefix[b + 1] <= start:
            b += 1
        guide[c] = b
    last = n - 1
    while last > 0 and row[last] <= 0:
        last -= 1
    for j in range(k):
        x = u[j] * total
        b = guide[min(int(u[j] * n_blocks), n_blocks - 1)]
        while b > 0 and prefix[b] > x:  # rounding put x before its cell's start
            b -= 1
        while b < n_blocks - 1 and prefix[b + 1] <= x:
            b += 1
        column = -1
        while column < 0 and b < n_blocks:
            within, end, passed = prefix[b], min((b + 1) * BLOCK, n), 0
            for i in range(b * BLOCK, end):  # no branch: the running sums below x, counted
                within += row[i]
                passed += within <= x
            if b * BLOCK + passed < end:
                column = b * BLOCK + passed
            b += 1
            while b < n_blocks and prefix[b + 1] <= x:  # rounding: the block's sums never passed x
                b += 1
        column = last if column < 0 else column
        out[j] = column
        picked[j] = row[column]


@_jit
def _row_scratch(n):
    """Scratch for rows of n columns: the exp's bits, the max's lanes, the block sums, their running
    sums and the draws' guide table."""
    blocks = np.empty(-(-n // BLOCK), np.float32)
    return (np.empty(n, np.int32), np.empty(LANES, np.float32), blocks, np.empty(blocks.shape[0] + 1),
            np.empty(blocks.shape[0], np.int64))


@_jit
def _softmax_draws_row(r, users_ext, items_t, inv_t, e, m, z, expected, starts, counts, u, draws, picked, scratch):
    """Row r of ``_mf_softmax``: its softmax (``_softmax_row``), then its counts[r] draws (``_draw_row``
    with u[starts[r]:][:counts[r]]) while it is in cache."""
    bits, lanes, blocks, prefix, guide = scratch
    _softmax_row(users_ext[r], items_t, inv_t, e[r], m, z, expected[r], r, bits, lanes, blocks)
    s, end = starts[r], starts[r] + counts[r]
    _draw_row(e[r], blocks, float(z[r]), u[s:end], draws[s:end], picked[s:end], prefix, guide)


@_jit
def _mf_softmax(users_ext, items_t, inv_t, e, m, z, expected, starts, counts, u, draws, picked, first, stop):
    """Per row r: e[r] = exp(l - max l) for l = users_ext[r] . items_t / T, its max m[r], its sum
    z[r], expected[r] = sum_i e[r, i] items_t[:, i] / z[r], and counts[r] draws from it (``_draw_row``
    with u[starts[r]:][:counts[r]]): all while the row stays in cache; rows first..stop-1."""
    scratch = _row_scratch(items_t.shape[1])
    for r in range(first, stop):
        _softmax_draws_row(r, users_ext, items_t, inv_t, e, m, z, expected, starts, counts, u, draws, picked, scratch)


WIDTH = 8  # the item table's columns are read 8 at a time: one pass writes a row's logits, one reads its expected item


@_jit
def _softmax_row(user, items_t, inv_t, row, m, z, expected, r, bits, lanes, blocks):
    """Row r of ``_mf_softmax``: the logits written into ``row``, then exp(l - max) in place, its
    sum and the expected item. ``items_t`` has a multiple of WIDTH rows (zeros past the table's)."""
    n = items_t.shape[1]
    for g in range(0, items_t.shape[0], WIDTH):
        c0, c1, c2, c3 = items_t[g], items_t[g + 1], items_t[g + 2], items_t[g + 3]
        c4, c5, c6, c7 = items_t[g + 4], items_t[g + 5], items_t[g + 6], items_t[g + 7]
        w0, w1, w2, w3 = user[g] * inv_t, user[g + 1] * inv_t, user[g + 2] * inv_t, user[g + 3] * inv_t
        w4, w5, w6, w7 = user[g + 4] * inv_t, user[g + 5] * inv_t, user[g + 6] * inv_t, user[g + 7] * inv_t
        first = g == 0
        for i in range(n):
            v = (w0 * c0[i] + w1 * c1[i] + w2 * c2[i] + w3 * c3[i]) + (w4 * c4[i] + w5 * c5[i] + w6 * c6[i] + w7 * c7[i])
            row[i] = v if first else row[i] + v
    top = _row_max(row, lanes)
    total = _exp_shifted(row, top, bits, blocks)
    m[r], z[r] = top, total
    for g in range(0, items_t.shape[0], WIDTH):
        c0, c1, c2, c3 = items_t[g], items_t[g + 1], items_t[g + 2], items_t[g + 3]
        c4, c5, c6, c7 = items_t[g + 4], items_t[g + 5], items_t[g + 6], items_t[g + 7]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(0)
        for i in range(n):
            v = row[i]
            a0 += v * c0[i]
            a1 += v * c1[i]
            a2 += v * c2[i]
            a3 += v * c3[i]
            a4 += v * c4[i]
            a5 += v * c5[i]
            a6 += v * c6[i]
            a7 += v * c7[i]
        expected[g], expected[g + 1], expected[g + 2], expected[g + 3] = a0 / total, a1 / total, a2 / total, a3 / total
        expected[g + 4], expected[g + 5], expected[g + 6], expected[g + 7] = a4 / total, a5 / total, a6 / total, a7 / total


def _softmax_arrays(users_ext: torch.Tensor, items_ext: torch.Tensor, out: torch.Tensor | None) -> tuple:
    """What the softmax kernels write and read for a batch: e (B, n) (in ``out`` when given), m and z
    (B,), the expected item rows (B, width), and the tables padded to width, a multiple of WIDTH
    columns: users (B, width) and items transposed (width, n)."""
    B, n, k = users_ext.shape[0], items_ext.shape[0], items_ext.shape[1]
    e = torch.empty(B, n, dtype=torch.float32) if out is None else out.view(-1)[:B * n].view(B, n)
    width = -(-k // WIDTH) * WIDTH
    users_wide, items_t = torch.zeros(B, width, dtype=torch.float32), torch.zeros(width, n, dtype=torch.float32)
    users_wide[:, :k], items_t[:k] = users_ext, items_ext.T
    m, z, expected = (torch.empty(shape, dtype=torch.float32) for shape in ((B,), (B,), (B, width)))
    return e, m, z, expected, users_wide, items_t


def mf_softmax(users_ext: torch.Tensor, items_ext: torch.Tensor, temperature: float,
               counts: torch.Tensor | None = None, generator: torch.Generator | None = None,
               out: torch.Tensor | None = None):
    """softmax(users_ext @ items_ext.T / temperature) kept as (e, m, z) with p = e / z, the expected
    item row under it, and, with ``counts``, counts[r] draws from row r (``sampling.sample_rows``'s
    rule and uniforms) with e at each: (B, n) (B,) (B,) (B, dim + 1) (counts.sum(),) (counts.sum(),);
    float32 (the model's tables).
    ``out``, a float32 buffer of at least B x n elements, holds e when given."""
    B, k = users_ext.shape[0], items_ext.shape[1]
    e, m, z, expected, users_wide, items_t = _softmax_arrays(users_ext, items_ext, out)
    if counts is None:
        counts = torch.zeros(B, dtype=torch.long)
    starts, u, draws, picked = _draw_arrays(counts, generator)
    _over_rows(_mf_softmax, B, users_wide.numpy(), items_t.numpy(), np.float32(1 / temperature), e.numpy(), m.numpy(),
               z.numpy(), expected.numpy(), starts, counts.numpy(), u, draws.numpy(), picked.numpy())
    return e, m, z, expected[:, :k], draws, picked


def _draw_arrays(counts: torch.Tensor, generator: torch.Generator | None) -> tuple:
    """For counts[r] draws from each row r: each row's first draw's index, the uniforms (drawn as
    float32 from ``generator``, as ``sampling.sample_rows`` draws them; float64 as the kernels read
    them), and the columns drawn and their values, (counts.sum(),) each, for the kernel to write."""
    u = torch.rand(int(counts.sum()), dtype=torch.float32, generator=generator)
    return ((counts.cumsum(0) - counts).numpy(), u.to(torch.float64).numpy(), torch.empty(len(u), dtype=torch.long),
            torch.empty(len(u), dtype=torch.float32))


@_jit
def _g_step(users_ext, items_t, items_ext, inv_t, e, m, z, expected, starts, counts, u, draws, picked, coin, offsets,
            mix, users, pos_starts, pos_counts, pos_items, member, d_users, d_items, d_bias, paper, snis, rewards, weights,
            c, sparse_user, sparse, part, first, stop):
    """Rows first..stop-1 of ``g_step``: each row's softmax and draws as ``_mf_softmax``, then, while
    the row is in cache, the mixture's picks among the user's positives, p and the proposal at each
    draw, D's reward, the weights, their sum c[r], sum_k w_k item_k (``sparse_user[r]``) and
    sum_k w_k e_(item_k) (x) user[r], added to ``sparse[part]`` (n, k), this run's own sums. ``member``:
    the positives as a dense (n_users, n_items) mask, or an empty one (then a search in pos_items)."""
    k_ext = items_ext.shape[1]
    scratch = _row_scratch(items_t.shape[1])
    most = 0
    for r in range(first, stop):
        most = max(most, counts[r])
    xs, ts, ratio = np.empty(most, np.float32), np.empty(most, np.float32), np.empty(most, np.float32)
    draw_bits = np.empty(most, np.int32)
    scatter = sparse[part]
    keep = np.float32(1) - mix
    for r in range(first, stop):
        _softmax_draws_row(r, users_ext, items_t, inv_t, e, m, z, expected, starts, counts, u, draws, picked, scratch)
        row, s, count = e[r], starts[r], counts[r]
        user, total = users[r], z[r]
        low, n_pos = pos_starts[user], pos_counts[user]
        for j in range(count):
            item, e_at = draws[s + j], picked[s + j]
            if coin[s + j] < mix:
                item = pos_items[low + min(np.int64(offsets[s + j] * np.float32(n_pos)), n_pos - 1)]
                e_at = row[item]
                draws[s + j] = item
            is_pos = member[user, item] if member.shape[0] else _among(pos_items, low, n_pos, item)
            p = e_at / total
            q = keep * p + (mix / np.float32(n_pos) if is_pos else np.float32(0))
            ratio[j] = p / q
            x = d_bias[item]
            for d in range(d_users.shape[1]):
                x += d_users[user, d] * d_items[item, d]
            xs[j], ts[j] = x, -abs(x)
        _exp_in_place(ts[:count], np.float32(0), draw_bits[:count])  # t = exp(-|x|)
        ratios = 0.0
        for j in range(count):
            x, t = xs[j], ts[j]
            if paper:  # log(1 + exp(x))
                reward = max(x, np.float32(0)) + np.float32(_log1p_unit(np.float64(t)))
            else:  # 2 (sigmoid(x) - 1/2)
                reward = (np.float32(1) - t) / (np.float32(1) + t) * (np.float32(1) if x >= 0 else np.float32(-1))
            rewards[s + j] = reward
            weights[s + j] = reward * ratio[j]
            ratios += ratio[j]
        denominator = ratios if snis else np.float64(count)
        row_sum = np.float32(0)
        sparse_user[r] = 0
        for j in range(count):
            w = np.float32(weights[s + j] / denominator)
            weights[s + j] = w
            row_sum += w
            item = draws[s + j]
            for d in range(k_ext):
                sparse_user[r, d] += w * items_ext[item, d]
                scatter[item, d] += w * users_ext[r, d]
        c[r] = row_sum


def g_step(users_ext: torch.Tensor, items_ext: torch.Tensor, temperature: float, counts: torch.Tensor,
           generator: torch.Generator | None, out: torch.Tensor | None, mix: float, users: torch.Tensor,
           positives, d_users: torch.Tensor, d_items: torch.Tensor, d_bias: torch.Tensor, reward: str,
           estimator: str) -> dict[str, torch.Tensor]:
    """G's policy-gradient pass for a batch of ``users`` on MF tables, D an MF too, in one read of
    each softmax row: ``mf_softmax``, the draws from the mixture (1 - mix) p + mix uniform(positives),
    D's ``reward`` ('code' or 'paper') at each and the ``estimator``'s weights ('reinforce' or
    'snis'), as ``game._g_draws`` makes them from the same uniforms of ``generator`` (the draws, the
    coin flips, the positives' picks); with the sparse parts of the gradient
    ``fast_mf.policy_gradient_loss`` forms: c (B,) the rows' weight sums, ``sparse_user`` (B, k)
    sum_k w_k item_k and ``sparse_item`` (n, k) sum_k w_k e_(item_k) (x) user_(row k).
    ``positives`` is a ``sampling.PositiveSet``."""
    B, n, k = users_ext.shape[0], items_ext.shape[0], items_ext.shape[1]
    e, m, z, expected, users_wide, items_t = _softmax_arrays(users_ext, items_ext, out)
    sparse_user = torch.empty(B, users_wide.shape[1], dtype=torch.float32)
    starts, u, draws, picked = _draw_arrays(counts, generator)
    N = len(draws)
    coin = torch.rand(N, dtype=torch.float32, generator=generator)
    offsets = torch.rand(N, dtype=torch.float32, generator=generator)
    rewards, weights, c = (torch.empty(size, dtype=torch.float32) for size in (N, N, B))
    sparse = np.zeros((row_runs(B), n, k), np.float32)
    member = positives.dense.numpy() if positives.dense is not None else np.zeros((0, 0), np.bool_)
    _over_rows(_g_step, B, users_wide.numpy(), items_t.numpy(), items_ext.contiguous().numpy(), np.float32(1 / temperature),
               e.numpy(), m.numpy(), z.numpy(), expected.numpy(), starts, counts.numpy(), u, draws.numpy(),
               picked.numpy(), coin.numpy(), offsets.numpy(),
               np.float32(mix), users.numpy(), positives.starts.numpy(), positives.counts.numpy(),
               positives.items.numpy(), member, d_users.numpy(), d_items.numpy(), d_bias.numpy(), reward == "paper",
               estimator == "snis", rewards.numpy(), weights.numpy(), c.numpy(), sparse_user.numpy(), sparse, part=True)
    return {"e": e, "m": m, "z": z, "expected": expected[:, :k], "items": draws, "rewards": rewards,
            "weights": weights, "c": c, "sparse_user": sparse_user[:, :k], "sparse_item": torch.from_numpy(sparse.sum(0))}


@_jit
def _draw(e, starts, counts, z, u, out):
    _, _, blocks, prefix, guide = _row_scratch(e.shape[1])
    picked = np.empty(u.shape[0], e.dtype)
    for r in range(e.shape[0]):
        if counts[r]:
            _block_sums_row(e[r], blocks)
            s = starts[r]
            _draw_row(e[r], blocks, z[r], u[s:s + counts[r]], out[s:s + counts[r]], picked[s:s + counts[r]], prefix, guide)


def draw(e: torch.Tensor, z: torch.Tensor, counts: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``sampling.sample_rows(e, counts)`` on the kernels, given the rows' sums z: the same uniforms
    from ``generator``, the same rule (the first column whose cumulative sum exceeds u z)."""
    u = torch.rand(int(counts.sum()), dtype=e.dtype, generator=generator)
    out = torch.empty(len(u), dtype=torch.long)
    _draw(e.numpy(), (counts.cumsum(0) - counts).numpy(), counts.numpy(), z.to(torch.float64).numpy(),
          u.to(torch.float64).numpy(), out.numpy())
    return out


@_jit
def _sorted_batches(perm, bounds, out):
    batch_of = np.empty(perm.shape[0], np.int32)
    for b in range(bounds.shape[0] - 1):
        for j in range(bounds[b], bounds[b + 1]):
            batch_of[perm[j]] = b
    fill = bounds[:-1].copy()
    for k in range(perm.shape[0]):
        b = batch_of[k]
        out[fill[b]] = k
        fill[b] += 1


def sorted_batches(perm: torch.Tensor, n_batches: int) -> list[torch.Tensor]:
    """``perm.tensor_split(n_batches)`` with each batch's indices in ascending order, in O(n): a batch
    summed in one step is the same batch in any order, and in order its rows are read in sequence."""
    bounds = torch.tensor([0] + [len(part) for part in perm.tensor_split(n_batches)]).cumsum(0)
    out = torch.empty_like(perm)
    _sorted_batches(perm.numpy(), bounds.numpy(), out.numpy())
    return list(out.tensor_split(bounds[1:-1]))


@_jit
def _among(sorted_items, low, count, x):
    """Is x in sorted_items[low:low + count] (ascending)? A binary search without branches: its steps
    depend only on count."""
    base, size = low, count
    while size > 1:
        half = size >> 1
        base = base + half if sorted_items[base + half] <= x else base
        size -= half
    return size > 0 and sorted_items[base] == x


@_jit
def _contains(starts, counts, sorted_items, users, items, out):
    for q in range(users.shape[0]):
        out[q] = _among(sorted_items, starts[users[q]], counts[users[q]], items[q])


def contains(starts: torch.Tensor, counts: torch.Tensor, sorted_items: torch.Tensor, users: torch.Tensor,
             items: torch.Tensor) -> torch.Tensor:
    """Is items[q] among users[q]'s positives, sorted_items[starts[u]:][:counts[u]] (ascending)? A
    binary search per query (``sampling.PositiveSet.contains``'s torch path runs them in lockstep)."""
    out = torch.empty(users.shape, dtype=torch.bool)
    _contains(starts.numpy(), counts.numpy(), sorted_items.numpy(), users.numpy(), items.numpy(), out.numpy())
    return out


@_jit(fastmath=False)
def _best_of(user_emb, item_emb, item_bias, users, drawn, out):
    k = user_emb.shape[1]
    for r in range(drawn.shape[0]):
        u, top, pick = users[r], np.float32(0), drawn[r, 0]
        for j in range(drawn.shape[1]):
            item = drawn[r, j]
            score = np.float32(0)
            for d in range(k):
                score += user_emb[u, d] * item_emb[item, d]
            score += item_bias[item]
            if j == 0 or score > top or (score != score and top == top):
                top, pick = score, item
        out[r] = pick


def best_of(user_emb: torch.Tensor, item_emb: torch.Tensor, item_bias: torch.Tensor, users: torch.Tensor,
            drawn: torch.Tensor) -> torch.Tensor:
    """For each row r, the item of drawn[r] (N, c) an MF scores highest for users[r], the first of
    equals (and a NaN over any number), as ``argmax`` of the torch path does; the dot product's
    terms summed in order, which is what that path computed in every case tested."""
    out = torch.empty(drawn.shape[0], dtype=torch.long)
    _best_of(*(t.detach().numpy() for t in (user_emb, item_emb, item_bias, users, drawn)), out.numpy())
    return out


@_jit(fastmath=NOT_FINITE)
def _insert(values, columns, count, value, column):
    """Put (value, column) into the best-first lists of ``count`` entries (ties: the lower column
    first; ``column`` is above every column already in), keeping at most len(values); returns the count."""
    j = count if count < values.shape[0] else values.shape[0] - 1
    while j > 0 and values[j - 1] < value:
        if j < values.shape[0]:
            values[j], columns[j] = values[j - 1], columns[j - 1]
        j -= 1
    values[j], columns[j] = value, column
    return min(count + 1, values.shape[0])


@_jit(fastmath=NOT_FINITE)
def _rank_rows(scores, train_ptr, train_items, test_ptr, test_items, k, top, rank, hit, bad, first, stop):
    """Rows first..stop-1 of ``rank_rows``. Each row's train items are set to -inf while it is ranked
    and put back after; the k-th largest block maximum bounds the k-th score from below, so only the
    blocks that reach it are walked for the top k."""
    n = scores.shape[1]
    n_blocks = -(-n // BLOCK)
    maxima = np.empty(n_blocks, scores.dtype)
    values = np.empty(k, scores.dtype)
    columns = np.empty(k, np.int64)
    most = 0
    for r in range(first, stop):
        most = max(most, train_ptr[r + 1] - train_ptr[r])
    saved = np.empty(most, scores.dtype)
    for r in range(first, stop):
        row = scores[r]
        t, t_end = train_ptr[r], train_ptr[r + 1]
        invalid = -(t_end - t)  # the train items set to -inf below are counted in the pass
        for q in range(t, t_end):
            v = row[train_items[q]]
            invalid += (v != v) | (v == -np.inf)
            saved[q - t] = v
            row[train_items[q]] = -np.inf
        for b in range(n // BLOCK):  # a constant trip count: unrolled into vector compares
            best = row[b * BLOCK]
            for j in range(BLOCK):
                v = row[b * BLOCK + j]
                invalid += (v != v) | (v == -np.inf)
                best = v if v > best else best
            maxima[b] = best
        if n % BLOCK:
            best = row[n - n % BLOCK]
            for i in range(n - n % BLOCK, n):
                v = row[i]
                invalid += (v != v) | (v == -np.inf)
                best = v if v > best else best
            maxima[n_blocks - 1] = best
        bad[r] = invalid
        count = 0
        for b in range(n_blocks):
            if count < k or maxima[b] > values[k - 1]:
                count = _insert(values, columns, count, maxima[b], b)
        bound = values[k - 1] if count == k else -np.inf
        count = 0
        for b in range(n_blocks):
            if maxima[b] < bound or (count == k and not maxima[b] > values[k - 1]):
                continue
            for i in range(b * BLOCK, min((b + 1) * BLOCK, n)):
                if count < k or row[i] > values[k - 1]:
                    count = _insert(values, columns, count, row[i], i)
        for j in range(count, k):
            columns[j] = n
        top[r] = columns
        rank[r] = 0
        for j in range(k):  # the hits in the exact top k, and the first of them
            hit[r, j] = False
            for q in range(test_ptr[r], test_ptr[r + 1]):
                if test_items[q] == columns[j]:
                    hit[r, j] = True
                    rank[r] = j + 1 if rank[r] == 0 else rank[r]
                    break
        if rank[r] == 0 and test_ptr[r] < test_ptr[r + 1]:
            score, item = -np.inf, n
            for q in range(test_ptr[r], test_ptr[r + 1]):  # the best test item, the lowest-indexed among equals
                if row[test_items[q]] > score or item == n:
                    score, item = row[test_items[q]], test_items[q]
            above = 0
            for i in range(n):  # train items, at -inf, are never above
                v = row[i]
                above += (v > score) | ((v == score) & (i < item))
            rank[r] = 1 + above
        for q in range(t, t_end):
            row[train_items[q]] = saved[q - t]


def rank_rows(scores: torch.Tensor, train, test, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Each row's top k columns (best first, ties to the lower column; ``train``'s columns ranked
    last, as at -inf), which of them are ``test`` columns, and the full-ranking position of its first
    ``test`` column (1-based; 0 for a row without test columns), in one read of the row: (B, k)
    (B, k) bool (B,), and whether any score was NaN or -inf. ``train``/``test`` are the batch's CSR
    rows (sorted columns); the scores are left as found."""
    B = scores.shape[0]
    top, rank = torch.empty(B, k, dtype=torch.long), torch.empty(B, dtype=torch.long)
    hit, bad = torch.empty(B, k, dtype=torch.bool), np.empty(B, np.int64)
    index = [np.asarray(a, dtype=np.int64) for a in (train.indptr, train.indices, test.indptr, test.indices)]
    _over_rows(_rank_rows, B, scores.contiguous().numpy(), *index, k, top.numpy(), rank.numpy(), hit.numpy(), bad)
    return top, hit, rank, bool(bad.any())


def warm() -> None:
    """Compile every kernel for the types training and evaluation use (float32 tables, float32 and
    float64 scores), so that later processes load them from numba's cache instead of compiling."""
    import scipy.sparse as sp

    if numba is None:
        return
    g = torch.Generator().manual_seed(0)
    users_ext, items_ext = torch.randn(4, 6, generator=g), torch.randn(40, 6, generator=g)
    counts = torch.tensor([2, 0, 1, 3])
    e, _, z, _, _, _ = mf_softmax(users_ext, items_ext, 1.0, counts, g, out=torch.empty(4 * 40))
    draw(e, z, counts, g)
    for labels in (None, torch.tensor([1.0, 0.0])):
        pointwise_sgd(torch.randn(4, 5, generator=g), torch.randn(40, 5, generator=g), torch.zeros(40),
                      torch.tensor([0, 1]), torch.tensor([3, 4]), labels, 0.1, 0.1, {}, torch.tensor([5, 6]))
    bpr_sgd(torch.randn(4, 6, generator=g), torch.randn(40, 6, generator=g), torch.tensor([0, 1, 3]), torch.tensor([2, 5, 7]),
            torch.tensor([9, 8, 1]), 2, 0.05, 0.1)
    contains(torch.tensor([0, 2]), torch.tensor([2, 1]), torch.tensor([1, 5, 7]), torch.tensor([0, 1]),
             torch.tensor([5, 7]))
    best_of(torch.randn(4, 5, generator=g), torch.randn(40, 5, generator=g), torch.zeros(40), torch.tensor([0, 3]),
            torch.tensor([[1, 2], [3, 4]]))
    dense = torch.zeros(4, 40, dtype=torch.bool)
    dense[[0, 0, 2], [1, 5, 7]] = True
    positives = SimpleNamespace(starts=torch.tensor([0, 2, 2, 3]), counts=torch.tensor([2, 0, 1, 0], dtype=torch.int32),
                                items=torch.tensor([1, 5, 7]), dense=dense)  # as sampling.PositiveSet holds them
    g_step(users_ext[[0, 2]], items_ext, 1.0, torch.tensor([4, 2]), g, None, 0.2, torch.tensor([0, 2]), positives,
           torch.randn(4, 5, generator=g), torch.randn(40, 5, generator=g), torch.zeros(40), "code", "reinforce")
    for index in (torch.int32, torch.int64):
        sorted_batches(torch.randperm(10, generator=g, dtype=index), 3)
    train, test = sp.csr_matrix(np.eye(4, 40, 1)), sp.csr_matrix(np.eye(4, 40, 2))
    for dtype in (torch.float32, torch.float64):
        rank_rows(torch.randn(4, 40, generator=g, dtype=dtype), train, test, 3)
