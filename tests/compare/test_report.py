"""Report files and the CLI on the fake pipeline."""

from __future__ import annotations

import argparse
import csv
import json

import pytest

from talkingface.compare import cli
from talkingface.compare import runner as R
from talkingface.compare.report import terminal_table, write_all

from .conftest import FakePipeline, fake_tracker


@pytest.fixture(scope="module")
def comparison(real_video_input):
    def bad():
        raise R.InputError("no face found in bad.mp4")

    inputs = [R.CompareInput("clip", lambda: real_video_input, "video"),
              R.CompareInput("bad", bad, "video")]
    variants = [R.parse_variant(v) for v in ("default=", "shift=audio_shift_frames=10")]
    return R.ComparisonRunner(variants, inputs, pipeline_factory=FakePipeline,
                              tracker=fake_tracker, progress=False).run()


def test_write_all(comparison, tmp_path):
    paths = write_all(comparison, tmp_path / "out")
    with open(paths["csv"], encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["variant", "input", "family", "metric", "value", "unit", "better",
                             "status", "note"]
    status = [r for r in rows if r["metric"] == "status" and r["input"] == "bad"]
    assert {r["status"] for r in status} == {"error"}
    assert "no face found" in status[0]["note"]
    corr = {r["variant"]: float(r["value"]) for r in rows
            if r["metric"] == "mouth_corr" and r["input"] == "clip"}
    assert corr["default"] > corr["shift"]

    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["metrics"]["mouth_corr"]["better"] == "higher"
    assert data["summary"]["default"]["mouth_corr"] > 0.99
    assert data["summary"]["default"]["bg_psnr"] == "inf"
    run = next(r for r in data["runs"] if r["variant"] == "default" and r["input"] == "clip")
    assert len(run["curves"]["mouth"]) == len(run["curves"]["real_mouth"]) == 100

    page = paths["html"].read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") >= 3 + 4 * 3  # 3 plots + key frames
    assert "no face found in bad.mp4" in page


def test_terminal_table(comparison):
    text = terminal_table(comparison)
    assert "ERROR: input: no face found in bad.mp4" in text
    assert "(mean)" in text and R.REAL in text
    line = next(t for t in text.splitlines() if t.startswith("default") and "clip" in t)
    assert "1.00" in line


def test_cli_end_to_end(tmp_path, monkeypatch, capsys):
    import torch

    from talkingface.compare.runner import LoadedInput

    from .conftest import speech

    monkeypatch.setattr(R, "_default_factory", FakePipeline)
    monkeypatch.setattr(R, "LandmarkTracker", lambda: fake_tracker)
    audio = speech(2.0)
    portrait = torch.full((64, 64, 3), 128, dtype=torch.uint8)
    monkeypatch.setattr(
        R, "pair_inputs",
        lambda p, c, **kw: [R.CompareInput(f"{a.stem}+{b.stem}",
                                           lambda: LoadedInput(portrait, audio)) for a in p
                            for b in c],
    )
    (tmp_path / "face.png").write_bytes(b"")
    (tmp_path / "talk.wav").write_bytes(b"")
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", "--data", str(tmp_path), "--output",
                              str(tmp_path / "out"), "--no-progress", "-V", "a=", "-V",
                              "b=audio=still"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "face+talk" in out
    assert (tmp_path / "out" / "report.html").exists()
