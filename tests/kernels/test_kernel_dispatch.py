"""Backend dispatch: resolve_backend's rules, the process default, last_backend, and the
package working without triton or with TRITON_INTERPRET set after import."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from talkingface.kernels import (
    KernelBackendError,
    last_backend,
    last_backends,
    resolve_backend,
    set_default_backend,
    triton_available,
    warp2d,
)

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton is not installed")


def test_torch_is_always_torch():
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("torch", "cuda") == "torch"


def test_auto_is_torch_on_cpu_even_with_the_interpreter(interpreter):
    assert resolve_backend("auto", "cpu") == "torch"


@needs_triton
def test_auto_is_triton_on_cuda():
    assert resolve_backend("auto", torch.device("cuda", 0)) == "triton"


@needs_triton
def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", "cpu") == "triton"
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(KernelBackendError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", "cpu")


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="auto, torch, triton"):
        resolve_backend("cuda", "cpu")
    with pytest.raises(ValueError, match="auto, torch, triton"):
        set_default_backend("fast")


def test_default_backend_applies_to_calls_without_one(default_backend, interpreter):
    image, flow = torch.zeros(1, 4, 4, 3, dtype=torch.uint8), torch.zeros(2, 2, 2, 2)
    set_default_backend("torch")
    assert resolve_backend(None, "cuda") == "torch"
    warp2d(image, flow)
    assert last_backend("warp2d") == "torch"
    set_default_backend("triton")
    warp2d(image, flow)
    assert last_backend("warp2d") == "triton"
    assert last_backends()["warp2d"] == "triton"


def test_last_backend_of_an_op_never_run_is_none():
    assert last_backend("no_such_op") is None


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_package_works_without_triton():
    result = _run_python(
        """
        import sys
        sys.modules["triton"] = None  # makes `import triton` raise ImportError
        sys.modules["triton.language"] = None
        import torch
        import talkingface.kernels as k
        assert not k.triton_available()
        assert k.resolve_backend("auto", "cuda") == "torch"
        out = k.warp2d(torch.zeros(1, 4, 4, 3), torch.zeros(1, 2, 2, 2))
        assert out.shape == (1, 4, 4, 3)
        try:
            k.warp2d(torch.zeros(1, 4, 4, 3), torch.zeros(1, 2, 2, 2), backend="triton")
        except k.KernelBackendError as exc:
            assert "pip install triton" in str(exc), exc
        else:
            raise AssertionError("backend='triton' ran without triton")
        """
    )
    assert result.returncode == 0, result.stderr


@needs_triton
def test_interpreter_switched_on_after_import():
    # Kernels defined compiled (no TRITON_INTERPRET at import) still run on CPU tensors once
    # the interpreter is enabled: launchers rebuild them for the device.
    result = _run_python(
        """
        import os
        import torch
        import talkingface.kernels as k
        os.environ["TRITON_INTERPRET"] = "1"
        image, flow = torch.rand(1, 5, 6, 3), torch.randn(2, 3, 3, 2)
        torch.testing.assert_close(
            k.warp2d(image, flow, backend="triton"), k.warp2d_reference(image, flow),
            atol=1e-4, rtol=1e-4,
        )
        """
    )
    assert result.returncode == 0, result.stderr
