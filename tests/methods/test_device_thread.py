"""on_device_thread: every pass for one GPU runs in one long-lived thread (a new thread's first
pass on a GPU costs about 0.3 s of cuDNN/cuBLAS set-up); the CPU runs in the caller's thread.
The functions here touch no GPU, so the routing is tested on any machine."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from msgfusion.methods.device import on_device_thread


def test_cpu_runs_in_the_callers_thread():
    assert on_device_thread(torch.device("cpu"), threading.get_ident) == threading.get_ident()


def test_one_thread_per_gpu_whoever_calls():
    gpu0, gpu1 = torch.device("cuda:0"), torch.device("cuda:1")
    with ThreadPoolExecutor(8) as callers:
        idents = set(callers.map(lambda _: on_device_thread(gpu0, threading.get_ident),
                                 range(32)))
    assert len(idents) == 1 and threading.get_ident() not in idents
    assert on_device_thread(gpu0, threading.get_ident) in idents  # long-lived
    assert on_device_thread(gpu1, threading.get_ident) not in idents


def test_nested_call_and_errors():
    gpu = torch.device("cuda:0")
    inner = on_device_thread(gpu, lambda: on_device_thread(gpu, threading.get_ident))
    assert inner == on_device_thread(gpu, threading.get_ident)  # no deadlock, same thread

    def fail() -> None:
        raise ValueError("from the device thread")

    with pytest.raises(ValueError, match="from the device thread"):
        on_device_thread(gpu, fail)
