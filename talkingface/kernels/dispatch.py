"""Backend choice for the kernels: `torch` reference or Triton kernel, by device and config.

Triton is optional. Without it every op still runs through its torch reference.
"""

from __future__ import annotations

import os

import torch

try:
    import triton
    import triton.language as tl

    _TRITON_IMPORT_ERROR: ImportError | None = None
except ImportError as exc:  # torch-only install: kernel modules must still import

    class _TritonMissing:
        """Stands in for `triton` and `triton.language` so kernel modules import without
        triton; `resolve_backend` refuses "triton" first, so nothing here ever runs."""

        constexpr = "constexpr"  # evaluated only as a parameter annotation

        @staticmethod
        def jit(fn):
            return fn

    triton = tl = _TritonMissing()
    _TRITON_IMPORT_ERROR = exc

__all__ = [
    "BACKENDS",
    "KernelBackendError",
    "check_inference_only",
    "get_default_backend",
    "interpreter_enabled",
    "last_backend",
    "last_backends",
    "launchable",
    "record_backend",
    "resolve_backend",
    "runs_interpreted",
    "set_default_backend",
    "tl",
    "triton",
    "triton_available",
]

BACKENDS = ("auto", "torch", "triton")

_default_backend = "auto"
_last_backend: dict[str, str] = {}
_launchable_cache: dict[tuple[object, bool], object] = {}


class KernelBackendError(RuntimeError):
    """The requested kernel backend cannot run here (triton missing, or no device for it)."""


def triton_available() -> bool:
    """True when `import triton` succeeded."""
    return _TRITON_IMPORT_ERROR is None


def interpreter_enabled() -> bool:
    """True when TRITON_INTERPRET asks Triton to run kernels on the CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def set_default_backend(name: str) -> None:
    """Set the process-wide backend used when an op is called with `backend=None`.

    The pipeline config key `kernels.backend` calls this. `name` is "auto", "torch" or "triton".
    """
    global _default_backend
    _default_backend = _check_name(name)


def get_default_backend() -> str:
    """The process-wide default backend ("auto" unless `set_default_backend` changed it)."""
    return _default_backend


def resolve_backend(backend: str | None, device: torch.device | str) -> str:
    """Return "torch" or "triton": the backend an op will run for tensors on `device`.

    `backend=None` uses the process default. "auto" picks triton for CUDA tensors when triton
    imports, else torch (on CPU auto is always torch: the Triton interpreter is for tests).
    "triton" on CPU tensors is allowed only with TRITON_INTERPRET=1.
    """
    name = _check_name(get_default_backend() if backend is None else backend)
    device = torch.device(device)
    if name == "torch":
        return "torch"
    if name == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if not triton_available():
        raise KernelBackendError(
            f"backend='triton' needs triton, which failed to import ({_TRITON_IMPORT_ERROR}). "
            "Install it with `pip install triton` (and run on a CUDA GPU, or set "
            "TRITON_INTERPRET=1 to run kernels on the CPU interpreter), or use backend='torch'."
        )
    if device.type == "cuda" or (device.type == "cpu" and interpreter_enabled()):
        return "triton"
    raise KernelBackendError(
        f"backend='triton' cannot run on {device.type} tensors: move the inputs to a CUDA GPU, "
        "set TRITON_INTERPRET=1 to use the (slow) CPU interpreter, or use backend='torch'."
    )


def record_backend(op: str, backend: str) -> None:
    """Note which backend `op` just ran, for the profiler."""
    _last_backend[op] = backend


def last_backend(op: str) -> str | None:
    """The backend the last call of `op` ran ("torch" or "triton"); None if it never ran."""
    return _last_backend.get(op)


def last_backends() -> dict[str, str]:
    """A copy of the whole op -> last backend map, for profiler tables."""
    return dict(_last_backend)


def check_inference_only(op: str, *tensors: torch.Tensor | None) -> None:
    """Refuse autograd inputs on a forward-only Triton path rather than drop their gradients."""
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        raise ValueError(
            f"{op}: the triton backend has no backward pass; call it under torch.no_grad() "
            "(or on tensors that do not require grad), or use backend='torch' for training."
        )


def runs_interpreted(device: torch.device) -> bool:
    """True when Triton kernels for tensors on `device` run on the CPU interpreter."""
    return device.type != "cuda" or interpreter_enabled()


def launchable(kernel, device: torch.device):
    """`kernel` as Triton must run it for tensors on `device`.

    `@triton.jit` picks compiled or interpreted code from TRITON_INTERPRET when the module is
    imported; rebuilding here lets CPU tensors use the interpreter (and CUDA tensors the
    compiler) whatever the variable was at import time. Kernels therefore call no other
    `@triton.jit` functions: the rebuilt one would still see the original helpers.
    """
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    interpret = runs_interpreted(device)
    if isinstance(kernel, InterpretedFunction) == interpret:
        return kernel
    key = (kernel.fn, interpret)
    if key not in _launchable_cache:
        rebuild = InterpretedFunction if interpret else JITFunction
        _launchable_cache[key] = rebuild(kernel.fn)
    return _launchable_cache[key]


def _check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name
