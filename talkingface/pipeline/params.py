"""Stage parameters: a stage's ``Config`` dataclass filled from a mapping or DictConfig, with
errors that list the valid parameters. Used by the stage bases and the config loader alike."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from talkingface.pipeline.errors import ConfigError


def to_dataclass(schema: type, params: Any) -> Any:
    """Validate ``params`` (mapping/DictConfig) against a stage ``Config`` dataclass."""
    try:
        node = OmegaConf.merge(OmegaConf.structured(schema), params or {})
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        valid = ", ".join(f.name for f in fields(schema)) if is_dataclass(schema) else "(none)"
        key = getattr(exc, "key", None)
        if isinstance(exc, ConfigKeyError):
            raise ConfigError(
                f"unknown parameter {key!r} for {schema.__qualname__}; valid parameters: {valid}"
            ) from None
        raise ConfigError(
            f"bad value for parameter {key!r} of {schema.__qualname__}: "
            f"{str(exc).splitlines()[0]} (valid parameters: {valid})"
        ) from None
