"""``talkingface dataset build``: a thin shell over build_dataset (fake clips, this process)."""

from __future__ import annotations

import pytest

from talkingface.cli import main
from talkingface.dataset import clip as C

from .conftest import fake_clip, video_folder


@pytest.fixture
def fake_build(monkeypatch):
    monkeypatch.setattr(C, "build_clip", fake_clip)


def test_build_prints_a_summary(tmp_path, capsys, fake_build):
    video_folder(tmp_path / "v", ["one.mp4", "noface.mp4"])
    args = [
        "dataset",
        "build",
        str(tmp_path / "v"),
        "--out",
        str(tmp_path / "ds"),
        "--workers",
        "1",
        "--encoder",
        "energy",
        "--encoder-param",
        "range_db=50",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "skipped noface: a face in 0% of the frames" in err
    assert "1 clips built, 0 already there, 1 skipped, 0 failed" in err
    assert main(args) == 0
    assert "0 clips built, 1 already there, 1 skipped" in capsys.readouterr().err


def test_failed_clips_exit_1(tmp_path, capsys, fake_build):
    video_folder(tmp_path / "v", ["crash.mp4"])
    assert (
        main(
            [
                "dataset",
                "build",
                str(tmp_path / "v"),
                "--out",
                str(tmp_path / "ds"),
                "--workers",
                "1",
                "--encoder",
                "energy",
            ]
        )
        == 1
    )
    assert "failed crash: internal error: RuntimeError: boom" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "is not a folder of videos"),
        (["--encoder-param", "nokey"], "is not KEY=VALUE"),
        (["--executor", "process", "--address", "auto"], "--address is for --executor ray"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, message):
    video_folder(tmp_path / "v", ["one.mp4"])
    folder = tmp_path / ("missing" if not extra else "v")
    assert main(["dataset", "build", str(folder), "--out", str(tmp_path / "ds"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
