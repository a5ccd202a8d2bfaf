"""Structured configuration (omegaconf): the pipeline schema, presets, dotlist overrides and
per-stage ``Config`` dataclasses.

``load_config("default", ["audio=energy", "motion.params.head_motion=0.5"])`` returns the
resolved config: the schema's defaults, then the preset, then the overrides; every stage's
``params`` validated against (and completed from) that stage's ``Config`` dataclass. Errors are
:class:`ConfigError` messages that list the valid choices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from talkingface.pipeline.contracts import EMOTIONS, STAGE_KINDS, Controls
from talkingface.pipeline.errors import ConfigError
from talkingface.pipeline.params import to_dataclass


@dataclass
class StageChoice:
    """Which registered stage fills a slot, and its parameters.

    Attributes:
        name: a registered stage name (``talkingface plugins`` lists them).
        params: fields of that stage's ``Config`` dataclass; unknown fields are errors.
    """

    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ControlsConfig:
    """User controls (see :class:`~talkingface.pipeline.contracts.Controls`).

    Attributes:
        gaze: fixed gaze ``[x, y]`` in -1..1, or null for natural gaze.
        head_distance: apparent head size, 1 = as in the portrait (0.5..2).
        emotion: neutral, happy, sad, surprised or angry.
        emotion_strength: 0..1.
        head_motion: head-motion amplitude (0 = still, 1 = natural, up to 3).
        blink_rate: blinks per minute.
        still_head: keep the head still.
        guidance: classifier-free guidance scales by name (diffusion generators).
        seed: seed of every random choice (defaults to the top-level ``seed``).
    """

    gaze: list[float] | None = None
    head_distance: float = 1.0
    emotion: str = "neutral"
    emotion_strength: float = 1.0
    head_motion: float = 1.0
    blink_rate: float = 17.0
    still_head: bool = False
    guidance: dict[str, float] = field(default_factory=dict)
    seed: int = "${seed}"  # type: ignore[assignment]  # interpolated from the top level


@dataclass
class KernelsConfig:
    """Attributes:
    backend: ``auto`` (Triton on CUDA when available, else torch), ``torch`` or ``triton``;
        the kernels' process-wide default, set for each run and restored after it (stages may
        still choose their own, e.g. ``render.params.backend``).
    """

    backend: str = "auto"


@dataclass
class StreamConfig:
    """Attributes:
    chunk_s: seconds of audio per streaming chunk after the first frame. Smaller chunks
        deliver frames more evenly but cost more per second of audio (measured costs:
        ``benchmarks/README.md``). The audio
        before the first frame is cut where that frame becomes computable whatever
        ``chunk_s`` is, so it does not set the start latency.
    """

    chunk_s: float = 0.2


@dataclass
class OutputConfig:
    """Attributes:
    crf: H.264 quality (lower = better, 18 is visually lossless).
    preset: x264 speed preset (ultrafast .. veryslow).
    frames_dir: if set, also write every frame as PNG into this directory.
    save_config: write the resolved config as YAML beside the output.
    content_credentials: sign every MP4 file with Content Credentials (a C2PA manifest
        saying the video is AI-generated and made by talkingface). A stream to a pipe
        cannot be signed (the manifest covers the finished file).
    signing_certificate: PEM certificate chain to sign with (with ``signing_key``); unset,
        a local self-signed key is made once and reused, and the manifest says it is
        self-signed.
    signing_key: PEM private key of ``signing_certificate``.
    signing_algorithm: the key's signature algorithm (``es256`` for EC P-256, ``ps256``
        for RSA, ``ed25519``, ...).
    """

    crf: int = 18
    preset: str = "veryfast"
    frames_dir: str | None = None
    save_config: bool = True
    content_credentials: bool = True
    signing_certificate: str | None = None
    signing_key: str | None = None
    signing_algorithm: str = "es256"


@dataclass
class WatermarkConfig:
    """Attributes:
    enabled: mark every rendered frame with the invisible provenance watermark (before any
        sink: files, streams, PNG dumps and in-memory frames). Turning it off is recorded in
        the saved config and the output's metadata, and ``talkingface run`` says so.
    user: a 12-bit number (0..4095) carried in the mark's payload, e.g. to tell your
        deployments apart; ``talkingface verify`` reports it.
    strength: the mark's local strength relative to the texture it hides in (0.1..4; see
        ``talkingface.provenance.watermark.Watermarker``): higher survives harsher edits and
        is less invisible. Frames keep a PSNR of 40 dB or more whatever the strength.
    """

    enabled: bool = True
    user: int = 0
    strength: float = 1.5


@dataclass
class PipelineConfig:
    """The whole pipeline.

    Attributes:
        fps: video frame rate.
        seed: seed for every random choice (controls.seed follows it).
        device: ``cpu`` or ``cuda[:N]``.
        chunk_frames: frames rendered per batch (bounded memory for any audio length).
        threads: torch CPU threads (``torch.set_num_threads``) while this pipeline runs.
            The setting is process-wide, so each run sets it and restores the previous count
            when it ends (``talkingface.api.process_settings``). 0 leaves torch's choice (one
            per core). On a machine whose cores are busy with other work, fewer threads than
            cores can be faster.
        allow_silent: accept silent audio (renders a still face) instead of refusing it.
        audio: the audio encoder. motion: the motion generator. render: the renderer.
        controls: user controls. kernels: kernel backend. stream: streaming. output: writer.
        watermark: the invisible provenance watermark.
    """

    fps: float = 25.0
    seed: int = 0
    device: str = "cpu"
    chunk_frames: int = 16
    threads: int = 0
    allow_silent: bool = False
    audio: StageChoice = field(default_factory=lambda: StageChoice(name="visemes"))
    motion: StageChoice = field(default_factory=lambda: StageChoice(name="rules"))
    render: StageChoice = field(default_factory=lambda: StageChoice(name="meshwarp"))
    controls: ControlsConfig = field(default_factory=ControlsConfig)
    kernels: KernelsConfig = field(default_factory=KernelsConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    watermark: WatermarkConfig = field(default_factory=WatermarkConfig)


def normalize_overrides(overrides: Iterable[str]) -> list[str]:
    """Dotlist overrides, with the shorthand ``render=NAME`` meaning ``render.name=NAME``."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} is not KEY=VALUE (e.g. audio=energy or fps=30); "
                "see `talkingface config` for the keys"
            )
        key, value = item.split("=", 1)
        key = key.strip().lstrip("+")
        if key in STAGE_KINDS:
            key = f"{key}.name"
        out.append(f"{key}={value}")
    return out


def _keys_of(node: Any) -> str:
    try:
        return ", ".join(str(k) for k in node)
    except AttributeError:
        return "(none)"


def _explain(exc: OmegaConfBaseException, schema: Any) -> str:
    """One-line explanation of an omegaconf error, with the valid keys when a key is unknown."""
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    msg = (getattr(exc, "msg", None) or str(exc)).strip().splitlines()[0]
    if isinstance(exc, ConfigKeyError):
        parent = schema
        parts = str(key).split(".")[:-1] if key else []
        for part in parts:
            try:
                parent = parent[part]
            except Exception:  # noqa: BLE001 - best effort path walk for the message
                break
        return f"unknown config key {key!r}; valid keys here: {_keys_of(parent)}"
    return f"bad config value for {key!r}: {msg}" if key else msg


def _source_to_config(source: Any, registry) -> DictConfig:
    if isinstance(source, DictConfig):
        return source
    if isinstance(source, Mapping):
        return OmegaConf.create(dict(source))
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.suffix in (".yaml", ".yml") or path.exists():
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            try:
                return OmegaConf.load(path)
            except Exception as exc:  # yaml errors come in many types
                raise ConfigError(f"cannot read config {path}: {exc}") from exc
        preset = registry.preset(str(source))
        return _source_to_config(preset.config, registry)
    raise ConfigError(f"config must be a preset name, YAML path or mapping, got {type(source)}")


def load_config(
    source: Any = "default",
    overrides: Iterable[str] = (),
    *,
    registry=None,
) -> DictConfig:
    """Build the resolved pipeline config.

    Args:
        source: preset name (``talkingface plugins`` lists presets), YAML path, mapping or
            DictConfig (partial configs are merged over the schema's defaults).
        overrides: dotlist strings, e.g. ``["render=meshwarp", "controls.emotion=happy"]``.
        registry: the plugin registry to validate stage names against (default: global).
    Returns:
        A resolved, read-only DictConfig whose stage ``params`` hold every field of the
        stage's ``Config`` (defaults filled in).
    """
    if registry is None:
        from talkingface.pipeline.registry import get_plugin_manager

        registry = get_plugin_manager().registry
    schema = OmegaConf.structured(PipelineConfig)
    try:
        cfg = OmegaConf.merge(
            schema,
            _source_to_config(source, registry),
            OmegaConf.from_dotlist(normalize_overrides(overrides)),
        )
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(_explain(exc, schema)) from None
    for kind in STAGE_KINDS:
        choice = container[kind]
        entry = registry.get(kind, choice["name"])
        if entry.name != choice["name"]:
            choice["name"] = entry.name  # alias resolved
        stage_cfg = to_dataclass(entry.cls.Config, choice["params"])
        choice["params"] = OmegaConf.to_container(OmegaConf.structured(stage_cfg))
    _validate_controls(container["controls"])
    if container["fps"] <= 0 or container["fps"] > 240:
        raise ConfigError(f"fps must be in (0, 240], got {container['fps']}")
    if container["chunk_frames"] < 1:
        raise ConfigError(f"chunk_frames must be >= 1, got {container['chunk_frames']}")
    if container["threads"] < 0:
        raise ConfigError(
            f"threads must be 0 (torch's default) or a positive number of CPU threads, "
            f"got {container['threads']}"
        )
    if not container["stream"]["chunk_s"] > 0:
        raise ConfigError(
            f"stream.chunk_s must be > 0 seconds, got {container['stream']['chunk_s']}"
        )
    mark = container["watermark"]
    if not 0 <= mark["user"] < 4096:
        raise ConfigError(f"watermark.user must be in 0..4095 (12 bits), got {mark['user']}")
    if not 0.1 <= mark["strength"] <= 4:
        raise ConfigError(f"watermark.strength must be in 0.1..4, got {mark['strength']}")
    out = container["output"]
    if (out["signing_certificate"] is None) != (out["signing_key"] is None):
        raise ConfigError(
            "output.signing_certificate and output.signing_key go together: give both (PEM "
            "files), or neither to sign with a local self-signed key"
        )
    if container["kernels"]["backend"] not in ("auto", "torch", "triton"):
        raise ConfigError(
            "kernels.backend must be one of auto, torch, triton; "
            f"got {container['kernels']['backend']!r}"
        )
    resolved = OmegaConf.merge(schema, container)
    OmegaConf.set_readonly(resolved, True)
    return resolved


def _validate_controls(controls: dict) -> None:
    if controls["emotion"] not in EMOTIONS:
        raise ConfigError(
            f"controls.emotion must be one of: {', '.join(EMOTIONS)}; got {controls['emotion']!r}"
        )
    try:
        controls_from_config(controls)
    except ValueError as exc:
        raise ConfigError(f"bad controls: {exc}") from None


def controls_from_config(controls: Mapping | DictConfig) -> Controls:
    """The ``Controls`` contract object for the ``controls`` section of a config."""
    data = (
        OmegaConf.to_container(controls, resolve=True)
        if isinstance(controls, DictConfig)
        else dict(controls)
    )
    gaze = data.pop("gaze", None)
    return Controls(gaze=tuple(gaze) if gaze is not None else None, **data)


def stage_params(cfg: DictConfig, kind: str) -> dict:
    """Plain dict of a stage's params from a resolved config."""
    return OmegaConf.to_container(cfg[kind].params, resolve=True)


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
