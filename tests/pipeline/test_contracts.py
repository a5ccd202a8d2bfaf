import pytest
import torch

from talkingface.pipeline.contracts import (
    Audio,
    AudioFeatures,
    Controls,
    Frames,
    Motion,
    Portrait,
    num_frames_for,
)
from talkingface.pipeline.errors import ContractError


def motion(t=5, k=2, start=0):
    pose = torch.zeros(t, 6)
    return Motion(pose, torch.rand(t, k), ("jaw_open", "smile")[:k], 25.0, start_frame=start)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Audio(torch.zeros(10, dtype=torch.float64), 16000), "dtype float32"),
        (lambda: Audio(torch.zeros(2, 3, 4), 16000), "[S] or [B, S]"),
        (lambda: Audio(torch.zeros(10), 0), "sample_rate"),
        (lambda: Audio([0.0, 1.0], 16000), "torch.Tensor"),
        (lambda: AudioFeatures(torch.zeros(4), 25.0, "energy"), "[T, D]"),
        (lambda: AudioFeatures(torch.zeros(4, 2), 25.0, "energy", ("a",)), "1 names for 2"),
        (lambda: AudioFeatures(torch.zeros(4, 2), -1.0, "energy"), "fps"),
        (lambda: AudioFeatures(torch.zeros(4, 2), 25.0, ""), "kind"),
        (lambda: Motion(torch.zeros(4, 5), torch.zeros(4, 1), ("a",), 25.0), "[T, 6]"),
        (lambda: Motion(torch.zeros(4, 6), torch.zeros(3, 1), ("a",), 25.0), "3 frames"),
        (lambda: Motion(torch.zeros(4, 6), torch.zeros(4, 2), ("a", "a"), 25.0), "duplicate"),
        (lambda: Motion(torch.zeros(4, 6), torch.zeros(4, 1), ("a",), 25.0,
                        latent=torch.zeros(4, 3)), "space"),
        (lambda: Frames(torch.zeros(2, 4, 4, 4, dtype=torch.uint8), 25.0), "3 channels"),
        (lambda: Frames(torch.zeros(2, 4, 4, 3, dtype=torch.int32), 25.0), "uint8"),
        (lambda: Portrait(torch.zeros(4, 4, 3)), "uint8"),
        (lambda: Controls(emotion="bored"), "neutral, happy"),
        (lambda: Controls(gaze=(2.0, 0.0)), "gaze"),
        (lambda: Controls(head_motion=-1), "head_motion"),
    ],
)
def test_bad_contract_values_raise_clear_errors(make, words):
    with pytest.raises(ContractError) as err:
        make()
    assert words in str(err.value)


def test_num_frames_for_covers_the_audio():
    assert num_frames_for(16000, 16000, 25) == 25
    assert num_frames_for(16001, 16000, 25) == 26
    assert num_frames_for(0, 16000, 25) == 0
    assert num_frames_for(48000 * 10, 48000, 30) == 300


def test_slices_and_concat_roundtrip():
    m = motion(10)
    parts = [m.slice(0, 3), m.slice(3, 7), m.slice(7, 10)]
    assert [p.start_frame for p in parts] == [0, 3, 7]
    joined = Motion.concat(parts)
    assert torch.equal(joined.expression, m.expression) and joined.start_frame == 0


def test_concat_refuses_gaps():
    m = motion(10)
    with pytest.raises(ContractError, match="contiguous"):
        Motion.concat([m.slice(0, 3), m.slice(4, 10)])


def test_audio_chunks_keep_offsets():
    a = Audio(torch.arange(10, dtype=torch.float32), 10)
    chunks = list(a.chunks(4))
    assert [c.offset for c in chunks] == [0, 4, 8]
    assert [c.num_samples for c in chunks] == [4, 4, 2]
    assert a.duration == 1.0


def test_motion_get_missing_name_reads_default():
    m = motion(4, k=1)
    assert torch.equal(m.get("blink_l"), torch.zeros(4))
    assert torch.equal(m.get("jaw_open"), m.expression[:, 0])


def test_frames_to_uint8_from_float():
    f = Frames(torch.full((1, 2, 2, 3), 0.5), 25.0)
    assert f.to_uint8().dtype == torch.uint8 and int(f.to_uint8()[0, 0, 0, 0]) == 128


def test_contracts_are_frozen():
    a = Audio(torch.zeros(4), 16000)
    with pytest.raises(AttributeError):
        a.sample_rate = 8000
