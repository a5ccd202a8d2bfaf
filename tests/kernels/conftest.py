"""Kernel tests: Triton kernels run on the CPU interpreter; `gpu` tests run compiled on CUDA."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _gpu_tests_need_cuda(request, monkeypatch):
    if request.node.get_closest_marker("gpu") is None:
        return
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("triton")
    # Compiled kernels on the GPU, not the interpreter this file turned on for CPU tests.
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


@pytest.fixture
def interpreter(monkeypatch):
    """Run Triton kernels on CPU tensors through the interpreter (skips without triton)."""
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def default_backend():
    """Restore the process-wide kernel backend after a test changes it."""
    from talkingface.kernels import get_default_backend, set_default_backend

    saved = get_default_backend()
    yield
    set_default_backend(saved)
