"""Tests of media I/O: portrait and speech loading, resampling, MP4/PNG writing, probing."""

from __future__ import annotations

import io
import json
import math

import av
import numpy as np
import PIL.Image
import pytest
import soundfile as sf
import torch

from talkingface import __version__
from talkingface.io import (
    PROVENANCE,
    PNGWriter,
    VideoWriter,
    audio_level_db,
    check_not_silent,
    load_audio,
    load_image,
    probe_media,
    read_video,
    resample,
    stream_audio_file,
)
from talkingface.pipeline.contracts import Audio, Frames
from talkingface.pipeline.errors import ConfigError, InputError

# ----------------------------------------------------------------------------- helpers


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)).astype(
        np.float32
    )


def peak_frequency(samples: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.numpy() * np.hanning(samples.numel())))
    return float(np.argmax(spectrum) * rate / samples.numel())


def gradient_image(h: int = 96, w: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], -1).astype(np.uint8)


def speech_audio(seconds: float, rate: int = 16000) -> Audio:
    return Audio(torch.from_numpy(sine(440, seconds, rate, 0.3)), rate)


def moving_frames(n: int, size: int = 64) -> torch.Tensor:
    """Smooth frames whose brightness ramps, so a lossy round trip stays close to the input."""
    base = torch.from_numpy(gradient_image(size, size))
    return torch.stack([(base.int() // 2 + 3 * i).clamp(0, 255).byte() for i in range(n)])


def write_m4a(path, samples: np.ndarray, rate: int) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples.T), format="fltp", layout="stereo"
        )
        frame.sample_rate, frame.pts = rate, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


@pytest.fixture
def stereo_44k() -> np.ndarray:
    """1 s of 440 Hz at 44.1 kHz, ``[S, 2]`` (right channel at half level)."""
    left = sine(440, 1.0, 44100)
    return np.stack([left, 0.5 * left], axis=1)


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "bmp"])
def test_load_image_formats(tmp_path, ext):
    pixels = gradient_image()
    path = tmp_path / f"face.{ext}"
    PIL.Image.fromarray(pixels).save(path, quality=95)
    portrait = load_image(path)
    assert portrait.pixels.shape == (96, 80, 3) and portrait.pixels.dtype == torch.uint8
    assert portrait.source == str(path)
    assert (portrait.pixels.int() - torch.from_numpy(pixels).int()).abs().float().mean() < 3


def test_load_image_applies_exif_orientation(tmp_path):
    pixels = np.zeros((80, 120, 3), np.uint8)
    pixels[:20, :20] = (255, 0, 0)  # a red mark in the stored top-left corner
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    PIL.Image.fromarray(pixels).save(path, exif=exif, quality=95)
    out = load_image(path).pixels
    assert out.shape == (120, 80, 3)
    assert out[5, -5, 0] > 200 and out[5, -5, 1] < 60  # now top-right
    assert out[-5, 5, 0] < 60


def test_load_image_composites_alpha_on_white(tmp_path):
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:40, :, 3] = 255  # top half opaque red, bottom half fully transparent
    rgba[40:60, :, 3] = 128
    path = tmp_path / "cutout.png"
    PIL.Image.fromarray(rgba, "RGBA").save(path)
    out = load_image(path).pixels
    assert out[10, 10].tolist() == [255, 0, 0]
    assert out[70, 10].tolist() == [255, 255, 255]
    assert abs(int(out[50, 10, 1]) - 127) <= 2  # half-way between red and white


@pytest.mark.parametrize("mode", ["L", "P", "I;16"])
def test_load_image_grayscale_and_palette(tmp_path, mode):
    rgb = gradient_image()
    if mode == "I;16":
        img = PIL.Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    else:
        img = PIL.Image.fromarray(rgb).convert(mode)
    path = tmp_path / "gray.png"
    img.save(path)
    out = load_image(path).pixels
    assert out.shape == (96, 80, 3)
    if mode != "P":
        assert torch.equal(out[..., 0], out[..., 1]) and torch.equal(out[..., 1], out[..., 2])
    if mode == "I;16":
        assert (out[..., 0].int() - torch.from_numpy(rgb[..., 0]).int()).abs().max() <= 1


def test_load_image_arrays_and_tensors():
    rgb = gradient_image()
    expected = torch.from_numpy(rgb)
    assert torch.equal(load_image(rgb).pixels, expected)
    assert torch.equal(load_image(torch.from_numpy(rgb)).pixels, expected)
    assert torch.equal(load_image(torch.from_numpy(rgb).permute(2, 0, 1)).pixels, expected)
    as_float = load_image(rgb.astype(np.float32) / 255).pixels
    assert (as_float.int() - expected.int()).abs().max() <= 1
    gray = load_image(rgb[..., 0]).pixels
    assert gray.shape == (96, 80, 3) and torch.equal(gray[..., 2], expected[..., 0])
    rgba = np.concatenate([rgb, np.zeros_like(rgb[..., :1])], -1)
    assert (load_image(rgba).pixels == 255).all()  # fully transparent -> white
    assert load_image(PIL.Image.fromarray(rgb)).pixels.shape == (96, 80, 3)
    assert load_image(rgb).source == "<array>"


def test_load_image_errors(tmp_path):
    with pytest.raises(InputError, match="image not found"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match="is a directory"):
        load_image(tmp_path)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    with pytest.raises(InputError, match=r"cannot read .*notes.jpg as an image \(jpg, png, webp\)"):
        load_image(text)
    good = tmp_path / "good.jpg"
    PIL.Image.fromarray(gradient_image()).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match="cannot read .* as an image"):
        load_image(truncated)
    with pytest.raises(InputError, match="at least 64 px"):
        load_image(np.zeros((32, 200, 3), np.uint8))
    with pytest.raises(InputError, match="empty"):
        load_image(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(InputError, match="0..1"):
        load_image(np.full((80, 80, 3), 200.0, np.float32))
    with pytest.raises(InputError, match="shape"):
        load_image(np.zeros((80, 80, 5), np.uint8))


# ----------------------------------------------------------------------------- audio


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_load_audio_formats(tmp_path, stereo_44k, ext):
    path = tmp_path / f"speech.{ext}"
    if ext == "m4a":
        write_m4a(path, stereo_44k, 44100)
    else:
        sf.write(path, stereo_44k, 44100)
    audio = load_audio(path)
    assert audio.sample_rate == 16000 and audio.samples.dtype == torch.float32
    assert audio.samples.ndim == 1
    # Lossy codecs may add up to a frame of padding; the 1 s of sound must be there.
    assert abs(audio.duration - 1.0) < (0.002 if ext in ("wav", "flac") else 0.06)
    assert abs(peak_frequency(audio.samples, 16000) - 440) < 2
    middle = audio.samples[4000:12000]
    assert abs(float(middle.abs().max()) - 0.375) < 0.03  # mean of 0.5 and 0.25


def test_load_audio_downmix_is_the_mean(tmp_path):
    left = sine(300, 0.5, 16000)
    path = tmp_path / "left_only.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], 1), 16000, subtype="FLOAT")
    audio = load_audio(path)
    assert torch.allclose(audio.samples, torch.from_numpy(left) / 2, atol=1e-6)


def test_resampled_sine_keeps_frequency_and_duration(tmp_path, stereo_44k):
    from_array = load_audio(stereo_44k, sample_rate=44100)
    assert from_array.num_samples == 16000
    assert abs(peak_frequency(from_array.samples, 16000) - 440) < 1
    path = tmp_path / "tone.wav"
    sf.write(path, stereo_44k, 44100, subtype="FLOAT")
    from_file = load_audio(path)
    assert abs(from_file.num_samples - 16000) <= 1
    # The file path (libswresample) and the array path (torch) agree away from the edges.
    diff = (from_file.samples[100:15900] - from_array.samples[100:15900]).abs().max()
    assert diff < 1e-3


@pytest.mark.parametrize(
    ("orig", "new"), [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000), (44100, 16001)]
)
def test_resample_matches_analytic_sine(orig, new):
    out = resample(torch.from_numpy(sine(440, 0.5, orig)), orig, new)
    assert out.shape == (math.ceil(round(0.5 * orig) * new / orig),)
    expected = torch.from_numpy(sine(440, 0.6, new))[: out.numel()]
    edge = new // 50
    assert (out[edge:-edge] - expected[edge:-edge]).abs().max() < 1e-3


def test_resample_removes_frequencies_above_the_new_nyquist():
    tone = torch.from_numpy(sine(9000, 0.5, 44100, amp=1.0))
    out = resample(tone, 44100, 16000)
    assert out[400:-400].abs().max() < 1e-4  # 9 kHz cannot exist at 16 kHz; nothing aliases


def test_resample_batch_and_identity():
    x = torch.randn(3, 4410)
    assert torch.equal(resample(x, 16000, 16000), x)
    batched = resample(x, 44100, 16000)
    assert batched.shape == (3, 1600)
    assert torch.allclose(batched[1], resample(x[1], 44100, 16000), atol=1e-6)


def test_load_audio_arrays():
    tone = sine(440, 0.5, 16000)
    assert torch.allclose(load_audio(tone, sample_rate=16000).samples, torch.from_numpy(tone))
    as_int16 = (tone * 32767).astype(np.int16)
    assert torch.allclose(
        load_audio(as_int16, sample_rate=16000).samples, torch.from_numpy(tone), atol=1e-4
    )
    stereo = np.stack([tone, tone])
    assert load_audio(stereo, sample_rate=16000).num_samples == tone.size  # [C, S]
    assert load_audio(stereo.T, sample_rate=16000).num_samples == tone.size  # [S, C]
    assert load_audio(torch.from_numpy(tone), sample_rate=32000).num_samples == tone.size // 2
    assert load_audio(Audio(torch.from_numpy(tone), 16000), target_rate=8000).sample_rate == 8000


def test_load_audio_reads_the_sound_track_of_a_video(tmp_path):
    path = tmp_path / "talk.mp4"
    with VideoWriter(path, 25, (64, 64), audio=speech_audio(1.0)) as writer:
        writer.write(moving_frames(25))
    audio = load_audio(path)
    assert abs(audio.duration - 1.0) < 0.01
    assert abs(peak_frequency(audio.samples, 16000) - 440) < 2


def test_load_audio_errors(tmp_path):
    with pytest.raises(InputError, match="audio file not found"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(InputError, match="is a directory"):
        load_audio(tmp_path)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, np.uint8).tobytes())
    with pytest.raises(InputError, match="cannot decode audio from"):
        load_audio(garbage)
    image = tmp_path / "face.png"
    PIL.Image.fromarray(gradient_image()).save(image)
    with pytest.raises(InputError, match="no audio track"):
        load_audio(image)
    silent_video = tmp_path / "mute.mp4"
    with VideoWriter(silent_video, 25, (64, 64)) as writer:
        writer.write(moving_frames(5))
    with pytest.raises(InputError, match="no audio track"):
        load_audio(silent_video)
    for seconds in (0.0, 0.01):
        short = tmp_path / f"short{seconds}.wav"
        sf.write(short, np.zeros(round(seconds * 16000), np.float32), 16000)
        with pytest.raises(InputError, match="empty"):
            load_audio(short)
    with pytest.raises(InputError, match="sample_rate"):
        load_audio(sine(440, 1.0, 16000))
    with pytest.raises(InputError, match="sample_rate must be a positive"):
        load_audio(sine(440, 1.0, 16000), sample_rate=0)
    with pytest.raises(InputError, match="empty"):
        load_audio(np.zeros(0, np.float32), sample_rate=16000)
    with pytest.raises(InputError, match="NaN"):
        load_audio(np.full(16000, np.nan, np.float32), sample_rate=16000)
    with pytest.raises(InputError, match="-1..1"):
        load_audio(np.full(16000, 3000.0, np.float32), sample_rate=16000)


def test_level_and_silence_check():
    assert audio_level_db(Audio(torch.zeros(1600), 16000)) == -math.inf
    assert audio_level_db(Audio(torch.full((1600,), 0.5), 16000)) == pytest.approx(-6.02, abs=0.01)
    check_not_silent(speech_audio(0.2))
    silent = r"audio is silent \(peak -inf dBFS\) in a.wav: give a clip .*--allow-silent"
    with pytest.raises(InputError, match=silent):
        check_not_silent(Audio(torch.zeros(1600), 16000), source="a.wav")
    with pytest.raises(InputError, match=r"peak -60.0 dBFS"):
        check_not_silent(Audio(torch.full((1600,), 1e-3), 16000))


# ----------------------------------------------------------------------------- audio, streamed


def decode_whole(path, rate: int) -> torch.Tensor:
    """Reference: the whole file decoded in one go (libswresample, channel mean, the encoder's
    padding cut at the declared duration, clipped), as load_audio did before streaming."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", rate=rate)
        parts = []
        for frame in container.decode(stream):
            frame.pts = None
            parts += [f.to_ndarray().mean(axis=0) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().mean(axis=0) for f in resampler.resample(None)]
        declared = float(stream.duration * stream.time_base) if stream.duration else None
    mono = np.concatenate(parts).astype(np.float32)
    if declared is not None:
        keep = round(declared * rate)
        if keep < mono.size <= keep + 0.1 * rate:
            mono = mono[:keep]
    return torch.from_numpy(np.clip(mono, -1.0, 1.0))


def noisy_speech(seconds: float, rate: int, channels: int) -> np.ndarray:
    """A modulated tone plus noise, ``[S]`` or ``[S, 2]`` (right channel at half level)."""
    t = np.arange(round(seconds * rate)) / rate
    noise = np.random.default_rng(rate).standard_normal(t.size)
    x = (0.4 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
         + 0.05 * noise).astype(np.float32)
    return x if channels == 1 else np.stack([x, 0.5 * x], axis=1)


@pytest.mark.parametrize(
    ("rate", "channels", "ext"),
    [(44100, 2, "wav"), (48000, 1, "flac"), (8000, 1, "wav"), (22050, 2, "ogg"),
     (44100, 2, "mp3"), (44100, 2, "m4a"), (16000, 1, "wav")],
)
def test_streamed_file_chunks_are_the_loaded_clip(tmp_path, rate, channels, ext):
    path = tmp_path / f"speech.{ext}"
    sound = noisy_speech(2.3, rate, channels)
    if ext == "m4a":
        write_m4a(path, sound if channels == 2 else np.stack([sound, sound], 1), rate)
    else:
        sf.write(path, sound, rate)
    whole = load_audio(path)
    # Resampling at chunk boundaries changes nothing: same samples as one whole decode.
    assert torch.equal(whole.samples, decode_whole(path, 16000))
    for size in (7, 321, 640, 16000, 10**6):
        chunks = list(stream_audio_file(path, chunk_samples=size))
        expected = list(whole.chunks(size))
        assert [c.offset for c in chunks] == [c.offset for c in expected]
        assert all(torch.equal(c.samples, e.samples) for c, e in zip(chunks, expected, strict=True))
        assert all(c.sample_rate == 16000 for c in chunks)
    assert [c.num_samples for c in stream_audio_file(path, target_rate=8000, chunk_samples=5000)
            ] == [c.num_samples for c in load_audio(path, target_rate=8000).chunks(5000)]


def test_streamed_file_is_never_held_whole(tmp_path):
    import tracemalloc

    path = tmp_path / "long.wav"
    sf.write(path, noisy_speech(60.0, 44100, 2), 44100, subtype="PCM_16")  # 3.8 MB at 16 kHz
    chunks = stream_audio_file(path, chunk_samples=640)
    tracemalloc.start()
    try:
        count = sum(1 for _ in chunks)  # each chunk dropped as the next one comes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 1500
    assert peak < 1_000_000, f"the reader held {peak / 1e6:.1f} MB"
    first = next(stream_audio_file(path, chunk_samples=640))
    assert first.samples.untyped_storage().nbytes() == 640 * 4  # owns its samples only


def test_streamed_file_errors(tmp_path):
    # Bad files fail when the reader is made, before any chunk is asked for.
    with pytest.raises(InputError, match="audio file not found"):
        stream_audio_file(tmp_path / "missing.wav", chunk_samples=640)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, np.uint8).tobytes())
    with pytest.raises(InputError, match="cannot decode audio from"):
        stream_audio_file(garbage, chunk_samples=640)
    image = tmp_path / "face.png"
    PIL.Image.fromarray(gradient_image()).save(image)
    with pytest.raises(InputError, match="no audio track"):
        stream_audio_file(image, chunk_samples=640)
    with pytest.raises(ValueError, match="chunk_samples"):
        stream_audio_file(image, chunk_samples=0)
    # A clip too short fails before its first chunk, however small the chunks.
    short = tmp_path / "short.wav"
    sf.write(short, sine(440, 0.01, 16000), 16000)
    chunks = stream_audio_file(short, chunk_samples=16)
    with pytest.raises(InputError, match=r"audio in .*short.wav is empty \(0.010 s\)"):
        next(chunks)
    # NaN samples fail where decoding reaches them, with load_audio's message.
    bad = np.concatenate([sine(440, 1.0, 16000), np.full(160, np.nan, np.float32)])
    nan_wav = tmp_path / "nan.wav"
    sf.write(nan_wav, bad, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN or infinite samples"):
        load_audio(nan_wav)
    chunks = stream_audio_file(nan_wav, chunk_samples=1600)
    assert next(chunks).num_samples == 1600
    with pytest.raises(InputError, match="NaN or infinite samples"):
        list(chunks)
    # A file cut short in the middle of its data reads the same, streamed or whole.
    cut = tmp_path / "cut.mp3"
    sf.write(tmp_path / "full.mp3", noisy_speech(2.0, 44100, 1), 44100)
    cut.write_bytes((tmp_path / "full.mp3").read_bytes()[:6000])
    assert torch.equal(torch.cat([c.samples for c in stream_audio_file(cut, chunk_samples=999)]),
                       load_audio(cut).samples)


def test_silence_check_reads_chunks_only_until_speech():
    seen = []

    def chunks(levels):
        for i, level in enumerate(levels):
            seen.append(i)
            yield Audio(torch.full((160,), level), 16000, 160 * i)

    check_not_silent(chunks([0.0, 0.0, 0.5, 0.0, 0.0]))
    assert seen == [0, 1, 2]  # stopped at the first loud chunk
    with pytest.raises(InputError, match=r"audio is silent \(peak -60.0 dBFS\) in a.wav"):
        check_not_silent(chunks([0.0, 1e-3, 1e-4]), source="a.wav")
    with pytest.raises(InputError, match=r"peak -inf dBFS"):
        check_not_silent(iter([]))


# ----------------------------------------------------------------------------- video


def test_video_writer_round_trip(tmp_path):
    audio = speech_audio(1.03)  # 25.75 frames of sound: 26 frames, the last one shortened
    config = json.dumps({"render": {"name": "meshwarp", "params": {"size": 512}}, "seed": 3})
    path = tmp_path / "out" / "talk.mp4"
    frames = moving_frames(40)
    with VideoWriter(
        path,
        25,
        (64, 64),
        audio=audio,
        metadata={"pipeline": "energy>rules>meshwarp", "config": config},
    ) as writer:
        for start in range(0, 40, 7):  # chunks of any size; the extra frames are dropped
            writer.write(frames[start : start + 7])
    assert writer.result.frames == 26 and writer.frames_dropped == 14
    info = probe_media(path)
    assert info["video"]["frames"] == 26 == math.ceil(1.03 * 25)
    assert (info["video"]["width"], info["video"]["height"]) == (64, 64)
    assert info["video"]["fps"] == pytest.approx(25)
    assert info["video"]["codec"] == "h264" and info["audio"]["codec"] == "aac"
    assert abs(info["video"]["duration"] - info["audio"]["duration"]) < 1 / 25
    assert info["audio"]["duration"] == pytest.approx(1.03, abs=1e-3)
    meta = info["metadata"]
    assert meta["pipeline"] == "energy>rules>meshwarp" and json.loads(meta["config"])["seed"] == 3
    assert PROVENANCE in meta["comment"] and __version__ in meta["comment"]
    assert meta["title"] == PROVENANCE
    assert sorted(p.name for p in path.parent.iterdir()) == ["talk.mp4"]  # no temp file left

    clip = read_video(path)
    assert clip.frames.shape == (26, 64, 64, 3) and clip.frames.dtype == torch.uint8
    assert clip.fps == pytest.approx(25)
    assert (clip.frames.float() - frames[:26].float()).abs().mean() < 3
    assert clip.audio is not None and abs(clip.audio.duration - 1.03) < 0.01


def test_video_writer_close_result_and_frames_input(tmp_path):
    writer = VideoWriter(tmp_path / "a.mp4", 30000 / 1001, (64, 96), audio=speech_audio(0.5))
    writer.write(Frames(moving_frames(10, 64).repeat(1, 1, 2, 1)[:, :, :96].float() / 255, 30.0))
    writer.write(moving_frames(10, 64).repeat(1, 1, 2, 1)[:, :, :96].numpy())
    result = writer.close()
    assert result.frames == math.ceil(0.5 * 30000 / 1001) == 15
    assert result.path == tmp_path / "a.mp4"
    assert result.video_duration == pytest.approx(0.5) and result.audio_duration == 0.5
    info = probe_media(result.path)
    assert info["video"]["frames"] == 15
    assert (info["video"]["width"], info["video"]["height"]) == (96, 64)


def test_video_writer_holds_the_last_frame_when_frames_run_short(tmp_path):
    writer = VideoWriter(tmp_path / "short.mp4", 25, (64, 64), audio=speech_audio(1.0))
    writer.write(moving_frames(20))
    with pytest.warns(UserWarning, match="5 frame"):
        result = writer.close()
    assert result.frames == 25 and probe_media(tmp_path / "short.mp4")["video"]["frames"] == 25


def test_video_writer_takes_the_sound_track_in_pieces(tmp_path):
    audio = speech_audio(1.03)
    whole = VideoWriter(tmp_path / "whole.mp4", 25, (64, 64), audio=audio, fragmented=True)
    live = VideoWriter(tmp_path / "live.mp4", 25, (64, 64), audio_rate=16000, fragmented=True)
    frames = moving_frames(26)
    for i, piece in enumerate(audio.chunks(640)):  # audio a little ahead of the frames
        live.write_audio(piece if i % 2 else piece.samples.numpy())
        if i >= 2:
            live.write(frames[i - 2 : i - 1])
        whole.write(frames[i : i + 1])
    live.write(frames[24:])
    a, b = whole.close(), live.close()
    assert (b.frames, b.video_duration, b.audio_duration) == (a.frames, a.video_duration,
                                                              a.audio_duration) == (26, 1.03, 1.03)
    clip, ref = read_video(tmp_path / "live.mp4"), read_video(tmp_path / "whole.mp4")
    # Same pictures; libx264's frame threads may round a pixel differently between encodes.
    assert clip.frames.shape == ref.frames.shape
    assert (clip.frames.float() - ref.frames.float()).abs().mean() < 0.5
    assert torch.equal(clip.audio.samples, ref.audio.samples)  # same AAC stream
    # The end is known only at close: short frames are held, extra frames kept with a warning.
    short = VideoWriter(tmp_path / "short.mp4", 25, (64, 64), audio_rate=16000)
    short.write_audio(audio)
    short.write(frames[:20])
    with pytest.warns(UserWarning, match="6 frame"):
        assert short.close().frames == 26
    long = VideoWriter(tmp_path / "long.mp4", 25, (64, 64), audio_rate=16000)
    long.write_audio(speech_audio(0.4))
    long.write(frames)
    with pytest.warns(UserWarning, match="16 frame.*beyond the end of the audio"):
        result = long.close()
    assert (result.frames, result.video_duration, result.audio_duration) == (26, 1.04, 0.4)


def track_spans(path) -> dict[str, tuple[float, float]]:
    """(start, end) in seconds of each track's presentation, from its packets."""
    spans = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            packets = [p for p in container.demux(stream) if p.size]
            container.seek(0)
            start = min(p.pts for p in packets)
            end = max(p.pts + p.duration for p in packets)
            spans[stream.type] = (float(start * stream.time_base), float(end * stream.time_base))
    return spans


def decoded_audio(path) -> tuple[int, int]:
    """(samples the AAC decoder gives after the edit list, pts of the first one)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    return sum(f.samples for f in frames), frames[0].pts


def test_fragmented_mp4_is_timed_as_the_plain_one(tmp_path):
    # Fragmented output used to shift both tracks by the B-frame delay (0.08 s) and play the
    # AAC priming (1024 samples) as sound: the audio track ran 0.08 s past the video.
    audio = speech_audio(1.37)
    with VideoWriter(tmp_path / "batch.mp4", 25, (64, 64), audio=audio) as writer:
        writer.write(moving_frames(35))
    with VideoWriter(tmp_path / "live.mp4", 25, (64, 64), audio_rate=16000,
                     fragmented=True) as writer:
        for i, piece in enumerate(audio.chunks(640)):
            writer.write_audio(piece)
            writer.write(moving_frames(35)[i : i + 1])
    for name in ("batch.mp4", "live.mp4"):
        spans = track_spans(tmp_path / name)
        # The audio track (priming packet skipped by the edit list) is the audio given, and
        # the video starts and ends with it (a plain MP4's last video packet keeps its full
        # duration in the demuxer; the track's declared duration is the shortened one).
        assert spans["audio"][1] == pytest.approx(1.37, abs=1 / 16000)
        assert spans["video"][0] == 0.0
        assert decoded_audio(tmp_path / name) == decoded_audio(tmp_path / "batch.mp4")
        info = probe_media(tmp_path / name)
        assert info["video"]["duration"] == pytest.approx(1.37, abs=1e-3)
        # FFmpeg's demuxer counts the skipped priming packet in a fragmented track's duration.
        assert 1.37 <= info["audio"]["duration"] <= 1.37 + 1024 / 16000 + 1e-6


def test_video_writer_sound_track_in_pieces_errors(tmp_path):
    with pytest.raises(InputError, match="not both"):
        VideoWriter(tmp_path / "a.mp4", 25, (64, 64), audio=speech_audio(0.2), audio_rate=16000)
    with pytest.raises(InputError, match="audio_rate must be a positive int"):
        VideoWriter(tmp_path / "a.mp4", 25, (64, 64), audio_rate=0)
    with VideoWriter(tmp_path / "a.mp4", 25, (64, 64), audio=speech_audio(0.2)) as writer:
        writer.write(moving_frames(5))
        with pytest.raises(InputError, match="write_audio needs a writer opened with audio_rate"):
            writer.write_audio(speech_audio(0.2))
    with VideoWriter(tmp_path / "b.mp4", 25, (64, 64), audio_rate=16000) as writer:
        writer.write(moving_frames(5))
        with pytest.raises(InputError, match="at 8000 Hz, but the writer was opened for 16000"):
            writer.write_audio(Audio(torch.zeros(800), 8000))
        with pytest.raises(InputError, match="mono"):
            writer.write_audio(np.zeros((2, 800), np.float32))
    with pytest.raises(RuntimeError, match="after close"):
        writer.write_audio(speech_audio(0.2))


def test_video_writer_without_audio(tmp_path):
    with VideoWriter(tmp_path / "mute.mp4", 25, (64, 64)) as writer:
        writer.write(moving_frames(12))
    info = probe_media(tmp_path / "mute.mp4")
    assert info["audio"] is None and info["video"]["frames"] == 12
    assert info["video"]["duration"] == pytest.approx(12 / 25)
    assert read_video(tmp_path / "mute.mp4").audio is None


def test_video_writer_output_has_the_mode_a_new_file_gets(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        with VideoWriter(tmp_path / "shared.mp4", 25, (64, 64)) as writer:
            writer.write(moving_frames(3))
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "shared.mp4").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["shared.mp4"]  # no temporary left


def test_video_writer_single_frame_and_colours(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 100)]
    frame = torch.zeros(64, 64, 3, dtype=torch.uint8)
    for i, colour in enumerate(colours):
        row, col = 32 * (i // 2), 32 * (i % 2)
        frame[row : row + 32, col : col + 32] = torch.tensor(colour)
    with VideoWriter(tmp_path / "one.mp4", 25, (64, 64)) as writer:
        writer.write(frame)
    clip = read_video(tmp_path / "one.mp4")
    assert clip.frames.shape == (1, 64, 64, 3)
    for i, colour in enumerate(colours):  # BT.709 in, BT.709 out: no colour shift
        y, x = 16 + 32 * (i // 2), 16 + 32 * (i % 2)
        assert (clip.frames[0, y, x].int() - torch.tensor(colour)).abs().max() <= 4


def test_failed_write_keeps_an_earlier_output(tmp_path):
    path = tmp_path / "talk.mp4"
    with VideoWriter(path, 25, (64, 64), audio=speech_audio(0.4)) as writer:
        writer.write(moving_frames(10))
    before = path.read_bytes()
    with (
        pytest.raises(RuntimeError, match="renderer crashed"),
        VideoWriter(path, 25, (64, 64), audio=speech_audio(2.0)) as writer,
    ):
        writer.write(moving_frames(10))
        raise RuntimeError("renderer crashed")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["talk.mp4"]


def test_video_writer_errors(tmp_path):
    with pytest.raises(InputError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", 25, (63, 64))
    with pytest.raises(InputError, match=".mp4"):
        VideoWriter(tmp_path / "out.avi", 25, (64, 64))
    with pytest.raises(InputError, match="fragmented=True"):
        VideoWriter(_Pipe(), 25, (64, 64))
    with pytest.raises(ConfigError, match="preset"):
        VideoWriter(tmp_path / "p.mp4", 25, (64, 64), preset="quick")
    with pytest.raises(ConfigError, match="crf"):
        VideoWriter(tmp_path / "c.mp4", 25, (64, 64), crf=60)
    with pytest.raises(InputError, match="no frames"):
        VideoWriter(tmp_path / "empty.mp4", 25, (64, 64)).close()
    writer = VideoWriter(tmp_path / "size.mp4", 25, (64, 64))
    with pytest.raises(InputError, match="same size"):
        writer.write(torch.zeros(2, 64, 32, 3, dtype=torch.uint8))
    writer.write(moving_frames(2))
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["size.mp4"]


class _Pipe:
    """A write-only stream like ``sys.stdout.buffer`` on a pipe: no seeking."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data) -> int:
        return self.buffer.write(data)

    def flush(self) -> None:
        pass

    def seekable(self) -> bool:
        return False


@pytest.mark.parametrize("target", ["bytesio", "pipe"])
def test_fragmented_mp4_to_a_stream(target):
    sink = io.BytesIO() if target == "bytesio" else _Pipe()
    writer = VideoWriter(
        sink, 25, (64, 64), audio=speech_audio(1.5), fragmented=True, metadata={"pipeline": "a>b>c"}
    )
    for _ in range(4):
        writer.write(moving_frames(10))
    result = writer.close()
    assert result.path is None and result.frames == 38
    data = sink.getvalue() if target == "bytesio" else sink.buffer.getvalue()
    assert data[4:8] == b"ftyp" and b"moof" in data
    with av.open(io.BytesIO(data)) as container:
        assert container.metadata["pipeline"] == "a>b>c"
        assert sum(1 for _ in container.decode(video=0)) == 38


def test_read_video_limits(tmp_path):
    path = tmp_path / "talk.mp4"
    with VideoWriter(path, 25, (64, 96), audio=speech_audio(1.0)) as writer:
        writer.write(moving_frames(25, 64).repeat(1, 1, 2, 1)[:, :, :96])
    clip = read_video(path, max_frames=10, size=32)
    assert clip.frames.shape == (10, 32, 48, 3)
    assert clip.audio.duration == pytest.approx(0.4, abs=1e-3)
    with pytest.raises(InputError, match="not found"):
        read_video(tmp_path / "missing.mp4")
    sf.write(tmp_path / "a.wav", sine(440, 0.5, 16000), 16000)
    with pytest.raises(InputError, match="no video track"):
        read_video(tmp_path / "a.wav")


def test_png_writer(tmp_path):
    out = tmp_path / "frames"
    writer = PNGWriter(out, start_index=5)
    writer.write(moving_frames(3))
    writer.write(moving_frames(2)[0])  # a single [H, W, 3] frame
    assert writer.close() == 4
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(5, 9)]
    assert np.array_equal(
        np.asarray(PIL.Image.open(out / "frame_000006.png")), moving_frames(3)[1].numpy()
    )
    with PNGWriter(tmp_path / "custom", pattern="{:03d}.png") as named:
        named.write(Frames(moving_frames(2), 25.0))
    assert sorted(p.name for p in (tmp_path / "custom").iterdir()) == ["000.png", "001.png"]


def test_probe_media_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        probe_media(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_text("junk")
    with pytest.raises(InputError, match="cannot read"):
        probe_media(tmp_path / "junk.mp4")
