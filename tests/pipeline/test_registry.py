import pytest

from talkingface.pipeline import registry as plugins_mod
from talkingface.pipeline.errors import ConfigError, PluginError
from talkingface.pipeline.hookspecs import hookimpl
from talkingface.pipeline.registry import PluginManager
from tests.pipeline.toy_stages import FlatRenderer, RmsEncoder, TestStagesPlugin


def test_test_stages_are_registered_with_origin(pm):
    reg = pm.registry
    assert reg.get("audio", "rms").cls.__name__ == "RmsEncoder"
    assert reg.get("motion", "jaw").name == "smoothjaw"  # alias
    assert reg.get("render", "flat").origin == "test-stages"
    assert "toy" in reg.presets


def test_builtin_plugins_go_through_the_same_hooks():
    pm = PluginManager(load_entry_points=False)
    names = {pm.pm.get_name(p) for p in pm.pm.get_plugins()}
    assert set(plugins_mod.BUILTIN_PLUGINS) <= names
    assert "default" in pm.registry.presets


def test_unknown_stage_lists_choices(pm):
    with pytest.raises(ConfigError) as err:
        pm.registry.get("render", "nope")
    assert "flat" in str(err.value) and "needsblink" in str(err.value)


def test_duplicate_stage_name_is_an_error(pm):
    class Again:
        @hookimpl
        def register_renderers(self, register):
            register(FlatRenderer)

    pm.register(Again(), name="again")
    with pytest.raises(PluginError, match="duplicate renderer name 'flat'.*test-stages"):
        pm.registry  # noqa: B018


def test_duplicate_preset_is_an_error(pm):
    class Again:
        @hookimpl
        def register_presets(self, register):
            register("toy", {})

    pm.register(Again(), name="again")
    with pytest.raises(PluginError, match="duplicate preset 'toy'"):
        pm.registry  # noqa: B018


def test_registering_the_wrong_kind_is_an_error(pm):
    class Wrong:
        @hookimpl
        def register_renderers(self, register):
            register(RmsEncoder)

    pm.register(Wrong(), name="wrong")
    with pytest.raises(PluginError, match="not a subclass of Renderer"):
        pm.registry  # noqa: B018


def test_misspelled_hook_fails_loudly(pm):
    class Typo:
        @hookimpl
        def register_renderer(self, register):  # missing "s"
            register(FlatRenderer)

    pm.register(Typo(), name="typo")
    with pytest.raises(PluginError, match="unknown hook"):
        pm.registry  # noqa: B018


def test_env_var_disables_entry_point_autoload(monkeypatch):
    calls = []
    monkeypatch.setattr("pluggy.PluginManager.load_setuptools_entrypoints",
                        lambda self, group, name=None: calls.append(group))
    monkeypatch.setenv(plugins_mod.DISABLE_ENV, "1")
    PluginManager()
    assert calls == []
    monkeypatch.delenv(plugins_mod.DISABLE_ENV)
    PluginManager()
    assert calls == ["talkingface"]


def test_unregister_rebuilds_registry(pm):
    assert "rms" in pm.registry.names("audio")
    pm.unregister(name="test-stages")
    assert "rms" not in pm.registry.names("audio")
    pm.register(TestStagesPlugin(), name="test-stages")
    assert "rms" in pm.registry.names("audio")


def test_call_stage_hook_can_be_wrapped(pm, controls, portrait, speech):
    from talkingface.pipeline.graph import StageGraph
    from tests.pipeline.toy_stages import SmoothJaw

    seen = []

    class Spy:
        @hookimpl(wrapper=True)
        def call_stage(self, stage, method, args, kwargs):
            result = yield
            seen.append((stage.kind, method))
            return result

    pm.register(Spy(), name="spy")
    StageGraph(RmsEncoder(), SmoothJaw(), FlatRenderer(), plugin_manager=pm,
               controls=controls).run(portrait, speech)
    assert ("audio", "encode") in seen and ("render", "render") in seen
    assert ("sink", "write") in seen
