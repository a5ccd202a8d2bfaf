"""Tests for face analysis: detection, alignment, paste-back, measures and the demo assets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from talkingface import assets
from talkingface import face as F
from talkingface.face import landmarks as LM
from talkingface.pipeline.contracts import Portrait
from talkingface.pipeline.errors import InputError


def _pil(portrait: Portrait) -> Image.Image:
    return Image.fromarray(portrait.pixels.numpy())


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB")).copy())


# Detection ----------------------------------------------------------------------------------
def test_demo_portrait_landmarks_are_sensible(portrait, portrait_landmarks):
    lm = portrait_landmarks
    h, w = portrait.size
    assert lm.points.shape == (LM.NUM_LANDMARKS, 3) and lm.points.dtype == torch.float32
    assert lm.image_size == (h, w)
    xy = lm.points[:, :2]
    assert (xy[:, 0] >= 0).all() and (xy[:, 0] < w).all()
    assert (xy[:, 1] >= 0).all() and (xy[:, 1] < h).all()
    left_eye = xy[list(LM.LEFT_EYE)].mean(0)
    right_eye = xy[list(LM.RIGHT_EYE)].mean(0)
    mouth = xy[list(LM.LIPS_OUTER)].mean(0)
    nose_tip = xy[1]
    assert left_eye[0] < nose_tip[0] < right_eye[0]  # "left" is the image's left
    assert max(left_eye[1], right_eye[1]) < nose_tip[1] < mouth[1] < xy[152, 1]
    assert xy[list(LM.LEFT_BROW), 1].mean() < left_eye[1]
    # The irises sit inside their eyes.
    for iris, eye in ((LM.LEFT_IRIS, LM.LEFT_EYE), (LM.RIGHT_IRIS, LM.RIGHT_EYE)):
        x0, y0 = xy[list(eye)].min(0).values
        x1, y1 = xy[list(eye)].max(0).values
        cx, cy = xy[iris[0]]
        assert x0 < cx < x1 and y0 - 2 < cy < y1 + 2
    # A frontal, neutral face: level, eyes open, mouth closed, looking at the camera.
    assert F.mouth_opening(lm.points) < 0.03
    assert (F.eye_openness(lm.points) > 0.2).all()
    assert torch.rad2deg(F.head_pose(lm.points)).abs().max() < 8
    x0, y0, x1, y1 = lm.box()
    assert 0.25 * w < x1 - x0 < 0.6 * w and lm.size == pytest.approx(max(x1 - x0, y1 - y0))


def test_no_face_raises_helpful_error(face_analyzer):
    gray = torch.full((480, 640, 3), 128, dtype=torch.uint8)
    noise = torch.randint(0, 256, (512, 512, 3), generator=torch.Generator().manual_seed(0))
    for image in (gray, noise.to(torch.uint8)):
        with pytest.raises(InputError, match="no face found in the image: use a photo"):
            face_analyzer.analyze(image)
    assert face_analyzer.detect(gray) == []


def test_error_names_the_portrait_source(face_analyzer):
    blank = Portrait(torch.full((256, 256, 3), 90, dtype=torch.uint8), source="me.png")
    with pytest.raises(InputError, match="no face found in me.png"):
        face_analyzer.analyze(blank)


def test_two_faces_warn_and_return_the_largest(face_analyzer, portrait):
    big = portrait.pixels
    small = _tensor(_pil(portrait).resize((384, 384)))
    pad = torch.full((512 - 384, 384, 3), 200, dtype=torch.uint8)
    image = torch.cat([big, torch.cat([small, pad])], dim=1)  # [512, 896, 3]
    faces = face_analyzer.detect(image)
    assert len(faces) == 2 and faces[0].size > faces[1].size
    with pytest.warns(UserWarning, match="2 faces found in the image; animating the largest"):
        face = face_analyzer.analyze(image)
    assert face.box()[2] < 512  # the big face is on the left
    with pytest.raises(InputError, match="2 faces found .* use a photo with one face"):
        face_analyzer.analyze(image, several="error")


def test_tiny_face_is_refused_with_its_size(face_analyzer, portrait):
    tiny = _tensor(_pil(portrait).resize((96, 96), Image.LANCZOS))
    assert len(face_analyzer.detect(tiny)) == 1
    with pytest.raises(InputError, match=r"too small \(\d+ px, the minimum is 48 px\)"):
        face_analyzer.analyze(tiny)


def test_small_off_centre_face_in_a_big_image(face_analyzer, portrait):
    # The mesh's own detector misses a face this small; the full-range fallback finds it.
    canvas = torch.full((1200, 1600, 3), 170, dtype=torch.uint8)
    canvas[850:1106, 1200:1456] = _tensor(_pil(portrait).resize((256, 256), Image.LANCZOS))
    face = face_analyzer.analyze(canvas)
    x0, y0, x1, y1 = face.box()
    assert 1200 < x0 < x1 < 1456 and 850 < y0 < y1 < 1106


def test_grayscale_as_rgb_and_float_pixels(face_analyzer, portrait, portrait_landmarks):
    gray = _tensor(_pil(portrait).convert("L").convert("RGB"))
    assert face_analyzer.analyze(gray).points.shape == (478, 3)
    as_float = portrait.pixels.float() / 255
    close = face_analyzer.analyze(as_float).points - portrait_landmarks.points
    assert close[:, :2].abs().mean() < 1.0


def test_tilted_face_is_found_with_its_roll(face_analyzer, portrait):
    for angle in (25, -25):
        tilted = _tensor(_pil(portrait).rotate(angle, Image.BICUBIC, fillcolor=(170, 185, 192)))
        lm = face_analyzer.analyze(tilted)
        roll = math.degrees(F.head_pose(lm.points)[2])
        assert roll == pytest.approx(angle, abs=4)  # counterclockwise as seen is positive


def test_input_must_be_rgb(face_analyzer, portrait):
    rgba = torch.cat([portrait.pixels, torch.full((512, 512, 1), 255, dtype=torch.uint8)], -1)
    with pytest.raises(InputError, match=r"uint8 \[H, W, 3\] RGB.*converts RGBA and grayscale"):
        face_analyzer.detect(rgba)
    with pytest.raises(InputError, match=r"got shape \(512, 512\)"):
        face_analyzer.detect(portrait.pixels[..., 0])
    with pytest.raises(ValueError, match="several must be"):
        face_analyzer.analyze(portrait, several="all")


def test_analysis_keeps_stderr_clean(capfd, portrait):
    with F.FaceAnalyzer() as analyzer:
        analyzer.analyze(portrait)
        analyzer.detect(torch.zeros(300, 200, 3, dtype=torch.uint8))
    assert capfd.readouterr().err == ""


# Alignment ----------------------------------------------------------------------------------
def test_align_crop_maps_landmarks_and_levels_the_eyes(face_analyzer, portrait):
    tilted = _tensor(_pil(portrait).rotate(20, Image.BICUBIC, fillcolor=(170, 185, 192)))
    lm = face_analyzer.analyze(tilted)
    crop = F.align_crop(tilted, lm, size=256, face_scale=2.0)
    assert crop.image.shape == (256, 256, 3) and crop.image.dtype == torch.uint8
    assert crop.matrix.shape == (2, 3) and crop.matrix.dtype == torch.float64
    assert crop.original_size == (512, 512)
    mapped = lm.points[:, :2].double() @ crop.matrix[:, :2].T + crop.matrix[:, 2]
    torch.testing.assert_close(mapped.float(), crop.landmarks.points[:, :2], atol=1e-3, rtol=0)
    left, right = (crop.landmarks.points[list(e), :2].mean(0) for e in (LM.LEFT_EYE, LM.RIGHT_EYE))
    assert abs(float(left[1] - right[1])) < 0.5
    pts = crop.landmarks.points
    face_size = max(
        float(torch.linalg.norm(pts[152] - pts[10])), float(torch.linalg.norm(pts[454] - pts[234]))
    )
    assert face_size == pytest.approx(128, rel=0.01)
    x0, y0, x1, y1 = crop.landmarks.box()
    assert 0 < x0 < x1 < 256 and 0 < y0 < y1 < 256 and (y0 + y1) / 2 > 128  # room for hair


def test_eye_mouth_crop_follows_upstreams_convention(face_analyzer, portrait):
    tilted = _tensor(_pil(portrait).rotate(15, Image.BICUBIC, fillcolor=(170, 185, 192)))
    lm = face_analyzer.analyze(tilted)
    crop = F.eye_mouth_crop(tilted, lm, size=512)
    assert crop.image.shape == (512, 512, 3) and crop.matrix.dtype == torch.float64
    mapped = lm.points[:, :2].double() @ crop.matrix[:, :2].T + crop.matrix[:, 2]
    torch.testing.assert_close(mapped.float(), crop.landmarks.points[:, :2], atol=1e-3, rtol=0)
    pts = crop.landmarks.points[:, :2].double()
    eyes = (pts[list(LM.LEFT_EYE)].mean(0) + pts[list(LM.RIGHT_EYE)].mean(0)) / 2
    mouth = pts[list(LM.MOUTH_CORNERS)].mean(0)
    assert abs(float(eyes[0] - mouth[0])) < 0.5  # eye-to-mouth axis upright: roll undone
    # The box of the jaw line, brows, eyes, nose and lips is 1 / 2.3 of the crop, and its
    # centre sits 0.125 of the crop below the crop's centre (the crop moved up by that much).
    box_points = list(dict.fromkeys((*LM.JAW, *LM.LEFT_BROW, *LM.RIGHT_BROW, *LM.LEFT_EYE,
                                     *LM.RIGHT_EYE, *LM.NOSE, *LM.LIPS_OUTER)))  # fmt: skip
    lo, hi = pts[box_points].min(0).values, pts[box_points].max(0).values
    assert float((hi - lo).max()) == pytest.approx(512 / 2.3, rel=1e-3)
    centre = (lo + hi) / 2
    assert float(centre[1]) == pytest.approx(256 + 0.125 * 512, abs=0.5)
    assert float(centre[0]) == pytest.approx(256, abs=0.5)
    # The crop moved down instead, and a larger scale: a smaller face, higher in the crop.
    down = F.eye_mouth_crop(tilted, lm, size=512, scale=3.0, vy_ratio=0.1)
    down_pts = down.landmarks.points[:, :2]
    assert float(down_pts[box_points, 1].mean()) < float(pts[box_points, 1].mean())


def test_crop_landmarks_match_a_fresh_analysis_of_the_crop(face_analyzer, portrait):
    lm = face_analyzer.analyze(portrait)
    crop = F.align_crop(portrait.pixels, lm, size=384)
    again = face_analyzer.analyze(crop.image)
    assert (again.points[:, :2] - crop.landmarks.points[:, :2]).abs().mean() < 2.0


def test_paste_back_of_the_unmodified_crop_reproduces_the_original(portrait, portrait_landmarks):
    crop = F.align_crop(portrait.pixels, portrait_landmarks, size=512)
    weight = np.zeros((512, 512), np.float32)
    weight[64:-64, 64:-64] = 1.0
    paste = F.build_paste_back(portrait.pixels.numpy(), crop.matrix.numpy(), weight, 1920)
    assert paste.size == portrait.size and 0.5 < paste.enlargement < 1.0  # the crop enlarges
    out = paste.composite(crop.image[None].repeat(2, 1, 1, 1))
    assert out.shape == (2, 512, 512, 3) and out.dtype == torch.uint8
    x0, y0, x1, y1 = (int(c) for c in portrait_landmarks.box())
    diff = (out[0].float() - portrait.pixels.float()).abs()
    assert diff[y0:y1, x0:x1].mean() < 2.0
    assert torch.equal(out[0], out[1])


def test_paste_back_only_changes_where_the_weight_is(portrait, portrait_landmarks):
    crop = F.align_crop(portrait.pixels, portrait_landmarks, size=128, face_scale=1.5)
    weight = np.zeros((128, 128), np.float32)
    weight[16:-16, 16:-16] = 1.0
    paste = F.build_paste_back(portrait.pixels.numpy(), crop.matrix.numpy(), weight, 1920)
    out = paste.composite(torch.zeros(1, 128, 128, 3, dtype=torch.uint8))[0]
    cx, cy = (int(c) for c in portrait_landmarks.points[1, :2])  # nose tip: fully replaced
    assert out[cy, cx].max() <= 1
    y0, y1, x0, x1 = paste.box
    outside = torch.ones(portrait.size, dtype=torch.bool)
    outside[y0:y1, x0:x1] = False
    assert torch.equal(out[outside], portrait.pixels[outside])


# Measures -----------------------------------------------------------------------------------
def _face_points() -> torch.Tensor:
    """Synthetic landmarks with known measures: face height 100, mouth gap 20, eyes 0.3/0.1."""
    p = torch.zeros(478, 3)
    p[10], p[152] = torch.tensor([0.0, 0, 0]), torch.tensor([0.0, 100, 0])
    for (a, b), gap in zip(((13, 14), (82, 87), (312, 317)), (10, 20, 30), strict=True):
        p[a], p[b] = torch.tensor([0.0, 70, 0]), torch.tensor([0.0, 70 + gap, 0])
    p[33], p[133], p[159], p[145] = map(
        torch.tensor, ([0.0, 30, 0], [30, 30, 0], [15, 27, 0], [15, 36, 0])
    )
    p[362], p[263], p[386], p[374] = map(
        torch.tensor, ([50.0, 30, 0], [90, 30, 0], [70, 28, 0], [70, 32, 0])
    )
    return p


def test_mouth_opening_known_answer_and_batched():
    p = _face_points()
    assert F.mouth_opening(p).item() == pytest.approx(0.2)
    batch = torch.stack([p, p * 3, p * torch.tensor([1.0, 0.5, 1.0])])[None]  # [1, 3, 478, 3]
    torch.testing.assert_close(F.mouth_opening(batch), torch.full((1, 3), 0.2))


def test_eye_openness_known_answer_and_batched():
    p = _face_points()
    torch.testing.assert_close(F.eye_openness(p), torch.tensor([0.3, 0.1]))
    out = F.eye_openness(torch.stack([p, 2 * p]))
    assert out.shape == (2, 2)
    torch.testing.assert_close(out[1], torch.tensor([0.3, 0.1]))


def _rotation(yaw: float, pitch: float, roll: float) -> torch.Tensor:
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(-pitch), math.sin(-pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = torch.tensor([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


@pytest.mark.parametrize(
    "angles",
    [(0.0, 0.0, 0.0), (0.4, 0.0, 0.0), (0.0, -0.3, 0.0), (0.0, 0.0, 0.5), (0.3, 0.2, -0.25)],
)
def test_head_pose_recovers_known_rotations(angles):
    # A face frame in camera coordinates (x right, y up, z to the viewer), then image coords.
    face = torch.zeros(478, 3)
    face[33], face[263] = torch.tensor([-30.0, 0, 0]), torch.tensor([30.0, 0, 0])
    face[10], face[152] = torch.tensor([0.0, 80, 0]), torch.tensor([0.0, -90, 0])
    cam = face @ _rotation(*angles).T
    image = cam * torch.tensor([1.0, -1.0, -1.0]) + torch.tensor([256.0, 256.0, 0.0])
    torch.testing.assert_close(F.head_pose(image), torch.tensor(angles), atol=1e-4, rtol=0)
    assert F.head_pose(image[None].repeat(4, 1, 1)).shape == (4, 3)


def test_head_pose_signs_on_a_turned_face(face_analyzer, portrait):
    # Squeezing the right half of the image turns the nose towards the image right.
    img = _pil(portrait)
    left, right = img.crop((0, 0, 256, 512)), img.crop((256, 0, 512, 512)).resize((160, 512))
    turned = Image.new("RGB", (416, 512))
    turned.paste(left, (0, 0))
    turned.paste(right, (256, 0))
    lm = face_analyzer.analyze(_tensor(turned))
    assert F.head_pose(lm.points)[0] > math.radians(5)


def test_measures_reject_wrong_shapes():
    with pytest.raises(ValueError, match=r"landmarks \[\.\.\., 478, 3\]"):
        F.mouth_opening(torch.zeros(468, 3))


def test_landmark_groups():
    groups = {
        name: getattr(LM, name)
        for name in (
            "LIPS_OUTER", "LIPS_INNER", "LEFT_EYE", "RIGHT_EYE", "LEFT_IRIS", "RIGHT_IRIS",
            "LEFT_BROW", "RIGHT_BROW", "FACE_OVAL", "JAW", "NOSE",
        )
    }  # fmt: skip
    for name, idx in groups.items():
        assert all(0 <= i < 478 for i in idx) and len(set(idx)) == len(idx), name
    assert groups["LEFT_IRIS"] == tuple(range(468, 473))
    assert groups["RIGHT_IRIS"] == tuple(range(473, 478))
    assert set(groups["JAW"]) <= set(groups["FACE_OVAL"]) and 152 in groups["JAW"]
    # The contours are halves of the closed loops, from corner to corner.
    assert LM.UPPER_OUTER_LIP[0] == LM.LOWER_OUTER_LIP[0] == 61
    assert LM.UPPER_OUTER_LIP[-1] == LM.LOWER_OUTER_LIP[-1] == 291
    assert set(LM.UPPER_INNER_LIP) | set(LM.LOWER_INNER_LIP) == set(LM.LIPS_INNER)
    for (upper, lower), loop in zip(LM.EYE_LIDS, (LM.LEFT_EYE, LM.RIGHT_EYE), strict=True):
        assert set(upper) | set(lower) == set(loop) and upper[-1] == lower[-1]
    assert {33, 133, 159, 145} <= set(groups["LEFT_EYE"])
    assert {263, 362, 386, 374} <= set(groups["RIGHT_EYE"])


# Demo assets --------------------------------------------------------------------------------
def test_demo_portrait_asset(portrait):
    assert isinstance(portrait, Portrait) and portrait.size == (512, 512)
    assert portrait.source == "demo portrait"
    assert assets.demo_portrait_path().name == "demo_portrait.png"


def test_demo_speech_asset():
    path = assets.demo_audio_path()
    info = sf.info(path)
    assert info.samplerate == 16000 and info.channels == 1
    assert 6.0 <= info.duration <= 9.0
    audio, _ = sf.read(path, dtype="float32")
    frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)  # 20 ms frames
    quiet = np.sqrt((frames**2).mean(1)) < 0.01
    assert 0.1 < quiet.mean() < 0.6  # speech with pauses, not silence or a tone
    assert path.stat().st_size < 400_000
