"""The Python API, the application layer: everything the ``talkingface`` command does is a call
here (the CLI only parses arguments and prints).

    from talkingface import Pipeline

    pipe = Pipeline.from_config("default", overrides=["controls.emotion=happy"])
    result = pipe.run("portrait.jpg", "speech.wav", output="out.mp4")
    frames = pipe.run(image_array, (waveform, 16000)).frames      # in memory
    for chunk in pipe.stream("portrait.jpg", "speech.wav"):       # streaming
        ...
    for chunk in pipe.stream("portrait.jpg", "speech.wav", output="live.mp4"):  # + fragmented MP4
        ...

It converts what users have (files, arrays, any sample rate) into the contracts the stage graph
takes, owns the sinks (MP4, PNG), and scopes the process-wide settings (``threads``,
``kernels.backend``) to each run.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from talkingface.pipeline.config import controls_from_config, load_config, stage_params, to_yaml
from talkingface.pipeline.contracts import STAGE_KINDS, Audio, Frames, Portrait, PreparedPortrait
from talkingface.pipeline.errors import ConfigError, InputError, TalkingFaceError
from talkingface.pipeline.graph import DiscardSink, FrameCollector, RunResult, Sink, StageGraph
from talkingface.pipeline.registry import PluginManager, get_plugin_manager

__all__ = [
    "DiscardSink",
    "FrameCollector",
    "InputError",
    "Pipeline",
    "RunResult",
    "Sink",
    "TalkingFaceError",
    "config_yaml",
    "verify",
    "describe_plugins",
    "format_plugins",
]

AudioLike = Audio | str | Path | tuple | np.ndarray | torch.Tensor
ImageLike = Portrait | PreparedPortrait | str | Path | np.ndarray | torch.Tensor


def as_portrait(image: ImageLike) -> Portrait | PreparedPortrait:
    """A Portrait from a path, array, tensor or PIL image (PreparedPortrait passes through)."""
    if isinstance(image, (Portrait, PreparedPortrait)):
        return image
    from talkingface.io import load_image

    return load_image(image)


def as_audio(audio: AudioLike, target_rate: int) -> Audio:
    """An Audio from a path, ``(array, sample_rate)`` tuple, or Audio (resampled once)."""
    from talkingface.io import load_audio

    if isinstance(audio, Audio):
        if audio.sample_rate == target_rate:
            return audio
        return load_audio(audio.samples, sample_rate=audio.sample_rate, target_rate=target_rate)
    if isinstance(audio, tuple):
        if len(audio) != 2:
            raise InputError("give audio arrays as (samples, sample_rate)")
        return load_audio(audio[0], sample_rate=int(audio[1]), target_rate=target_rate)
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        raise InputError(
            "an audio array needs its sample rate: pass (samples, sample_rate) or an Audio"
        )
    return load_audio(audio, target_rate=target_rate)


def cut_audio(chunks: Iterable[Audio], sizes: Iterable[int]) -> Iterator[Audio]:
    """The stream ``chunks`` (consecutive mono ``Audio``) cut into pieces of ``sizes`` samples,
    in order, with their offsets in the stream; the last piece may be shorter. When ``sizes``
    runs out, the rest of the stream passes as it comes."""
    sizes = iter(sizes)
    want, parts, held, offset, rate = next(sizes, None), [], 0, 0, 0
    for chunk in chunks:
        if want is None:
            yield Audio(chunk.samples, chunk.sample_rate, offset)
            offset += chunk.num_samples
            continue
        rate = chunk.sample_rate
        parts.append(chunk.samples)
        held += chunk.num_samples
        while want is not None and held >= want:
            buffer = torch.cat(parts) if len(parts) > 1 else parts[0]
            yield Audio(buffer[:want], rate, offset)
            parts = [buffer[want:]] if held > want else []
            offset, held, want = offset + want, held - want, next(sizes, None)
        if want is None and held:
            yield Audio(torch.cat(parts), rate, offset)
            offset, held, parts = offset + held, 0, []
    if held:
        yield Audio(torch.cat(parts), rate, offset)


@contextlib.contextmanager
def process_settings(threads: int, kernel_backend: str) -> Iterator[None]:
    """Apply the pipeline's process-wide settings for the duration of a run, then restore them.

    ``threads`` (torch's CPU thread count; 0 leaves it as it is) and ``kernel_backend`` (the
    default backend of :mod:`talkingface.kernels`) are global to the process, so a library user
    who builds a pipeline with ``threads=1`` must not find torch single-threaded afterwards.
    A streaming run applies them while the stages compute each chunk and restores the caller's
    before handing the chunk out, so streams may interleave.
    """
    from talkingface import kernels

    threads_before, backend_before = torch.get_num_threads(), kernels.get_default_backend()
    try:
        if threads and threads != threads_before:
            torch.set_num_threads(threads)
        kernels.set_default_backend(kernel_backend)
        yield
    finally:
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
        kernels.set_default_backend(backend_before)


class Pipeline:
    """A configured stage graph plus the conveniences of files, arrays, presets and sinks.

    Build it with :meth:`from_config`. ``threads`` and ``kernels.backend`` are process-wide
    settings: each run applies them and restores the previous values when it ends (see
    :func:`process_settings`).
    """

    def __init__(self, config: DictConfig, *, plugin_manager: PluginManager | None = None):
        self.pm = plugin_manager or get_plugin_manager()
        self.config = config
        registry = self.pm.registry
        stages = [registry.get(kind, config[kind].name).cls(stage_params(config, kind),
                                                             device=config.device)
                  for kind in STAGE_KINDS]
        out_cfg = config.output
        if out_cfg.content_credentials and out_cfg.signing_certificate is not None:
            try:  # a missing, unreadable or non-PEM file fails before the run
                self._signing_identity().read()
            except OSError as exc:
                raise ConfigError(f"cannot read the signing identity "
                                  f"({out_cfg.signing_certificate}, {out_cfg.signing_key}): "
                                  f"{exc.strerror or exc}") from exc
        self.graph = StageGraph(
            *stages,
            fps=config.fps,
            chunk_frames=config.chunk_frames,
            controls=controls_from_config(config.controls),
            plugin_manager=self.pm,
            frame_filters=self._frame_filters(),
        )

    def _frame_filters(self) -> list:
        """The filters every rendered frame passes: the provenance watermark unless
        ``watermark.enabled=false``."""
        mark = self.config.watermark
        if not mark.enabled:
            return []
        from talkingface.provenance.watermark import WatermarkFilter

        return [WatermarkFilter(mark.user, mark.strength)]

    @classmethod
    def from_config(
        cls,
        config: Any = "default",
        overrides: list[str] | tuple[str, ...] = (),
        *,
        inputs: Mapping[str, Any] | None = None,
        plugin_manager: PluginManager | None = None,
    ) -> Pipeline:
        """Build from a preset name, YAML path, mapping or DictConfig plus dotlist overrides.

        Args:
            inputs: per-run inputs for the stages that declare them (``Stage.inputs``), by name,
                e.g. ``{"text": "what is said"}`` for an encoder that aligns a transcript. Each
                goes to the parameter of that name of every chosen stage that declares it,
                replacing what the config or the overrides set there; one that no chosen stage
                takes is an :class:`InputError` naming the stages that do (so is text with
                ``${``, which the config would read as an interpolation).
        """
        pm = plugin_manager or get_plugin_manager()
        resolved = load_config(config, overrides, registry=pm.registry)
        if inputs:
            try:
                resolved = load_config(_with_inputs(resolved, inputs, pm), registry=pm.registry)
            except ConfigError as exc:
                raise InputError(f"bad value for the input(s) {', '.join(map(repr, inputs))}: "
                                 f"{exc}") from None
        return cls(resolved, plugin_manager=pm)

    @property
    def description(self) -> str:
        return self.graph.describe()

    @property
    def last_profile(self):
        return self.graph.last_profile

    last_credentials = None
    """The Content Credentials result (:class:`talkingface.provenance.SignResult`) of the last
    MP4 written (unsigned, with the reason, for a stream to a pipe), or None before any or
    with ``output.content_credentials=false``."""

    def _settings(self):
        return process_settings(self.config.threads, self.config.kernels.backend)

    def prepare(self, image: ImageLike) -> PreparedPortrait:
        """Analyse a portrait once; pass the result to several ``run`` calls."""
        portrait = as_portrait(image)
        if isinstance(portrait, PreparedPortrait):
            return portrait
        with self._settings():
            return self.graph.prepare(portrait)

    def load_audio(self, audio: AudioLike) -> Audio:
        """Audio at the encoder's rate; silent audio refused unless ``allow_silent``."""
        source = str(audio) if isinstance(audio, (str, Path)) else ""
        clip = as_audio(audio, self.graph.audio.sample_rate)
        if not self.config.allow_silent:
            from talkingface.io import check_not_silent

            check_not_silent(clip, source=source)
        return clip

    def default_audio(self) -> str | Path | None:
        """The audio a run takes when it is given none: the motion source's (the ``video``
        source's driver's sound track), or None when the motion is made from audio.

        Raises:
            InputError: the motion source has audio of its own but cannot give it (a driver
                video without a sound track).
        """
        return self.graph.motion.default_audio()

    def _audio_or_default(self, audio: AudioLike | None) -> AudioLike:
        if audio is not None:
            return audio
        default = self.default_audio()
        if default is None:
            raise InputError(
                f"give the speech audio: the motion source {self.graph.motion.name!r} makes "
                "motion from audio (motion=video takes a driver video's own sound track)"
            )
        return default

    def run(
        self,
        image: ImageLike,
        audio: AudioLike | None = None,
        output: str | Path | None = None,
        *,
        sink: Sink | None = None,
        progress: bool = False,
    ) -> RunResult:
        """Batch run. With ``output`` (an .mp4 path) frames stream to the file, which is signed
        with Content Credentials, and the resolved config is saved beside it; without, frames
        are returned in ``result.frames`` (uint8 once watermarked, whatever the renderer made).
        ``progress`` shows a progress bar (tqdm) on stderr. ``audio`` may be left out when the
        motion source has its own (:meth:`default_audio`); the video's length follows the
        audio."""
        portrait = as_portrait(image)
        clip = self.load_audio(self._audio_or_default(audio))
        bar = None
        if output is not None:
            known = portrait.size if isinstance(portrait, PreparedPortrait) else None
            sink = self._file_sink(output, clip, known)
        if progress:
            from tqdm import tqdm

            from talkingface.pipeline.contracts import num_frames_for

            bar = tqdm(total=num_frames_for(clip.num_samples, clip.sample_rate, self.config.fps),
                       unit="frame", desc="rendering", leave=False)
        try:
            with self._settings():
                result = self.graph.run(portrait, clip, sink or FrameCollector(),
                                        progress=bar.update if bar else None)
        except BaseException as exc:
            if isinstance(sink, _FileSink):
                sink.abort(exc)
            raise
        finally:
            if bar is not None:
                bar.close()
        if output is not None:
            self._finish_file(Path(output))
        return result

    def stream(
        self,
        image: ImageLike,
        audio: AudioLike | None = None,
        *,
        chunk_s: float | None = None,
        output: str | Path | BinaryIO | None = None,
    ) -> Iterator[Frames]:
        """Streaming run over a file or array, chunk by chunk (:meth:`audio_chunks`: the audio
        up to the first frame, then ``config.stream.chunk_s`` pieces). Frames come out as soon
        as the stages can emit them; ``last_profile`` has the start latency afterwards. A file
        is decoded as it streams, so memory does not grow with its length.

        Bad audio fails here. With ``output`` (an .mp4 path, or a binary file object such as
        ``sys.stdout.buffer``), a bad portrait fails here too, and every chunk is also written
        to a fragmented MP4, sound included, which players can read while it grows. The file
        is opened on the first ``next()``, finished when the iterator is exhausted or closed
        early (then it ends where the frames stopped), removed if the run fails, and the config
        is saved beside a path. A loop that may raise should close the iterator itself
        (``with contextlib.closing(pipe.stream(...)) as frames:``): an iterator left to the
        garbage collector is finished, not removed, whenever it is collected. ``audio``: as in
        :meth:`run`.
        """
        chunks = self.audio_chunks(self._audio_or_default(audio), chunk_s)
        return self.stream_chunks(image, chunks, output=output)

    def audio_chunks(self, audio: AudioLike, chunk_s: float | None = None) -> Iterator[Audio]:
        """Consecutive ``Audio`` chunks at the encoder's rate, for :meth:`stream`; silent audio
        refused unless ``allow_silent``.

        The audio before the first frame is cut where each feature frame that frame needs
        becomes computable (:meth:`StageGraph.first_frame_points`), so the first frame waits
        for no more audio than it depends on (what a live capture that processes audio as it
        arrives achieves); from there on, chunks of ``chunk_s`` seconds (default
        ``config.stream.chunk_s``), which set the per-chunk overhead.

        A file is decoded incrementally (:func:`~talkingface.io.stream_audio_file`), so memory
        does not grow with its length; the samples are exactly those of the whole clip from
        :meth:`load_audio`. Bad files (missing, not audio, empty, silent) fail here; damage in
        the middle of a file fails when decoding reaches it.
        """
        rate = self.graph.audio.sample_rate
        seconds = self.config.stream.chunk_s if chunk_s is None else chunk_s
        if not seconds > 0:
            raise InputError(f"chunk_s must be a positive number of seconds, got {seconds!r}")
        step = max(1, round(seconds * rate))
        if isinstance(audio, (str, Path)):
            from talkingface.io import check_not_silent, stream_audio_file

            if not self.config.allow_silent:
                # A separate decoder that stops at the first loud chunk (speech: the first
                # second), so a silent file fails before streaming starts.
                check_not_silent(stream_audio_file(audio, target_rate=rate, chunk_samples=rate),
                                 source=str(audio))
            chunks = stream_audio_file(audio, target_rate=rate, chunk_samples=step)
        else:
            chunks = self.load_audio(audio).chunks(step)
        points = self.graph.first_frame_points(rate)
        lead = [b - a for a, b in itertools.pairwise([0, *points]) if b > a]
        return cut_audio(chunks, itertools.chain(lead, itertools.repeat(step)))

    def stream_chunks(
        self,
        image: ImageLike,
        chunks: Iterable[Audio],
        *,
        output: str | Path | BinaryIO | None = None,
    ) -> Iterator[Frames]:
        """Streaming run over live audio: ``chunks`` yields consecutive mono ``Audio`` pieces at
        any one rate (converted to the encoder's as a stream). ``output``: as in
        :meth:`stream`; then the portrait is prepared here, so a bad one fails before anything
        is written (without ``output`` it is prepared by the run, and profiled with it)."""
        from talkingface.io import resample_chunks

        # One resampler for the whole stream: chunks of any size, the samples of a batch run.
        chunks = resample_chunks(chunks, self.graph.audio.sample_rate)
        if output is None:
            return self._streamed(as_portrait(image), chunks)
        if isinstance(output, (str, Path)):
            _check_output_path(Path(output))
        prepared = self.prepare(image)
        return self._streamed_to_file(prepared, chunks, output)

    def _streamed(self, portrait, chunks: Iterable[Audio]) -> Iterator[Frames]:
        """The graph's stream, with the process-wide settings applied while the stages work
        and the caller's own restored whenever a chunk is handed out (two streams may
        interleave; the code between chunks is the caller's)."""
        frames_iter = self.graph.stream(portrait, chunks)
        try:
            while True:
                with self._settings():
                    frames = next(frames_iter, None)
                if frames is None:
                    return
                yield frames
        finally:
            frames_iter.close()

    def _streamed_to_file(self, prepared, chunks, output) -> Iterator[Frames]:
        """:meth:`_streamed`, also written to a fragmented MP4. The file is opened on the first
        ``next()`` (an iterator never started leaves nothing behind), finished when the stream
        ends or the caller stops early (cut where the frames stop), removed on an error."""
        from talkingface.io import VideoWriter

        out_cfg = self.config.output
        writer = VideoWriter(output, self.config.fps, prepared.size,
                             audio_rate=self.graph.audio.sample_rate, metadata=self.metadata(),
                             crf=out_cfg.crf, preset=out_cfg.preset, fragmented=True)
        try:
            for frames in self._streamed(prepared, _recorded(chunks, writer)):
                writer.write(frames)
                yield frames
        except GeneratorExit:  # the caller stopped early: the file ends where the frames do
            writer.trim_audio_to_video()
            self._finish_stream_file(writer, output)
            raise
        except BaseException as exc:
            writer.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._finish_stream_file(writer, output)

    def _finish_stream_file(self, writer, output) -> None:
        writer.close()
        if isinstance(output, (str, Path)):
            self._finish_file(Path(output))
        elif self.config.output.content_credentials:
            from talkingface.provenance import not_signed

            self.last_credentials = not_signed(
                "they are not added to a stream written to a pipe or file object (the manifest "
                "covers the finished file)")

    def _finish_file(self, path: Path) -> None:
        """What follows a finished MP4: the resolved config beside it and Content Credentials
        in it (per ``config.output``); :attr:`last_credentials` says whether it was signed."""
        out_cfg = self.config.output
        if out_cfg.save_config:
            self.save_config(path)
        self.last_credentials = None
        if out_cfg.content_credentials:
            from talkingface.provenance import sign_mp4

            self.last_credentials = sign_mp4(path, self._signing_identity())

    def _signing_identity(self):
        """The configured signing identity, or None for the local self-signed one."""
        from talkingface.provenance import SigningIdentity

        out_cfg = self.config.output
        if out_cfg.signing_certificate is None:
            return None
        return SigningIdentity(Path(out_cfg.signing_certificate), Path(out_cfg.signing_key),
                               out_cfg.signing_algorithm)

    def metadata(self) -> dict[str, str]:
        """The tags of this pipeline's outputs: which stages and config made them (the writer
        adds the note that the video is synthetic)."""
        from talkingface.io import run_tags

        return run_tags(self.config, self.description)

    def save_config(self, output: str | Path) -> Path:
        """Write the resolved config beside ``output`` (``out.mp4`` → ``out.yaml``)."""
        path = Path(output).with_suffix(".yaml")
        path.write_text(to_yaml(self.config), encoding="utf-8")
        return path

    def _file_sink(
        self, output: str | Path, clip: Audio, size: tuple[int, int] | None = None
    ) -> _FileSink:
        """The MP4 sink of a batch run. ``size``: the prepared portrait's frame size, when
        known (else the writer opens on the first frames, whose size it takes)."""
        from talkingface.io import PNGWriter, VideoWriter

        path = Path(output)
        _check_output_path(path)
        out_cfg = self.config.output
        metadata = self.metadata()

        def open_video(frame_size: tuple[int, int]) -> VideoWriter:
            return VideoWriter(path, self.config.fps, frame_size, audio=clip,
                               metadata=metadata, crf=out_cfg.crf, preset=out_cfg.preset)

        pngs = PNGWriter(out_cfg.frames_dir, metadata=metadata) if out_cfg.frames_dir else None
        return _FileSink(open_video, pngs, size)


def _check_output_path(path: Path) -> None:
    if path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise InputError(f"output must be an .mp4 file, got {path.name!r}")
    if not path.parent.exists():
        raise InputError(f"output folder does not exist: {path.parent}")


def _recorded(chunks: Iterable[Audio], writer) -> Iterator[Audio]:
    """``chunks`` passed on unchanged, each also appended to ``writer``'s sound track as the
    graph takes it."""
    for chunk in chunks:
        writer.write_audio(chunk)
        yield chunk


class _FileSink(Sink):
    """MP4 (and optional PNG dumps) as one sink.

    The frame size can depend on the portrait (a renderer that pastes the face back into the
    whole picture renders at the picture's size), so the MP4 writer opens with the prepared
    portrait's size when it is known, else on the first frames, with theirs.
    """

    def __init__(self, open_video, pngs=None, size: tuple[int, int] | None = None) -> None:
        self._open_video, self.pngs = open_video, pngs
        self.video = open_video(tuple(size)) if size is not None else None

    def write(self, frames: Frames) -> None:
        if self.video is None:
            self.video = self._open_video(frames.size)
        self.video.write(frames)
        if self.pngs is not None:
            self.pngs.write(frames)

    def close(self):
        if self.pngs is not None:
            self.pngs.close()
        return None if self.video is None else self.video.close()

    def abort(self, exc: BaseException) -> None:
        """The run failed: drop the partial MP4 (an earlier file at that path stays intact)."""
        if self.video is not None:
            self.video.__exit__(type(exc), exc, exc.__traceback__)


def _with_inputs(config: DictConfig, inputs: Mapping[str, Any], pm: PluginManager) -> dict:
    """``config`` (resolved) with each input set as the parameter of the stages that take it."""
    data = OmegaConf.to_container(config, resolve=False)
    registry = pm.registry
    for name, value in inputs.items():
        if isinstance(value, str) and not value.strip():
            raise InputError(f"the input {name!r} is empty: give it a value, or leave it out")
        takers = [kind for kind in STAGE_KINDS
                  if name in registry.get(kind, config[kind].name).cls.inputs]
        if not takers:
            raise InputError(_no_taker_message(name, config, registry))
        if isinstance(value, str) and "${" in value:
            raise InputError(f"the input {name!r} contains '${{', which the config would read as "
                             "an interpolation: leave it out of the text")
        for kind in takers:
            data[kind]["params"][name] = value
    return data


def _no_taker_message(name: str, config: DictConfig, registry) -> str:
    """Which registered stages (and presets) take the input ``name`` that no chosen stage does."""
    chosen = ">".join(config[kind].name for kind in STAGE_KINDS)
    offers = [f"{kind}={entry.name}" for kind in STAGE_KINDS
              for entry in registry.stages[kind].values() if name in entry.cls.inputs]
    presets = []
    for preset in sorted(registry.presets):
        with contextlib.suppress(TalkingFaceError):
            cfg = load_config(preset, registry=registry)
            if any(name in registry.get(k, cfg[k].name).cls.inputs for k in STAGE_KINDS):
                presets.append(f"--preset {preset}")
    where = ", ".join(presets + offers) or "none is installed"
    return f"no stage of {chosen} takes the input {name!r}; use one that does: {where}"


def verify(paths: Iterable[str | Path]) -> list:
    """What each video or image says about its origin
    (:class:`talkingface.provenance.Verification`; an unreadable file raises InputError)."""
    from talkingface.provenance import verify_file

    return [verify_file(path) for path in paths]


def config_yaml(config: Any = "default", overrides: Iterable[str] = ()) -> str:
    """The resolved config of a preset / YAML file / mapping plus overrides, as YAML."""
    return to_yaml(load_config(config, list(overrides)))


def describe_plugins(plugin_manager: PluginManager | None = None) -> dict[str, list[dict]]:
    """Every registered stage (kind, name, class, origin, aliases, declarations, config fields,
    first docstring line) and preset (name, origin, description), as plain data."""
    registry = (plugin_manager or get_plugin_manager()).registry
    data: dict[str, list[dict]] = {"stages": [], "presets": []}
    for kind in STAGE_KINDS:
        for name in registry.names(kind):
            entry = registry.stages[kind][name]
            data["stages"].append({
                "kind": kind,
                "name": name,
                "class": f"{entry.cls.__module__}.{entry.cls.__qualname__}",
                "origin": entry.origin,
                "aliases": list(entry.aliases),
                "declares": entry.cls().declarations(),
                "config": [{"name": n, "type": t, "default": d}
                           for n, t, d in entry.cls.config_fields()],
                "doc": (entry.cls.__doc__ or "").strip().splitlines()[0:1],
            })
    for name in sorted(registry.presets):
        p = registry.presets[name]
        data["presets"].append({"name": name, "origin": p.origin, "description": p.description})
    return data


def format_plugins(data: dict[str, list[dict]]) -> str:
    """:func:`describe_plugins` as the text ``talkingface plugins`` prints."""
    lines = []
    for kind, title in STAGE_KINDS.items():
        lines.append(f"{title}s ({kind}=NAME):")
        for s in (s for s in data["stages"] if s["kind"] == kind):
            doc = s["doc"][0] if s["doc"] else ""
            lines.append(f"  {s['name']:<14} {doc}")
            lines.append(f"  {'':<14} origin: {s['origin']}; declares: "
                         + ", ".join(f"{k}={v}" for k, v in s["declares"].items()))
            lines += [f"  {'':<14}   {kind}.params.{f['name']}: {f['type']} = {f['default']!r}"
                      for f in s["config"]]
        lines.append("")
    lines.append("presets (--preset NAME):")
    lines += [f"  {p['name']:<14} {p['description']}  [{p['origin']}]" for p in data["presets"]]
    return "\n".join(lines)
