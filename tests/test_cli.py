import subprocess
import sys

import pytest

from talkingface.cli import build_parser, main

SUBCOMMANDS = [
    "run", "stream", "plugins", "profile", "config", "verify", "compare", "serve", "dataset"
]


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
    assert "examples:" in out


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: talkingface " + command in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage:" in capsys.readouterr().out


def test_config_prints_resolved_yaml_with_override(capsys):
    assert main(["config", "controls.emotion=happy", "seed=5"]) == 0
    out = capsys.readouterr().out
    assert "emotion: happy" in out and "seed: 5" in out and "params:" in out


def test_config_unknown_stage_is_one_line_error(capsys):
    assert main(["config", "render=nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown renderer 'nope'") and err.count("\n") == 1
    assert "meshwarp" in err


def test_plugins_lists_builtin_stages(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "origin: built-in" in out and "presets" in out and "default" in out


def test_run_missing_image_is_a_clear_error(tmp_path, capsys):
    code = main(["run", "--image", str(tmp_path / "nope.jpg"), "--audio",
                 str(tmp_path / "nope.wav"), "--output", str(tmp_path / "o.mp4")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.jpg" in err[0] and "Traceback" not in err[0]


def test_run_needs_both_inputs(tmp_path, capsys):
    assert main(["run", "--image", str(tmp_path / "x.jpg")]) == 2
    assert "both --image and --audio" in capsys.readouterr().err


def test_bad_override_syntax(capsys):
    assert main(["config", "render"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_debug_shows_traceback():
    proc = subprocess.run([sys.executable, "-m", "talkingface.cli", "--debug", "config",
                           "render=nope"], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_parser_accepts_overrides_after_options():
    args = build_parser().parse_args(["run", "-i", "a.jpg", "-a", "b.wav", "audio=energy"])
    assert args.overrides == ["audio=energy"] and args.image == "a.jpg"


def test_stream_writes_the_file_as_it_decodes(tmp_path, capsys, monkeypatch, speech):
    import numpy as np
    import soundfile as sf

    from talkingface import cli
    from talkingface.api import Pipeline
    from talkingface.io import probe_media
    from talkingface.pipeline.registry import PluginManager
    from tests.pipeline.toy_stages import TestStagesPlugin

    pm = PluginManager(load_entry_points=False)
    pm.register(TestStagesPlugin(), name="test-stages")
    monkeypatch.setattr(cli, "_pipeline", lambda args: Pipeline.from_config(
        "toy", ["render.params.size=32", *args.overrides], plugin_manager=pm))
    image = tmp_path / "face.png"
    import PIL.Image

    PIL.Image.fromarray(np.full((80, 64, 3), 128, np.uint8)).save(image)
    audio = tmp_path / "speech.wav"
    sf.write(audio, speech.samples.numpy(), 16000)
    out = tmp_path / "live.mp4"
    assert main(["stream", "-i", str(image), "-a", str(audio), "-o", str(out),
                 "--chunk-s", "0.04"]) == 0
    assert "streamed 50 frames" in capsys.readouterr().err
    info = probe_media(out)
    assert info["video"]["frames"] == 50 and info["video"]["duration"] == pytest.approx(2.0)
    assert info["audio"]["duration"] == pytest.approx(2.0, abs=0.1)  # AAC pads a little
    assert (tmp_path / "live.yaml").exists()
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    assert main(["stream", "-i", str(image), "-a", str(silent), "-o",
                 str(tmp_path / "s.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "silent" in err[0] and not (tmp_path / "s.mp4").exists()


def test_text_sets_the_transcript_of_the_stage_that_takes_it():
    from talkingface.cli import _pipeline

    args = build_parser().parse_args(["run", "--text", "Hello, world!", "--preset", "sphinx"])
    pipe = _pipeline(args)
    assert pipe.config.audio.name == "sphinx"
    assert pipe.config.audio.params.text == "Hello, world!"
    assert pipe.config.motion.params.jaw_loudness == 0.2


def test_text_with_no_stage_that_takes_it_is_a_clear_error(capsys):
    for argv in (["run", "--text", "hello", "audio=energy"], ["run", "--text", "hello"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--preset sphinx" in err[0] and "'text'" in err[0]
    assert main(["run", "--text", "  ", "--preset", "sphinx"]) == 2
    assert "the input 'text' is empty" in capsys.readouterr().err


def test_a_reader_that_stops_early_ends_the_stream_quietly():
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "talkingface.cli", "stream", "-o", "-", "threads=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    head = proc.stdout.read(1000)  # like `| head -c 1000`
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert len(head) == 1000
    assert proc.returncode == 141
    assert err.decode().strip().splitlines()[-1] == (
        "stopped: the reader closed the output (broken pipe)")


def test_run_says_when_the_watermark_is_off(tmp_path, capsys, monkeypatch, speech):
    import numpy as np
    import PIL.Image
    import soundfile as sf

    from talkingface import cli
    from talkingface.api import Pipeline
    from talkingface.pipeline.registry import PluginManager
    from tests.pipeline.toy_stages import TestStagesPlugin

    pm = PluginManager(load_entry_points=False)
    pm.register(TestStagesPlugin(), name="test-stages")
    monkeypatch.setattr(cli, "_pipeline", lambda args: Pipeline.from_config(
        "toy", ["render.params.size=32", *args.overrides], plugin_manager=pm))
    image, audio = tmp_path / "face.png", tmp_path / "speech.wav"
    PIL.Image.fromarray(np.full((80, 64, 3), 128, np.uint8)).save(image)
    sf.write(audio, speech.samples.numpy(), 16000)
    argv = ["run", "-i", str(image), "-a", str(audio), "-o", str(tmp_path / "o.mp4")]
    assert main(argv) == 0
    assert "watermark: OFF" not in capsys.readouterr().err
    assert main([*argv, "watermark.enabled=false"]) == 0
    assert "watermark: OFF (watermark.enabled=false)" in capsys.readouterr().err


def test_run_with_a_driver_video_takes_its_sound(tmp_path, monkeypatch, capsys, rendered_talk):
    import shutil

    from talkingface.assets import demo_portrait_path
    from talkingface.io import probe_media

    monkeypatch.chdir(tmp_path)
    shutil.copy(rendered_talk[3], "driver.mp4")
    argv = ["run", "-i", str(demo_portrait_path()), "--no-progress", "motion=video",
            "motion.params.path=driver.mp4", "render.params.size=128",
            "render.params.flow_grid=32", "threads=1"]
    assert main(argv) == 0, capsys.readouterr().err
    # Named after the driver, without overwriting it.
    info = probe_media("driver_talkingface.mp4")
    assert info["video"]["frames"] == 75 and info["audio"] is not None
    assert probe_media("driver.mp4")["video"]["width"] == 256


def test_serve_beyond_this_machine_without_a_token_is_refused(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: serving on 0.0.0.0") and "--token" in err


def test_serve_runs_the_realtime_preset_one_thread_a_session(monkeypatch):
    import talkingface.serve

    seen = {}

    def fake_serve(pipe, options, announce):
        seen.update(pipe=pipe, options=options)

    monkeypatch.setattr(talkingface.serve, "serve", fake_serve)
    assert main(["serve", "--port", "8123", "--token", "t", "controls.emotion=happy"]) == 0
    pipe, options = seen["pipe"], seen["options"]
    assert (options.port, options.token, options.host) == (8123, "t", "127.0.0.1")
    assert pipe.config.stream.chunk_s == 0.04  # the realtime preset
    assert pipe.config.threads == 1 and pipe.config.controls.emotion == "happy"
    assert main(["serve", "threads=2"]) == 0
    assert seen["pipe"].config.threads == 2
