"""Provenance: the container tags every written video carries, saying that it is generated and
by what (the one place these tags are made)."""

from __future__ import annotations

import json
from typing import Any

PROVENANCE = "AI-generated talking-face video (synthetic)"
"""Every written video says what it is: this goes into its title and comment."""


def run_tags(config: Any, description: str) -> dict[str, str]:
    """Tags describing one pipeline run: the stages (``pipeline``), whether frames carry the
    invisible watermark (``watermark``) and the resolved config (``talkingface_config``,
    compact JSON), to pass as a writer's ``metadata``."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else config
    output = dict(data.get("output", {}))
    for key in ("signing_certificate", "signing_key"):  # where the private key lives: not shared
        if output.get(key) is not None:
            output[key] = "<set>"
    data = {**data, "output": output} if output else data
    mark = data.get("watermark", {})
    return {"pipeline": description,
            "watermark": (f"on (user {mark.get('user', 0)})" if mark.get("enabled", True)
                          else "off (watermark.enabled=false)"),
            "talkingface_config": json.dumps(data, separators=(",", ":"), default=str)}


def container_tags(extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The tags written into a video container: ``extra`` (e.g. :func:`run_tags`; values that
    are not strings become JSON), then the provenance note, which no caller can overwrite:
    ``comment`` and ``generator`` always say the video is synthetic and what made it, and
    ``title`` does unless ``extra`` gives one."""
    from talkingface._version import __version__

    tags = {"title": PROVENANCE}
    for key, value in (extra or {}).items():
        tags[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    tags["comment"] = f"{PROVENANCE} made with talkingface {__version__}"
    tags["generator"] = f"talkingface {__version__}"
    return tags
