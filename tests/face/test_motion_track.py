"""Motion extraction: the head fit and the coefficient solve on known geometry, the round trip
through our own renderer, frames without a face, resampling, and bad input."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from talkingface.face.motion_fit import (
    FIT_NAMES,
    MEASURE_BASES,
    MEASURE_NOISE,
    MotionFitter,
    RestFace,
    rotation_angles,
)
from talkingface.face.motion_track import MotionTrack, extract_motion
from talkingface.pipeline.contracts import POSE_NAMES, Frames
from talkingface.pipeline.errors import ConfigError, InputError

ROUND_TRIP = {
    # name: (largest MAE, smallest correlation) against the motion that drove the render,
    # measured on this clip (benchmarks/README.md has the longer run).
    "yaw": (math.radians(2.5), 0.85),
    "roll": (math.radians(1.0), 0.95),
    "tx": (0.01, None),  # a small range (0.03 face heights) for a correlation on 3 s
    "jaw_open": (0.08, 0.95),
    "blink_l": (0.1, 0.9),
    "blink_r": (0.1, 0.9),
}


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.double().numpy(), b.double().numpy())[0, 1])


@pytest.fixture(scope="module")
def round_trip(rendered_talk) -> tuple:
    motion, frames, _, _ = rendered_talk
    return motion, extract_motion(frames)


def test_round_trip_reads_back_the_driving_motion(round_trip):
    motion, track = round_trip
    assert isinstance(track, MotionTrack)
    assert track.num_frames == motion.num_frames and track.fps == motion.fps
    assert track.has_face.all() and track.rest.frame == 0
    for name, (max_mae, min_corr) in ROUND_TRIP.items():
        if name in POSE_NAMES:
            column = POSE_NAMES.index(name)
            truth, got = motion.pose[:, column], track.motion.pose[:, column]
        else:
            truth, got = motion.get(name), track.motion.get(name)
        mae = float((truth - got).abs().mean())
        assert mae < max_mae, f"{name}: MAE {mae:.4f} over {max_mae}"
        if min_corr is not None:
            assert _corr(truth, got) > min_corr, f"{name}: correlation {_corr(truth, got):.3f}"
    # Coefficients the clip never drives stay near zero.
    for name in ("frown", "brow_down", "mouth_round"):
        assert float(track.motion.get(name).abs().mean()) < 0.1, name


def test_track_contract(round_trip):
    _, track = round_trip
    t = track.num_frames
    assert track.motion.pose.shape == (t, 6) and track.motion.names == FIT_NAMES
    assert track.confidence.shape == (t,) and track.confidence.dtype == np.float32
    assert ((track.confidence > 0.3) & (track.confidence <= 1)).all()
    assert track.landmarks.shape == (t, 478, 3) and np.isfinite(track.landmarks).all()
    assert track.raw_pose.shape == (t, 6) and track.raw_expression.shape == (t, len(FIT_NAMES))
    assert track.size == (256, 256) and track.source_fps == 25.0
    # The first frame is the rest face: zero motion, unit scale.
    torch.testing.assert_close(track.motion.pose[0], torch.tensor([0, 0, 0, 0, 0, 1.0]),
                               atol=0.02, rtol=0)
    # Smoothing removes jitter but not the motion: smoothed stays close to raw.
    raw_jaw = torch.from_numpy(track.raw_expression[:, FIT_NAMES.index("jaw_open")])
    assert _corr(raw_jaw, track.motion.get("jaw_open")) > 0.97


def test_video_file_and_resampling(rendered_talk, round_trip):
    motion, _, _, path = rendered_talk
    _, from_frames = round_trip
    seen = []
    track = extract_motion(path, fps=50.0, max_frames=40, progress=seen.append)
    assert track.source_fps == pytest.approx(25.0) and track.num_frames == 80
    assert seen == [1] * 40
    # Frame 2k at 50 fps is video frame k: the same face as the in-memory frames (H.264 aside).
    jaw = track.motion.get("jaw_open")[::2]
    assert _corr(jaw, from_frames.motion.get("jaw_open")[:40]) > 0.95
    assert float((jaw - from_frames.motion.get("jaw_open")[:40]).abs().mean()) < 0.05


def test_a_tracking_analyzer_reads_the_same_motion(rendered_talk, round_trip):
    from talkingface.face import FaceAnalyzer

    _, frames, _, _ = rendered_talk
    with FaceAnalyzer(max_faces=1, static=False) as tracker:
        track = extract_motion(Frames(frames.data[:40], 25.0), analyzer=tracker)
    assert track.has_face.all()
    reference = round_trip[1].motion.get("jaw_open")[:40]
    assert _corr(track.motion.get("jaw_open"), reference) > 0.95


def test_stream_smoothing_is_causal(rendered_talk):
    _, frames, _, _ = rendered_talk
    whole = extract_motion((frames.data[:30], 25.0), smoothing="stream")
    head = extract_motion((frames.data[:20], 25.0), smoothing="stream")
    torch.testing.assert_close(whole.motion.expression[:20], head.motion.expression)
    np.testing.assert_allclose(whole.raw_expression[0], whole.motion.expression[0].numpy(),
                               atol=1e-6)


def test_frames_without_a_face_are_marked_not_invented(rendered_talk):
    _, frames, _, _ = rendered_talk
    data = frames.data[:20].clone()
    data[0:3] = 128  # no face before the first face frame
    data[10:13] = 128
    track = extract_motion((data, 25.0))
    missing = np.zeros(20, dtype=bool)
    missing[[0, 1, 2, 10, 11, 12]] = True
    assert (track.has_face == ~missing).all()
    assert (track.confidence[missing] == 0).all() and (track.confidence[~missing] > 0).all()
    assert np.isnan(track.landmarks[missing]).all() and np.isnan(track.raw_pose[missing]).all()
    assert track.rest.frame == 3
    # The Motion stays renderable: the gap holds the nearest face frames' values.
    assert torch.isfinite(track.motion.pose).all() and torch.isfinite(track.motion.expression).all()
    torch.testing.assert_close(track.motion.pose[10], track.motion.pose[9])
    torch.testing.assert_close(track.motion.pose[12], track.motion.pose[13])


def test_no_face_at_all_gives_the_rest_pose_marked():
    gray = torch.full((6, 96, 96, 3), 128, dtype=torch.uint8)
    track = extract_motion(Frames(gray, 25.0))
    assert not track.has_face.any() and (track.confidence == 0).all() and track.rest is None
    assert torch.equal(track.motion.pose, torch.tensor([[0, 0, 0, 0, 0, 1.0]] * 6))
    assert torch.equal(track.motion.expression, torch.zeros(6, len(FIT_NAMES)))


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="not found|does not exist|no such"):
        extract_motion(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputError):
        extract_motion(bad)
    frames = torch.zeros(2, 64, 64, 3, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="smoothing"):
        extract_motion((frames, 25.0), smoothing="wobbly")
    with pytest.raises(InputError, match="fps"):
        extract_motion((frames, 0.0))
    with pytest.raises(InputError, match="fps"):
        extract_motion((frames, 25.0), fps=-1)
    with pytest.raises(InputError, match="takes a video path"):
        extract_motion(42)
    with pytest.raises(InputError, match="no frames"):
        extract_motion((torch.zeros(0, 64, 64, 3, dtype=torch.uint8), 25.0))


# The per-frame fit on exact geometry -------------------------------------------------------
def test_head_fit_recovers_a_known_pose(portrait_landmarks):
    # Imported here: the render plugins load the kernels, which the kernel tests' conftest must
    # see first (it builds them for the interpreter).
    from talkingface.plugins.render.mesh import pose_matrices

    rest = RestFace.from_points(portrait_landmarks.points.numpy())
    pose = torch.tensor([[0.2, -0.12, 0.08, 0.05, -0.03, 1.1]])
    rot = pose_matrices(pose)[0].double().numpy()  # s R in image axes, as meshwarp renders
    moved = (rest.points - rest.pivot) @ rot.T + rest.pivot
    moved[:, :2] += pose[0, 3:5].double().numpy() * rest.face_height
    fit = MotionFitter(rest).fit(moved)
    np.testing.assert_allclose(fit.pose, pose[0].double().numpy(), atol=1e-6)
    np.testing.assert_allclose(fit.expression, 0.0, atol=1e-6)
    assert fit.residual < 1e-6
    assert rotation_angles(np.eye(3)) == (0.0, 0.0, 0.0)


def test_measure_bases_follow_the_renderer():
    # The table in motion_fit is what meshwarp renders today, as the landmarker reads it back
    # (measured at 256 and 512 px; this checks 256 only, to stay fast).
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    calibrate = pytest.importorskip("calibrate_motion_fit")
    for name, row in calibrate.measure_bases(sizes=(256,)).items():
        if name in ("gaze_x", "gaze_y"):
            continue  # the meaning of gaze, not a measurement (see MEASURE_BASES)
        # Within the measures' own noise (MEASURE_NOISE): one size, one portrait.
        assert (np.abs(row - MEASURE_BASES[name]) < MEASURE_NOISE).all(), (name, row)


def test_neutral_rest_for_a_clip_that_starts_mid_word(rendered_talk):
    motion, frames, _, _ = rendered_talk
    start = int(motion.get("jaw_open")[:40].argmax())  # the widest open mouth of the start
    truth = motion.get("jaw_open")[start:]
    assert truth[0] > 0.4
    clip = (frames.data[start:], 25.0)
    first, neutral = extract_motion(clip), extract_motion(clip, rest="neutral")
    # Against the open first frame a closed mouth can only read as pressed lips, not as a
    # jaw that closes; against the clip's neutral face the jaw reads as it moved.
    assert _corr(first.motion.get("jaw_open"), truth) < 0.8
    assert _corr(neutral.motion.get("jaw_open"), truth) > 0.95
    assert float((neutral.motion.get("jaw_open") - truth).abs().mean()) < 0.08
    assert neutral.motion.get("lip_press").mean() < first.motion.get("lip_press").mean()
    torch.testing.assert_close(neutral.motion.pose, first.motion.pose)  # the pose is the same
    with pytest.raises(InputError, match="rest must be"):
        extract_motion(clip, rest="middle")
