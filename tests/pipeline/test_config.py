import pytest
from omegaconf import OmegaConf

from talkingface.pipeline.config import (
    controls_from_config,
    load_config,
    normalize_overrides,
    to_yaml,
)
from talkingface.pipeline.errors import ConfigError


def cfg(pm, *overrides, source="toy"):
    return load_config(source, list(overrides), registry=pm.registry)


def test_preset_fills_stage_params_with_defaults(pm):
    c = cfg(pm)
    assert c.audio.name == "rms" and c.render.name == "flat"
    assert c.render.params.size == 16
    assert c.motion.params.smoothing == 0.5
    assert c.fps == 25.0


def test_dotlist_overrides_and_stage_shorthand(pm):
    c = cfg(pm, "render.params.size=8", "fps=30", "motion=jaw", "controls.emotion=happy")
    assert c.render.params.size == 8 and c.fps == 30.0
    assert c.motion.name == "smoothjaw"  # alias resolved
    assert c.controls.emotion == "happy"


def test_interpolation_is_resolved(pm):
    c = cfg(pm, "seed=42", "motion.params.gain=${fps}")
    assert c.controls.seed == 42
    assert c.motion.params.gain == 25.0


def test_unknown_stage_lists_the_valid_choices(pm):
    with pytest.raises(ConfigError) as err:
        cfg(pm, "render=nosuchrenderer")
    assert "nosuchrenderer" in str(err.value) and "flat" in str(err.value)


def test_unknown_stage_param_lists_valid_fields(pm):
    with pytest.raises(ConfigError) as err:
        cfg(pm, "render.params.sise=8")
    assert "sise" in str(err.value) and "size" in str(err.value)


def test_wrongly_typed_stage_param(pm):
    with pytest.raises(ConfigError, match="size"):
        cfg(pm, "render.params.size=big")


def test_wrongly_typed_top_level_value(pm):
    with pytest.raises(ConfigError, match="fps"):
        cfg(pm, "fps=fast")


def test_unknown_top_level_key_lists_keys(pm):
    with pytest.raises(ConfigError) as err:
        cfg(pm, "fsp=30")
    assert "fsp" in str(err.value) and "fps" in str(err.value)


@pytest.mark.parametrize("override, words", [
    ("controls.emotion=bored", "neutral"),
    ("controls.head_motion=9", "head_motion"),
    ("kernels.backend=cuda", "auto, torch, triton"),
    ("chunk_frames=0", "chunk_frames"),
    ("stream.chunk_s=0", "stream.chunk_s must be > 0"),
    ("threads=-1", "threads must be 0"),
])
def test_bad_values_are_refused(pm, override, words):
    with pytest.raises(ConfigError, match=words):
        cfg(pm, override)


def test_override_without_equals_is_explained():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        normalize_overrides(["render"])


def test_yaml_file_and_saved_config_roundtrip(pm, tmp_path):
    c = cfg(pm, "render.params.size=8", "controls.gaze=[0.2,-0.1]")
    path = tmp_path / "saved.yaml"
    path.write_text(to_yaml(c))
    again = load_config(path, registry=pm.registry)
    assert OmegaConf.to_container(again) == OmegaConf.to_container(c)
    assert controls_from_config(again.controls).gaze == (0.2, -0.1)


def test_missing_yaml_file(pm, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", registry=pm.registry)


def test_unknown_preset_lists_presets(pm):
    with pytest.raises(ConfigError, match="toy"):
        load_config("nonexistent-preset", registry=pm.registry)


def test_resolved_config_is_read_only(pm):
    c = cfg(pm)
    with pytest.raises(Exception):  # noqa: B017 - omegaconf's ReadonlyConfigError
        c.fps = 10
