"""Tests of streaming resampling: StreamResampler == resample for any chunking, resample_chunks,
and Pipeline.stream_chunks over 48 kHz microphone-sized chunks."""

from __future__ import annotations

import random

import pytest
import torch

from talkingface.io import StreamResampler, load_audio, resample, resample_chunks
from talkingface.io.resample import _Plan
from talkingface.pipeline.contracts import Audio
from talkingface.pipeline.errors import InputError


def noise(seconds: float, rate: int, seed: int = 0) -> torch.Tensor:
    """Uniform noise in -0.9..0.9: every frequency up to Nyquist, the hardest case."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(round(seconds * rate), generator=gen) * 1.8 - 0.9


def streamed(resampler: StreamResampler, samples: torch.Tensor, sizes) -> torch.Tensor:
    """Push ``samples`` cut into pieces of ``sizes`` (cycled), then flush; all output joined."""
    out, start = [], 0
    for size in sizes:
        if start >= samples.numel():
            break
        out.append(resampler.push(samples[start : start + size]))
        start += size
    out.append(resampler.flush())
    return torch.cat(out)


def random_sizes(seed: int, count: int = 100_000):
    rng = random.Random(seed)
    return [rng.choice([0, 1, 2, 3, 7, 64, 160, 441, 960, 1024, 4096]) for _ in range(count)]


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("seed", [0, 1])
def test_stream_equals_batch_random_chunks(rate, seed):
    x = noise(0.7, rate, seed)
    ref = resample(x, rate, 16000)
    y = streamed(StreamResampler(rate, 16000), x, random_sizes(seed))
    assert y.shape == ref.shape
    assert (y - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_stream_equals_batch_one_sample_chunks(rate):
    x = noise(0.1, rate, 3)
    y = streamed(StreamResampler(rate, 16000), x, [1] * x.numel())
    ref = resample(x, rate, 16000)
    assert y.shape == ref.shape
    assert (y - ref).abs().max() <= 1e-5


def test_stream_equals_batch_direct_path():
    # 44056 -> 16000 is 2000 up / 5507 down: too many phases for the polyphase filter bank.
    assert _Plan.make(44056, 16000, 24, 0.945, 12.0).direct
    x = noise(0.5, 44056, 4)
    ref = resample(x, 44056, 16000)
    for sizes in (random_sizes(5), [1] * 3000 + [10_000] * 3):
        y = streamed(StreamResampler(44056, 16000), x, sizes)
        assert y.shape == ref.shape
        assert (y - ref).abs().max() <= 1e-5


def test_stream_upsampling_and_equal_rates():
    x = noise(0.3, 16000, 6)
    y = streamed(StreamResampler(16000, 48000), x, random_sizes(7))
    assert (y - resample(x, 16000, 48000)).abs().max() <= 1e-5
    assert torch.equal(streamed(StreamResampler(16000, 16000), x, random_sizes(8)), x)


def test_stream_short_clips_and_empty_pushes():
    for n in (0, 1, 5, 100):
        x = noise(1.0, 48000, n)[:n]
        r = StreamResampler(48000, 16000)
        assert r.push(torch.zeros(0)).numel() == 0
        y = torch.cat([r.push(x), r.flush()])
        assert y.shape == (-(-n // 3),)
        if n:
            assert (y - resample(x, 48000, 16000)).abs().max() <= 1e-5


def test_stream_memory_is_bounded():
    r = StreamResampler(48000, 16000)
    for i in range(300):  # 6 s in 20 ms pieces
        r.push(noise(0.02, 48000, i))
        assert r._buffer.numel() < 960 + 2000  # a chunk plus the filter span, not the clip


def test_stream_emits_as_it_goes():
    r = StreamResampler(48000, 16000)
    got = sum(r.push(noise(0.02, 48000, i)).numel() for i in range(50))
    # 1 s in: all but the filter's look-ahead (half-width plus one polyphase block) is out.
    assert 16000 - 300 <= got <= 16000


def test_stream_push_after_flush_and_stereo():
    r = StreamResampler(48000, 16000)
    r.flush()
    with pytest.raises(RuntimeError):
        r.push(torch.zeros(10))
    with pytest.raises(InputError, match="mono"):
        StreamResampler(48000, 16000).push(torch.zeros(2, 10))


# ----------------------------------------------------------------------------- resample_chunks


def chunks_of(samples: torch.Tensor, rate: int, size: int) -> list[Audio]:
    return list(Audio(samples, rate).chunks(size))


def test_resample_chunks_matches_load_audio():
    x = noise(0.5, 48000, 9) * 1.1  # past full scale: clamped as load_audio clamps
    out = list(resample_chunks(chunks_of(x.clamp(-1.05, 1.05), 48000, 960), 16000))
    assert all(c.sample_rate == 16000 for c in out)
    assert [c.offset for c in out] == [sum(c.num_samples for c in out[:i]) for i in range(len(out))]
    joined = torch.cat([c.samples for c in out])
    ref = load_audio(x.clamp(-1.05, 1.05), sample_rate=48000, target_rate=16000).samples
    assert joined.shape == ref.shape
    assert (joined - ref).abs().max() <= 1e-5
    assert joined.abs().max() <= 1.0


def test_resample_chunks_offsets_start_at_zero():
    # Input offsets do not matter (a live source may number its buffers any way it likes).
    chunks = [Audio(noise(0.02, 48000, i), 48000, 5000 + 960 * i) for i in range(10)]
    out = list(resample_chunks(chunks, 16000))
    assert out[0].offset == 0
    assert out[-1].offset + out[-1].num_samples == 10 * 320


def test_resample_chunks_passes_the_target_rate_through():
    chunks = chunks_of(noise(0.1, 16000, 1), 16000, 300)
    out = list(resample_chunks(chunks, 16000))
    assert all(a is b for a, b in zip(out, chunks, strict=True))


def test_resample_chunks_errors():
    mixed = [Audio(torch.zeros(960), 48000), Audio(torch.zeros(441), 44100)]
    with pytest.raises(InputError, match="44100 Hz in a stream that started at 48000 Hz"):
        list(resample_chunks(mixed, 16000))
    with pytest.raises(InputError, match="Audio objects"):
        list(resample_chunks([torch.zeros(960)], 16000))
    with pytest.raises(InputError, match="mono"):
        list(resample_chunks([Audio(torch.zeros(2, 960), 48000)], 16000))


# ----------------------------------------------------------------------------- end to end


def test_pipeline_stream_chunks_48k_microphone_equals_batch(portrait):
    from talkingface.api import Pipeline
    from talkingface.assets import demo_audio_path

    samples = load_audio(demo_audio_path(), target_rate=48000).samples[:72000]  # 1.5 s
    pipe = Pipeline.from_config("default")
    prepared = pipe.prepare(portrait)
    batch = pipe.run(prepared, (samples.numpy(), 48000)).frames.to_uint8()
    live = (Audio(c.samples.clone(), 48000, c.offset) for c in Audio(samples, 48000).chunks(960))
    stream = torch.cat([f.to_uint8() for f in pipe.stream_chunks(prepared, live)])
    assert stream.shape == batch.shape
    # The stream's samples match the batch's to float rounding: frames to one uint8 level.
    assert (stream.int() - batch.int()).abs().max() <= 1
