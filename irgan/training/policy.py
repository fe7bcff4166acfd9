"""G's softmax over the catalog for a batch of users, as the policy-gradient step reads it.

A batch's softmax is the largest thing G's step touches (users x items); it is kept unnormalised,
p[r] = e[r] / z[r] with e = exp(logits - m[r]), so that one pass makes it and each further use
(draws, the expected item, the items' gradient) is one more read. On the CPU with MF, the
compiled kernels (``irgan.kernels``) make it from the tables without writing the logits;
otherwise torch does, the reference the tests compare against.
"""
from __future__ import annotations

import torch

from irgan import kernels
from irgan.training.sampling import sample_rows


def rows_buffer(buffer: torch.Tensor | None, size: int) -> torch.Tensor:
    """``buffer`` if it holds ``size`` float32 elements, else a new one: a caller keeps one for every
    batch's policy rows (a fresh users x items tensor per batch costs page faults, and under
    ``keep_freed_memory`` heap that batches of other sizes cannot reuse)."""
    return buffer if buffer is not None and buffer.numel() >= size else torch.empty(size, dtype=torch.float32)


class Policy:
    """p = e / z row-wise for e (B, n_items) >= 0, z (B,) its row sums, m (B,) the logits' row max."""

    def __init__(self, e: torch.Tensor, z: torch.Tensor, m: torch.Tensor | None = None) -> None:
        self._e, self._z, self._m, self._expected = e, z, m, None
        self._drawn = None  # (counts, items, e at them) of the last draws, when known
        self._last_at = None  # ((rows, items), p at them): the step reads the same draws twice

    @classmethod
    def of_logits(cls, logits: torch.Tensor) -> "Policy":
        """softmax(logits) (B, n_items), written over ``logits``."""
        m = logits.amax(1)
        e = logits.sub_(m[:, None]).exp_()
        return cls(e, e.sum(1), m)

    @classmethod
    def of_probs(cls, p: torch.Tensor) -> "Policy":
        """Given probabilities (rows summing to 1); its entropy is not known from them alone."""
        return cls(p, torch.ones(p.shape[0], dtype=p.dtype, device=p.device))

    @classmethod
    def of_mf(cls, users_ext: torch.Tensor, items_ext: torch.Tensor, temperature: float,
              out: torch.Tensor | None = None) -> "Policy":
        """softmax(users_ext @ items_ext.T / temperature) for packed MF rows (``fast_mf.packed_users``/``packed_items``).
        On the kernels, ``out`` (float32, at least B x n_items elements) may hold e: the policy is then
        valid until the buffer's next use."""
        if kernels.enabled(items_ext) and items_ext.dtype == torch.float32:
            return _KernelPolicy(users_ext, items_ext, temperature, out)
        logits = users_ext @ items_ext.T
        if temperature != 1:
            logits /= temperature
        return cls.of_logits(logits)

    @property
    def e(self) -> torch.Tensor:
        return self._e

    @property
    def z(self) -> torch.Tensor:
        return self._z

    @property
    def m(self) -> torch.Tensor | None:
        return self._m

    @property
    def p(self) -> torch.Tensor:
        return self.e / self.z[:, None]

    def at(self, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """p[rows[k], items[k]] (N,). Entries that are this policy's own last draws (rows grouped by
        row as ``sample`` returns them) are read from what the draws kept: each is a random read of e."""
        if self._last_at is not None and self._last_at[0][0] is rows and self._last_at[0][1] is items:
            return self._last_at[1]
        z = self.z.index_select(0, rows)
        if self._drawn is not None and self._drawn[1].shape == items.shape and bool(
                torch.equal(rows, torch.repeat_interleave(torch.arange(len(self._drawn[0])), self._drawn[0]))):
            e_at = self._drawn[2].clone()
            other = (items != self._drawn[1]).nonzero().squeeze(1)
            e_at[other] = self._e_at(rows[other], items[other])
        else:
            e_at = self._e_at(rows, items)
        self._last_at = ((rows, items), e_at / z)
        return self._last_at[1]

    def _e_at(self, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.e.view(-1).index_select(0, rows * self.e.shape[1] + items)

    def sample(self, counts: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """counts[r] draws from row r, as ``sampling.sample_rows`` (row 0's first)."""
        if kernels.enabled(self.e) and self.e.dtype == torch.float32 and counts.device.type == "cpu":
            return kernels.draw(self.e, self.z, counts, generator)
        return sample_rows(self.e, counts, generator)

    def expected(self, items_ext: torch.Tensor) -> torch.Tensor:
        """E_p[items_ext row] for each row (B, k), computed once."""
        if self._expected is None:
            # (V^T E^T)^T rather than E V: MKL is several times faster with the long dimension last.
            self._expected = (items_ext.T @ self.e.T).T / self.z[:, None]
        return self._expected

    def item_sum(self, w: torch.Tensor) -> torch.Tensor:
        """sum_r w[r] (x) p[r]: (n_items, k) for w (B, k)."""
        return ((w / self.z[:, None]).T @ self.e).T

    def entropy(self, expected_logit: torch.Tensor) -> torch.Tensor:
        """Each row's entropy, log-sum-exp of its logits minus their expectation (given, (B,))."""
        if self.m is None:
            raise ValueError("this policy was built from probabilities: its entropy needs the logits")
        return self.m + self.z.log() - expected_logit


class _KernelPolicy(Policy):
    """An MF policy the compiled kernel makes when first read: with the batch's draws when
    those come first, so that each row is drawn from while it is in cache; its expected item
    is made in the same pass (for the tables it was built from)."""

    def __init__(self, users_ext: torch.Tensor, items_ext: torch.Tensor, temperature: float,
                 out: torch.Tensor | None = None) -> None:
        super().__init__(None, None)
        self._args, self._out = (users_ext, items_ext, temperature), out

    def _make(self, counts: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        self._e, self._m, self._z, self._expected, draws, picked = kernels.mf_softmax(
            *self._args, counts, generator, self._out)
        if counts is not None:
            self._drawn = (counts, draws, picked)
        return draws

    @property
    def e(self) -> torch.Tensor:
        if self._e is None:
            self._make()
        return self._e

    @property
    def z(self) -> torch.Tensor:
        if self._e is None:
            self._make()
        return self._z

    @property
    def m(self) -> torch.Tensor:
        if self._e is None:
            self._make()
        return self._m

    def expected(self, items_ext: torch.Tensor) -> torch.Tensor:
        """As ``Policy.expected``, made in the softmax's pass from the item table the policy was built
        from: ``items_ext`` must be that table (its shape is checked; a step that has moved it since
        would need a plain ``Policy``)."""
        if items_ext.shape != self._args[1].shape:
            raise ValueError(f"this policy was built from an item table of shape {tuple(self._args[1].shape)}, "
                             f"not {tuple(items_ext.shape)}")
        if self._e is None:
            self._make()
        return self._expected

    def sample(self, counts: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self._e is None and counts.device.type == "cpu":
            return self._make(counts, generator)
        return super().sample(counts, generator)
