"""Built-in presets: the YAML files shipped in ``talkingface/configs/``."""

from __future__ import annotations

from pathlib import Path

from talkingface.pipeline.hookspecs import hookimpl

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@hookimpl
def register_presets(register):
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        description = first.lstrip("# ").strip() if first.startswith("#") else ""
        register(path.stem, path, description=description)
