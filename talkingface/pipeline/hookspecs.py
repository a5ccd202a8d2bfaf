"""The hooks a talkingface plugin can implement.

A plugin is a module (or object) with functions marked ``@talkingface.hookimpl`` whose names
match the specs below. Built-in stages are registered through these same hooks; third-party
packages expose their module in the ``talkingface`` entry-point group::

    [project.entry-points.talkingface]
    my_plugin = "my_package.plugin"
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("talkingface")
hookimpl = pluggy.HookimplMarker("talkingface")


@hookspec
def register_audio_encoders(register) -> None:
    """Register audio-feature extractors (subclasses of ``AudioEncoder``).

    :param register: call ``register(cls, name=None, aliases=())`` once per encoder class;
        ``name`` defaults to ``cls.name``. A name already taken raises ``PluginError``.

    Called once, when the plugin manager is first built (again after
    ``reset_plugin_manager()``), for every registered plugin, built-in ones included.

    Example::

        @hookimpl
        def register_audio_encoders(register):
            register(ZeroCrossingEncoder)
    """


@hookspec
def register_motion_generators(register) -> None:
    """Register motion generators (subclasses of ``MotionGenerator``).

    :param register: call ``register(cls, name=None, aliases=())`` once per generator class.

    Called once, when the plugin manager is first built, for every registered plugin.

    Example::

        @hookimpl
        def register_motion_generators(register):
            register(DiffusionMotion, name="diffusion")
    """


@hookspec
def register_renderers(register) -> None:
    """Register renderers (subclasses of ``Renderer``).

    :param register: call ``register(cls, name=None, aliases=())`` once per renderer class.

    Called once, when the plugin manager is first built, for every registered plugin.

    Example::

        @hookimpl
        def register_renderers(register):
            register(MyRenderer)
    """


@hookspec
def register_presets(register) -> None:
    """Register named pipeline presets.

    :param register: call ``register(name, config, description="")`` where ``config`` is a
        path to a YAML file or a mapping with the pipeline schema's keys (partial configs are
        merged over the defaults).

    Called once, when the plugin manager is first built, for every registered plugin.

    Example::

        @hookimpl
        def register_presets(register):
            register("fast", {"render": {"name": "meshwarp", "params": {"quality": "low"}}})
    """


@hookspec(firstresult=True)
def call_stage(stage, method: str, args: tuple, kwargs: dict) -> Any:
    """Run one stage call: ``getattr(stage, method)(*args, **kwargs)``.

    Called for every call the stage graph makes to a stage (``load``, ``prepare``, ``encode``,
    ``generate``, ``render``, each streaming ``push``/``flush``, and sink writes), so
    cross-cutting concerns wrap it: the profiler is a ``@hookimpl(wrapper=True)`` around it.

    :param stage: the ``Stage`` instance.
    :param method: the method's name, e.g. ``"render"``, or ``"stream.push"`` for a
        streaming processor's ``push`` (then ``stage`` is still the owning stage and the
        processor is ``kwargs["processor"]``, removed before the call).
    :param args: positional arguments.
    :param kwargs: keyword arguments.
    :return: the call's result. ``firstresult``: the first non-None result is used; the
        built-in implementation performs the call (tryfirst=False, so a plugin may replace it).

    Example (a wrapper that logs slow calls)::

        @hookimpl(wrapper=True)
        def call_stage(stage, method, args, kwargs):
            t0 = time.perf_counter()
            result = yield
            if time.perf_counter() - t0 > 1.0:
                print(f"{stage.name}.{method} was slow")
            return result
    """
