"""Reading and writing LivePortrait checkpoints in the published layout, safely.

A weights directory (upstream's `pretrained_weights/liveportrait`) holds::

    base_models/appearance_feature_extractor.pth
    base_models/motion_extractor.pth
    base_models/warping_module.pth
    base_models/spade_generator.pth
    retargeting_models/stitching_retargeting_module.pth

`.pth` files are read with `torch.load(weights_only=True)`: a pickle that would construct
anything but tensors and plain containers is refused, never run. Each file may instead be a
`.safetensors` file of the same stem and the same keys (used when both exist). The retargeting
`.pth` is one dict of three state dicts (`retarget_shoulder` = stitching, `retarget_mouth` = lip,
`retarget_eye` = eye) whose keys carry DataParallel's `module.` prefix; its `.safetensors` form
is flat, each key prefixed by its sub-dict's name (`retarget_mouth.mlp.0.weight`). `module.`
prefixes are stripped wherever they appear.

Every problem raises `LivePortraitWeightsError` naming the file (and key and both shapes).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from talkingface.pipeline.errors import TalkingFaceError

__all__ = [
    "BASE_MODEL_FILES",
    "RETARGETING_FILE",
    "RETARGETING_PARTS",
    "WEIGHTS_HELP",
    "LivePortraitWeightsError",
    "checkpoint_path",
    "check_state_dict",
    "read_checkpoint",
    "read_retargeting_checkpoint",
    "write_checkpoint",
]

BASE_MODEL_FILES = {
    "appearance_feature_extractor": "base_models/appearance_feature_extractor",
    "motion_extractor": "base_models/motion_extractor",
    "warping_module": "base_models/warping_module",
    "spade_generator": "base_models/spade_generator",
}
"""Network name -> file stem (relative to the weights directory, without extension)."""

RETARGETING_FILE = "retargeting_models/stitching_retargeting_module"

RETARGETING_PARTS = {
    "stitching": "retarget_shoulder",
    "lip": "retarget_mouth",
    "eye": "retarget_eye",
}
"""Our MLP name -> its sub-dict in the retargeting file."""

SUFFIXES = (".safetensors", ".pth")

WEIGHTS_HELP = (
    "Download LivePortrait's weights (its README: `huggingface-cli download KwaiVGI/LivePortrait "
    "--local-dir pretrained_weights`) and pass the `pretrained_weights/liveportrait` directory, "
    "the one holding base_models/ and retargeting_models/"
)


class LivePortraitWeightsError(TalkingFaceError):
    """A LivePortrait weights directory or file that cannot be used (the message says why)."""


def checkpoint_path(directory: Path | str, stem: str) -> Path:
    """The file of `stem` in `directory`: `<stem>.safetensors` if present, else `<stem>.pth`.

    Raises `LivePortraitWeightsError` if the directory or both files are missing.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LivePortraitWeightsError(
            f"LivePortrait weights directory {directory} does not exist. {WEIGHTS_HELP}."
        )
    for suffix in SUFFIXES:
        path = directory / f"{stem}{suffix}"
        if path.is_file():
            return path
    raise LivePortraitWeightsError(
        f"missing LivePortrait checkpoint {stem}.pth (or .safetensors) in {directory}. "
        f"{WEIGHTS_HELP}."
    )


def _strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key.removeprefix("module."): value for key, value in state_dict.items()}


def _read_file(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            # Cloned into fresh allocations: tensors sliced from the file's buffer may be
            # misaligned, which sends some CPU kernels down other paths (last-bit differences
            # from the same weights read from a .pth).
            return {k: v.clone() for k, v in load_file(str(path), device="cpu").items()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise LivePortraitWeightsError(
                f"{path} is not a readable safetensors checkpoint ({exc}); re-download it"
            ) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only names the global it would have had to import: that is a refusal of
        # code; any other unpickling failure is a file that is not a checkpoint at all.
        refused = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if not refused:
            raise LivePortraitWeightsError(
                f"{path} is not a PyTorch checkpoint (it does not unpickle); re-download it"
            ) from exc
        raise LivePortraitWeightsError(
            f"{path} was refused: it holds objects other than tensors, and loading them could run "
            f"code ({refused[0]}). Use the published checkpoint or a .safetensors file."
        ) from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise LivePortraitWeightsError(
            f"{path} is not a PyTorch checkpoint ({str(exc).splitlines()[0]}); re-download it"
        ) from exc


def _tensor_dict(path: Path, value: object, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, Mapping):
        raise LivePortraitWeightsError(
            f"{path} is not a LivePortrait checkpoint: {what} should be a dict of tensors, "
            f"got {type(value).__name__}"
        )
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, torch.Tensor):
            raise LivePortraitWeightsError(
                f"{path} is not a LivePortrait checkpoint: {what} should be a dict of tensors, "
                f"but its entry {key!r} is a {type(item).__name__}"
            )
    return _strip_module_prefix(value)


def read_checkpoint(path: Path | str) -> dict[str, torch.Tensor]:
    """A base model's state dict from `path` (.pth or .safetensors), `module.` prefixes
    stripped, tensors on the CPU."""
    path = Path(path)
    return _tensor_dict(path, _read_file(path), "the file")


def read_retargeting_checkpoint(path: Path | str) -> dict[str, dict[str, torch.Tensor]]:
    """The three state dicts of the retargeting file, keyed by our names (stitching, lip, eye)."""
    path = Path(path)
    content = _read_file(path)
    if path.suffix == ".safetensors":
        flat = _tensor_dict(path, content, "the file")
        grouped: dict[str, dict[str, torch.Tensor]] = {part: {} for part in RETARGETING_PARTS}
        by_file_name = {file_name: ours for ours, file_name in RETARGETING_PARTS.items()}
        for key, value in flat.items():
            part, _, rest = key.partition(".")
            if part not in by_file_name:
                raise LivePortraitWeightsError(
                    f"{path}: unexpected key {key!r}; keys must start with one of "
                    f"{', '.join(p + '.' for p in by_file_name)}"
                )
            grouped[by_file_name[part]][rest.removeprefix("module.")] = value
        return grouped
    if not isinstance(content, Mapping):
        raise LivePortraitWeightsError(
            f"{path} is not the LivePortrait retargeting checkpoint: expected a dict with "
            f"{', '.join(RETARGETING_PARTS.values())}, got {type(content).__name__}"
        )
    missing = [name for name in RETARGETING_PARTS.values() if name not in content]
    if missing:
        raise LivePortraitWeightsError(
            f"{path} is not the LivePortrait retargeting checkpoint: missing "
            f"{', '.join(missing)} (it has {', '.join(map(str, content)) or 'nothing'})"
        )
    return {
        ours: _tensor_dict(path, content[file_name], file_name)
        for ours, file_name in RETARGETING_PARTS.items()
    }


def check_state_dict(
    path: Path | str,
    expected: Mapping[str, torch.Size | tuple[int, ...]],
    found: Mapping[str, torch.Tensor],
    prefix: str = "",
) -> None:
    """Refuse `found` unless it has exactly the keys and shapes of `expected`.

    The message names the file, the key (with `prefix`, e.g. the retargeting sub-dict) and,
    for a shape mismatch, both shapes.
    """
    missing = [key for key in expected if key not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise LivePortraitWeightsError(
            f"{path}: missing key {prefix}{missing[0]}{more}; is this a LivePortrait checkpoint "
            "of the right network (human, not animal)?"
        )
    unexpected = [key for key in found if key not in expected]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise LivePortraitWeightsError(
            f"{path}: unexpected key {prefix}{unexpected[0]}{more}; is this a LivePortrait "
            "checkpoint of the right network?"
        )
    for key, shape in expected.items():
        if tuple(found[key].shape) != tuple(shape):
            raise LivePortraitWeightsError(
                f"{path}: key {prefix}{key} has shape {list(found[key].shape)}, expected "
                f"{list(shape)}"
            )


def write_checkpoint(path: Path | str, content: Mapping[str, object]) -> Path:
    """Write a state dict (or the retargeting file's dict of three) in the published layout:
    `torch.save` for `.pth`, flat `<sub-dict>.<key>` names for `.safetensors`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        flat: dict[str, torch.Tensor] = {}
        for key, value in content.items():
            if isinstance(value, Mapping):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        save_file({k: v.detach().contiguous().cpu() for k, v in flat.items()}, str(path))
    else:
        torch.save(dict(content), path)
    return path
