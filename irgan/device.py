"""Device choice shared by training and evaluation."""
from __future__ import annotations

import ctypes
import re

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) picks CUDA when available, else CPU; 'cpu', 'cuda' and 'cuda:N' are taken
    as given once checked; anything else is a ValueError listing the choices."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    text = str(device)
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise ValueError(f"unknown device {text!r}: choose auto, cpu, cuda or cuda:N")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {text!r} was asked for but no CUDA GPU is available: use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {text!r} does not exist: this machine has {torch.cuda.device_count()} "
                             "CUDA device(s), cuda:0 to cuda:" + str(torch.cuda.device_count() - 1))
    return device


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed large blocks for reuse instead of unmapping them.

    Training allocates many same-sized (users x items) tensors; by default glibc returns each to
    the OS and the next one page-faults its memory in again, which here cost a fifth of a run's
    CPU time. Process-wide, so only entry points (the CLI, benchmarks) call it. False where
    unavailable (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 1 << 31))
    except (OSError, AttributeError):
        return False
