"""Typed facade over pluggy: builds the plugin manager and the registry of stages and presets.

Built-in plugins and third-party ones (entry-point group ``talkingface``) go through the same
``register_*`` hooks. Set ``TALKINGFACE_DISABLE_PLUGINS=1`` to skip third-party autoload (the
built-ins still load).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from talkingface.pipeline import hookspecs
from talkingface.pipeline.contracts import STAGE_KINDS
from talkingface.pipeline.errors import ConfigError, PluginError
from talkingface.pipeline.stages import STAGE_BASES, Stage

ENTRY_POINT_GROUP = "talkingface"
DISABLE_ENV = "TALKINGFACE_DISABLE_PLUGINS"

BUILTIN_PLUGINS: tuple[str, ...] = (
    "talkingface.pipeline.runner_hooks",
    "talkingface.plugins.audio",
    "talkingface.plugins.motion",
    "talkingface.plugins.render",
    "talkingface.plugins.presets",
)

KIND_HOOKS: dict[str, str] = {
    kind: f"register_{title.replace(' ', '_')}s" for kind, title in STAGE_KINDS.items()
}
"""The registration hook of each stage kind (``register_audio_encoders``, ...)."""


@dataclass(frozen=True)
class StageEntry:
    """One registered stage class."""

    kind: str
    name: str
    cls: type[Stage]
    origin: str
    """The plugin that registered it: a built-in module or ``dist-name (module)``."""
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class PresetEntry:
    name: str
    config: Any  # Path or mapping
    description: str
    origin: str


@dataclass
class Registry:
    """Everything the plugins registered: stages by kind and name, presets by name."""

    stages: dict[str, dict[str, StageEntry]] = field(
        default_factory=lambda: {kind: {} for kind in STAGE_KINDS}
    )
    aliases: dict[str, dict[str, str]] = field(
        default_factory=lambda: {kind: {} for kind in STAGE_KINDS}
    )
    presets: dict[str, PresetEntry] = field(default_factory=dict)

    def names(self, kind: str) -> list[str]:
        return sorted(self.stages[kind])

    def get(self, kind: str, name: str) -> StageEntry:
        """The entry registered as ``name`` (or an alias of it); ConfigError lists the choices."""
        if kind not in self.stages:
            raise ConfigError(
                f"unknown stage kind {kind!r}; choose one of {', '.join(STAGE_KINDS)}"
            )
        real = self.aliases[kind].get(name, name)
        if real not in self.stages[kind]:
            choices = ", ".join(self.names(kind)) or "(none registered)"
            raise ConfigError(
                f"unknown {STAGE_KINDS[kind]} {name!r}; choose one of: {choices} "
                f"(see `talkingface plugins`)"
            )
        return self.stages[kind][real]

    def preset(self, name: str) -> PresetEntry:
        if name not in self.presets:
            choices = ", ".join(sorted(self.presets)) or "(none registered)"
            raise ConfigError(f"unknown preset {name!r}; choose one of: {choices}")
        return self.presets[name]


class PluginManager:
    """The pluggy manager plus the registry it produced."""

    def __init__(self, *, load_entry_points: bool | None = None) -> None:
        self.pm = pluggy.PluginManager("talkingface")
        self.pm.add_hookspecs(hookspecs)
        for module_name in BUILTIN_PLUGINS:
            self.pm.register(importlib.import_module(module_name), name=module_name)
        if load_entry_points is None:
            load_entry_points = not os.environ.get(DISABLE_ENV)
        if load_entry_points:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        self._registry: Registry | None = None

    @property
    def hook(self):
        return self.pm.hook

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an extra plugin object/module (tests, notebooks); rebuilds the registry."""
        self.pm.register(plugin, name=name)
        if _registers_stages(plugin):
            self._registry = None

    def unregister(self, plugin: object = None, name: str | None = None) -> None:
        plugin = self.pm.unregister(plugin, name=name)
        if _registers_stages(plugin):
            self._registry = None

    def check_pending(self) -> None:
        """Fail loudly on a hookimpl whose name matches no hookspec (a misspelled hook)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin defines an unknown hook: {exc}") from exc

    def origin_of(self, plugin: object) -> str:
        name = self.pm.get_name(plugin) or repr(plugin)
        for p, dist in self.pm.list_plugin_distinfo():
            if p is plugin:
                return f"{dist.project_name} {dist.version} ({name})"
        return "built-in" if name in BUILTIN_PLUGINS else name

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self.check_pending()
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        reg = Registry()
        for kind, hook_name in KIND_HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                origin = self.origin_of(impl.plugin)
                impl.function(register=_stage_registrar(reg, kind, origin))
        for impl in self.pm.hook.register_presets.get_hookimpls():
            origin = self.origin_of(impl.plugin)
            impl.function(register=_preset_registrar(reg, origin))
        return reg


def _registers_stages(plugin: object) -> bool:
    hooks = (*KIND_HOOKS.values(), "register_presets")
    return any(hasattr(plugin, hook) for hook in hooks)


def _stage_registrar(reg: Registry, kind: str, origin: str):
    base = STAGE_BASES[kind]

    def register(cls: type[Stage], name: str | None = None, aliases: tuple[str, ...] = ()) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(
                f"{origin}: {cls!r} registered as a {STAGE_KINDS[kind]} is not a subclass of "
                f"{base.__name__}"
            )
        fields = {f.name for f in dataclasses.fields(cls.Config)} if dataclasses.is_dataclass(
            cls.Config) else set()
        unknown = [n for n in cls.inputs if n not in fields]
        if unknown:
            raise PluginError(
                f"{origin}: {cls.__name__} declares inputs {unknown} that are not fields of its "
                "Config; each input is set through the Config field of its name"
            )
        name = name or cls.name
        if not name:
            raise PluginError(f"{origin}: {cls.__name__} needs a name (class attr or name=)")
        taken = reg.stages[kind].get(name) or (
            reg.stages[kind].get(reg.aliases[kind][name]) if name in reg.aliases[kind] else None
        )
        if taken is not None:
            raise PluginError(
                f"duplicate {STAGE_KINDS[kind]} name {name!r}: registered by {taken.origin} and "
                f"again by {origin}; rename one of them"
            )
        if cls.name != name:
            # Each registered name gets its own subclass so ``stage.name`` is right.
            cls = type(cls.__name__, (cls,), {"name": name, "__module__": cls.__module__,
                                              "__doc__": cls.__doc__})
        reg.stages[kind][name] = StageEntry(kind, name, cls, origin, tuple(aliases))
        for alias in aliases:
            reg.aliases[kind][alias] = name

    return register


def _preset_registrar(reg: Registry, origin: str):
    def register(name: str, config: Path | str | Mapping, description: str = "") -> None:
        if name in reg.presets:
            raise PluginError(
                f"duplicate preset {name!r}: registered by {reg.presets[name].origin} and again "
                f"by {origin}"
            )
        if isinstance(config, str):
            config = Path(config)
        reg.presets[name] = PresetEntry(name, config, description, origin)

    return register


_MANAGER: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (built on first use)."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = PluginManager()
    return _MANAGER


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (the next use rebuilds it, re-reading entry points)."""
    global _MANAGER
    _MANAGER = None
