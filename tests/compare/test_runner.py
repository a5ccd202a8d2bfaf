"""The comparison runner on a fake pipeline: variants, ground truth, failures as rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from talkingface.compare import runner as R
from talkingface.compare.runner import LoadedInput
from talkingface.pipeline.errors import InputError

from .conftest import FPS, SR, FakePipeline, fake_tracker, mouth_from_audio, render, speech


def test_parse_variant():
    v = R.parse_variant("energy=audio=energy motion.params.x=1")
    assert (v.name, v.source, v.overrides) == ("energy", "default", ("audio=energy",
                                                                     "motion.params.x=1"))
    v = R.parse_variant("broken=fast.yaml audio_shift_frames=10 mute_audio=true")
    assert (v.source, v.audio_shift_frames, v.mute_audio, v.overrides) == (
        "fast.yaml", 10, True, ())
    assert R.parse_variant("default=").overrides == ()
    assert R.parse_variant("x=audio=energy").spec == "x=audio=energy"
    for bad in ("noequals", "=audio=energy", "a=one two", "a=audio_shift_frames=x"):
        with pytest.raises(InputError):
            R.parse_variant(bad)


def test_shift_audio_delays_by_whole_frames():
    audio = speech(1.0)
    shifted = R.shift_audio(audio, 5, FPS)
    n = SR * 5 // 25
    assert shifted.num_samples == audio.num_samples
    assert torch.all(shifted.samples[:n] == 0)
    assert torch.equal(shifted.samples[n:], audio.samples[:-n])
    back = R.shift_audio(audio, -5, FPS)
    assert torch.equal(back.samples[:-n], audio.samples[n:])


def test_resample_by_time():
    x = np.arange(10.0)  # 10 frames at 10 fps
    y = R.resample(x, 10.0, 20.0, 20)
    assert y[:19] == pytest.approx(np.arange(19) / 2)
    assert math.isnan(y[19])


def _run(variants, inputs, **kw):
    return R.ComparisonRunner(
        [R.parse_variant(v) for v in variants], inputs, pipeline_factory=FakePipeline,
        tracker=fake_tracker, progress=False, **kw,
    ).run()


def test_broken_variants_rank_below_default(real_video_input):
    item = R.CompareInput("clip", lambda: real_video_input, "video")
    comp = _run(["default=", "shift=audio_shift_frames=10", "still=audio=still"], [item])
    assert all(rec.status == "ok" for rec in comp.records), [r.error for r in comp.records]

    def value(variant, metric):
        (row,) = [r for r in comp.rows if r.variant == variant and r.metric == metric]
        return row.value

    assert value("default", "mouth_corr") > 0.99
    assert value("default", "mouth_lag") == 0
    assert value("shift", "mouth_corr") < 0.5
    assert value("still", "mouth_corr") == 0.0  # a mouth that never moves: no correlation
    assert value("default", "av_offset_frames") == 0
    assert value("shift", "av_offset_frames") == 10
    assert value("shift", "av_offset_ms") == pytest.approx(400.0)
    # the real video is measured too, as the reference row
    assert value(R.REAL, "av_offset_frames") == 0
    assert value("still", "silent_lip_std") == 0.0
    assert value("default", "bg_psnr") == math.inf  # the fake never touches the background
    assert value("default", "fps") == pytest.approx(100 / 0.25)  # sink time left out
    assert value("default", "start_latency_ms") == 42.0
    assert math.isnan(value("default", "bilabial_closure"))
    rec = comp.status_of("default", "clip")
    assert set(rec.keyframes) == set(R.KEY_MOMENTS)
    assert rec.real_mouth is not None and len(rec.mouth) == 100


def test_failures_are_rows_not_crashes(real_video_input):
    def broken_load():
        raise InputError("clip.mp4 has no audio track")

    inputs = [R.CompareInput("good", lambda: real_video_input, "video"),
              R.CompareInput("bad", broken_load, "video")]
    comp = _run(["default=", "typo=boom=1"], inputs)
    status = {(r.variant, r.input): (r.status, r.error) for r in comp.records}
    assert status[("default", "good")] == ("ok", "")
    assert status[("typo", "good")][0] == "error"
    assert "unknown key 'boom'" in status[("typo", "good")][1]
    assert status[("default", "bad")] == ("error", "input: clip.mp4 has no audio track")


def test_runner_refuses_duplicate_names():
    with pytest.raises(InputError, match="unique"):
        R.ComparisonRunner([R.parse_variant("a="), R.parse_variant("a=x=1")], [object()])


def test_discover_inputs(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "audio").mkdir()
    for name in ("p1.jpg", "p2.png"):
        (tmp_path / "images" / name).write_bytes(b"")
    for name in ("a1.wav", "a2.flac", "notes.txt"):
        (tmp_path / "audio" / name).write_bytes(b"")
    (tmp_path / "audio" / "a1.phones.txt").write_text("0.0\t0.1\tm\n0.1\t0.3\taa\n")
    names = [i.name for i in R.discover_inputs(tmp_path)]
    assert names == ["p1+a1", "p1+a2", "p2+a1", "p2+a2"]
    assert [i.name for i in R.discover_inputs(tmp_path, pairing="zip")] == ["p1+a1", "p2+a2"]
    pairs = R.discover_inputs(tmp_path, pairs=["images/p2.png:audio/a1.wav"])
    assert [i.name for i in pairs] == ["p2+a1"]
    assert R.read_phones(tmp_path / "audio" / "a1.phones.txt")[0].label == "m"
    with pytest.raises(InputError, match="videos"):
        R.discover_inputs(tmp_path, mode="videos")
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "v.mp4").write_bytes(b"")
    assert [(i.name, i.kind) for i in R.discover_inputs(tmp_path)] == [("v", "video")]


def test_key_frame_picker_across_chunks():
    energy = np.full(40, -20.0)
    energy[20:30] = -80.0  # silence in the middle: the rest frame is 25
    mouth = np.full(40, 0.3)
    mouth[33] = 0.9  # widest
    mouth[12] = 0.05  # narrowest while speaking
    mouth[24] = 0.0  # narrower, but silent: not a bilabial
    eyes = np.full((40, 2), 0.3)
    eyes[7] = 0.02
    frames = torch.arange(40, dtype=torch.uint8)[:, None, None, None].expand(40, 8, 8, 3)
    picker = R.KeyFramePicker(energy, FPS)
    for a in range(0, 40, 16):
        n = min(16, 40 - a)
        track = R.FaceTrack(mouth[a : a + n], eyes[a : a + n], np.zeros((n, 3)),
                            np.zeros((n, 4)), np.zeros((n, 1, 2)))
        picker.update(track, frames[a : a + 16], a)
    rec = R.RunRecord("v", "i")
    picker.store(rec)
    assert rec.keyframe_index == {"rest": 25, "open vowel": 33, "bilabial": 12, "blink": 7}
    assert rec.keyframes["open vowel"][0, 0, 0] == 33


@pytest.mark.parametrize("align", [True, False])
def test_real_video_offset_is_taken_out(align):
    # a real video whose audio runs 8 frames behind its picture
    audio = speech()
    n = math.ceil(audio.num_samples * FPS / SR)
    real = render(mouth_from_audio(R.shift_audio(audio, -8, FPS), n))
    item = R.CompareInput("late-audio", lambda: LoadedInput(real[0], audio, real, FPS), "video")
    comp = _run(["default="], [item], align_real=align)
    (row,) = [r for r in comp.rows if r.variant == "default" and r.metric == "mouth_corr"]
    if align:
        assert row.value > 0.99 and "-320 ms" in row.note
    else:
        assert row.value < 0.5


def test_real_video_gets_a_bilabial_closure_row_when_phones_are_known():
    # the 'real' mouth is shut in the pause (1.5-2.1 s) and open around it: a bilabial placed
    # in the pause counts as closed on the real video, one in the speech does not
    audio = speech()
    n = math.ceil(audio.num_samples * FPS / SR)
    real = render(mouth_from_audio(audio, n))
    from talkingface.compare.metrics import Phone

    def rate_for(phones):
        loaded = LoadedInput(real[0], audio, real_frames=real, real_fps=FPS, phones=phones)
        comp = _run(["default="], [R.CompareInput("clip", lambda: loaded, "video")])
        rows = [r for r in comp.rows if r.variant == R.REAL and r.metric == "bilabial_closure"]
        assert len(rows) == 1
        return rows[0].value

    speech_phones = [Phone("aa", 0.2, 1.2), Phone("aa", 2.3, 3.5)]
    assert rate_for([*speech_phones, Phone("M", 1.7, 1.9)]) == 1.0
    assert rate_for([*speech_phones, Phone("M", 0.6, 0.8)]) == 0.0
