"""The ``talkingface`` command: run, stream, plugins, profile, config, verify, serve (and compare,
dataset).

Every subcommand takes the same pipeline options: ``--preset``/``--config`` and dotlist
overrides (``audio=energy controls.emotion=happy``). A bad input gives one line on stderr and a
non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

EXAMPLES = """\
examples:
  talkingface run                      # built-in demo portrait + speech -> talkingface_demo.mp4
  talkingface run --image me.jpg --audio hello.wav --output out.mp4
  talkingface run --image me.jpg --audio a.mp3 audio=energy controls.emotion=happy
  talkingface run -i me.jpg -a a.wav render.params.paste_back=true   # whole picture, not the crop
  talkingface run -i me.jpg -a a.wav threads=1     # torch CPU threads (busy machine: fewer)
  talkingface run --image me.jpg motion=video motion.params.path=driver.mp4
  talkingface stream --image me.jpg --audio a.wav --output - > live.mp4
  talkingface profile --image me.jpg --audio a.wav --trace trace.json
  talkingface plugins
  talkingface config render.params.flow_grid=96
  talkingface verify out.mp4 frames/frame_000000.png
  talkingface serve                    # the live page: microphone -> talking face in the browser
  talkingface dataset build clips/ --out my_dataset --workers 2
"""

SERVE_EXAMPLES = """\
examples:
  talkingface serve                               # http://127.0.0.1:<free port>/, preset realtime
  talkingface serve --port 8000 controls.emotion=happy
  talkingface serve render=meshwarp motion.params.anticipation_frames=0   # any stage can serve
  talkingface serve --host 0.0.0.0 --token s3cret # other machines: open http://HOST:PORT/?token=s3cret

The page: "Talk" (microphone), "Play a file" or the demo clip, "Stop"; emotion, gaze and
head-motion controls apply mid-stream. Open it with ?autostart=mic or ?autostart=demo to start
by itself (kiosks, scripts); window.talkingface.stats has its live figures. Torch runs one
thread per session (threads=1) unless you set threads=N.
"""


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. audio=energy fps=30 controls.emotion=happy "
                        "threads=1 render.params.paste_back=true motion.params.KEY=VALUE "
                        "(see `talkingface config`; stage params: `talkingface plugins`)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--preset", default="default",
                   help="named preset (see `talkingface plugins`); default: %(default)s")
    g.add_argument("--config", type=Path, help="a YAML config file (e.g. a saved out.yaml)")


def _add_input_args(p: argparse.ArgumentParser, demo: bool = True) -> None:
    suffix = " (default: the built-in demo)" if demo else ""
    p.add_argument("--image", "-i", help="portrait image: jpg/png/webp" + suffix)
    p.add_argument("--audio", "-a", help="speech audio: wav/flac/mp3/ogg, any rate" + suffix
                   + "; with motion=video, the driver video's own sound by default")
    p.add_argument("--allow-silent", action="store_true",
                   help="accept silent audio (renders a still face) instead of refusing it")
    p.add_argument("--seed", type=int, help="seed for every random choice (same seed, same video)")
    p.add_argument("--text", help="what the speech says, for stages that take a transcript "
                                  "(the sphinx encoder aligns its phones to these English words "
                                  "instead of recognising them: --preset sphinx; needs "
                                  "pip install 'talkingface[sphinx]')")


def build_parser() -> argparse.ArgumentParser:
    from talkingface._version import __version__

    parser = argparse.ArgumentParser(
        prog="talkingface",
        description="One portrait + speech audio -> a talking-face video. Stages (audio encoder, "
                    "motion generator, renderer) are plugins chosen by config.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"talkingface {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="portrait + audio -> MP4 (batch)",
                       description="Render a talking-face MP4. With no --image/--audio, animates "
                                   "the built-in demo portrait with the built-in speech clip. "
                                   "The resolved config is saved beside the output (.yaml).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_input_args(p)
    p.add_argument("--output", "-o", type=Path, help="output .mp4 (default: talkingface_demo.mp4 "
                   "for the demo, else the audio's name + .mp4 in the current folder)")
    p.add_argument("--frames-dir", type=Path, help="also write every frame as PNG here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--profile", action="store_true", help="print the per-stage table afterwards")
    _add_pipeline_args(p)

    p = sub.add_parser("stream", help="streaming run, reports start latency",
                       description="Run the pipeline in streaming mode (audio in chunks, frames "
                                   "out as soon as they exist) and write a fragmented MP4 to a "
                                   "file or stdout (--output -). Prints start latency and "
                                   "real-time factor on stderr.")
    _add_input_args(p)
    p.add_argument("--output", "-o", default="talkingface_stream.mp4",
                   help="output .mp4, or - for stdout (default: %(default)s)")
    p.add_argument("--chunk-s", type=float,
                   help="seconds of audio per chunk after the first frame (default: the "
                        "config's stream.chunk_s, 0.2); the first frame waits only for the "
                        "audio it needs")
    _add_pipeline_args(p)

    p = sub.add_parser("plugins", help="list every stage and preset with origin and config fields")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("profile", help="per-stage timing table, JSON and Chrome trace",
                       description="Run once and print per-stage wall time, ms/frame, frames/s "
                                   "and peak memory; --stream also measures start latency.")
    _add_input_args(p)
    p.add_argument("--stream", action="store_true", help="profile the streaming path")
    p.add_argument("--json", type=Path, default=Path("profile.json"),
                   help="write the profile as JSON (default: %(default)s)")
    p.add_argument("--trace", type=Path, default=Path("profile_trace.json"),
                   help="write a Chrome trace, open in ui.perfetto.dev (default: %(default)s)")
    _add_pipeline_args(p)

    p = sub.add_parser("config", help="print the resolved config (YAML)")
    _add_pipeline_args(p)

    p = sub.add_parser(
        "verify", help="does a video or image say it was generated? (watermark, tags, C2PA)",
        description="Report, per file, whether its pixels carry talkingface's invisible "
                    "watermark (with a confidence and the payload), whether it carries the "
                    "provenance tags (MP4 metadata, PNG text) and Content Credentials (a C2PA "
                    "manifest declaring AI-generated content) with the manifest's signer and "
                    "validation state. Exit 0 when every file shows generated content, 1 when "
                    "one does not, 2 when a file cannot be read. The watermark survives "
                    "re-encoding, scaling, cropping and screen capture; tags and manifests do "
                    "not. Nothing found proves nothing: a determined attacker can remove the "
                    "mark, and other tools' fakes carry none.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="videos or images")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser(
        "serve", help="the live page: microphone -> talking face in the browser",
        description="Serve a web page where the microphone (or an uploaded clip) drives the "
                    "talking face live, with live emotion/gaze/head-motion controls and its "
                    "start latency, frame rate, dropped frames and A/V offset on screen. The "
                    "video is marked AI-generated on the page and watermarked in its pixels. "
                    "Needs a browser on this machine, or --host with --token for others.",
        epilog=SERVE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only); any "
                        "other needs --token")
    p.add_argument("--port", type=int, default=0,
                   help="TCP port (default: a free one, printed on start)")
    p.add_argument("--token", help="secret the page, uploads and sessions need (?token=...); "
                                   "required with --host other than 127.0.0.1")
    p.add_argument("--max-sessions", type=int, default=4,
                   help="live sessions at once (default: %(default)s); sessions beyond what "
                        "the CPU keeps up with drop frames, and their pages say so")
    _add_pipeline_args(p)
    p.set_defaults(preset="realtime")

    try:
        from talkingface.compare import cli as compare_cli
    except ImportError:
        compare_cli = None
    if compare_cli is not None:
        compare_cli.add_parser(sub)
    from talkingface.dataset import cli as dataset_cli

    dataset_cli.add_parser(sub)
    return parser


def _pipeline(args):
    from talkingface.api import Pipeline

    overrides = list(args.overrides)
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    if getattr(args, "allow_silent", False):
        overrides.append("allow_silent=true")
    if getattr(args, "frames_dir", None) is not None:
        overrides.append(f"output.frames_dir={args.frames_dir}")
    source = args.config if args.config is not None else args.preset
    text = getattr(args, "text", None)
    return Pipeline.from_config(source, overrides, inputs=None if text is None else {"text": text})


def _inputs(args, pipe) -> tuple[str, str, bool]:
    """(image, audio, demo?): the demo portrait stands in for a missing --image, the motion
    source's own audio (a driver video's sound) or the demo speech for a missing --audio."""
    from talkingface.api import InputError
    from talkingface.assets import demo_audio_path, demo_portrait_path

    audio = args.audio if args.audio is not None else pipe.default_audio()
    if args.image is None and args.audio is None:
        return str(demo_portrait_path()), str(audio or demo_audio_path()), True
    if args.image is None or audio is None:
        raise InputError("give both --image and --audio (or neither, for the built-in demo)")
    return args.image, str(audio), False


def _default_output(audio: str, demo: bool) -> Path:
    """The demo's name, else the audio's name + .mp4 here (never the audio file itself, which
    a driver video used for its sound would be)."""
    if demo:
        return Path("talkingface_demo.mp4")
    output = Path(Path(audio).stem + ".mp4")
    if output.resolve() == Path(audio).resolve():
        output = Path(Path(audio).stem + "_talkingface.mp4")
    return output


def cmd_run(args) -> int:
    pipe = _pipeline(args)
    image, audio, demo = _inputs(args, pipe)
    output = args.output or _default_output(audio, demo)
    # Bad inputs (no face included) fail here, before anything is written.
    portrait = pipe.prepare(image)
    clip = pipe.load_audio(audio)
    _say(f"talkingface: {pipe.description}: {image} + {audio} -> {output}")
    progress = not args.no_progress and sys.stderr.isatty()
    result = pipe.run(portrait, clip, output=output, progress=progress)
    info = result.output
    prof = result.profile
    _say(f"wrote {output} ({prof.frames} frames, {prof.audio_s:.2f} s) in {prof.wall_s:.1f} s "
         f"(real-time factor {prof.real_time_factor:.2f}); config: {output.with_suffix('.yaml')}")
    if info is not None and hasattr(info, "video_duration"):
        _say(f"video {info.video_duration:.3f} s, audio {info.audio_duration:.3f} s")
    _say_provenance(pipe)
    if args.profile:
        print(prof.table())
    return 0


def _say_provenance(pipe) -> None:
    """The lines on the watermark and Content Credentials of the file just written."""
    if not pipe.config.watermark.enabled:
        _say("watermark: OFF (watermark.enabled=false): the frames carry no invisible "
             "provenance mark; this is recorded in the saved config and the video's metadata")
    signed = pipe.last_credentials
    if not pipe.config.output.content_credentials:
        _say("Content Credentials: off (output.content_credentials=false); the metadata tags "
             "still say the video is generated")
    elif signed is not None and signed.signed:
        _say("Content Credentials: signed" + (" with the local self-signed key "
             "(output.signing_certificate / signing_key set your own)" if signed.self_signed
             else ""))


def cmd_stream(args) -> int:
    pipe = _pipeline(args)
    image, audio, _ = _inputs(args, pipe)
    target = sys.stdout.buffer if args.output == "-" else Path(args.output)
    # Bad audio and a bad portrait fail before anything is written.
    for _ in pipe.stream(image, audio, chunk_s=args.chunk_s, output=target):
        pass
    prof = pipe.last_profile
    _say(f"streamed {prof.frames} frames to {args.output}: start latency "
         f"{prof.start_latency_ms:.0f} ms, real-time factor {prof.real_time_factor:.2f}")
    _say_provenance(pipe)
    return 0


def cmd_serve(args) -> int:
    from talkingface.serve import ServeOptions, serve

    options = ServeOptions(host=args.host, port=args.port, token=args.token,
                           max_sessions=args.max_sessions)
    if not any(o.split("=", 1)[0] == "threads" for o in args.overrides):
        # Sessions run side by side: one torch thread each beats threads fighting over cores.
        args.overrides = ["threads=1", *args.overrides]
    try:
        serve(_pipeline(args), options, announce=_say)
    except KeyboardInterrupt:
        _say("stopped")
    return 0


def cmd_plugins(args) -> int:
    from talkingface.api import describe_plugins, format_plugins

    data = describe_plugins()
    print(json.dumps(data, indent=2, default=str) if args.json else format_plugins(data))
    return 0


def cmd_profile(args) -> int:
    from talkingface.api import DiscardSink

    pipe = _pipeline(args)
    image, audio, _ = _inputs(args, pipe)
    if args.stream:
        for _ in pipe.stream(image, audio):
            pass
        prof = pipe.last_profile
    else:
        prof = pipe.run(image, audio, sink=DiscardSink()).profile
    print(f"pipeline: {pipe.description} ({prof.mode}, device {prof.device})")
    print(prof.table())
    prof.write_json(args.json)
    prof.write_chrome_trace(args.trace)
    print(f"wrote {args.json} and {args.trace} (open the trace in ui.perfetto.dev)")
    return 0


def cmd_verify(args) -> int:
    from talkingface.api import TalkingFaceError, verify

    rows, generated, failed = [], True, False
    for path in args.files:
        try:
            (report,) = verify([path])
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not hide the others
            failed = True
            what = str(exc) if isinstance(exc, TalkingFaceError) else (
                f"internal error: {type(exc).__name__}: {exc}")
            rows.append(({"path": str(path), "error": what, "generated": None},
                         f"{path}: error: {what}"))
            continue
        generated = generated and report.generated
        rows.append((report.to_dict(), report.summary()))
    if args.json:
        print(json.dumps([data for data, _ in rows], indent=2, default=str))
    else:
        print("\n".join(line for _, line in rows))
    return 2 if failed else 0 if generated else 1


def cmd_config(args) -> int:
    from talkingface.api import config_yaml

    print(config_yaml(args.config if args.config is not None else args.preset, args.overrides),
          end="")
    return 0


COMMANDS = {
    "run": cmd_run,
    "stream": cmd_stream,
    "plugins": cmd_plugins,
    "profile": cmd_profile,
    "config": cmd_config,
    "verify": cmd_verify,
    "serve": cmd_serve,
}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    import warnings

    previous, warnings.showwarning = warnings.showwarning, _one_line_warning
    try:
        return _main(argv)
    finally:
        warnings.showwarning = previous


def _main(argv: list[str] | None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from talkingface.api import TalkingFaceError

    handler = COMMANDS.get(args.command)
    if handler is None:
        handler = args.handler  # subcommands added by other modules set their own handler
    start = time.perf_counter()
    try:
        return handler(args)
    except TalkingFaceError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`talkingface stream -o - | head`): stop quietly, and
        # point stdout at /dev/null so the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("stopped: the reader closed the output (broken pipe)", file=sys.stderr)
        return 141
    except Exception as exc:  # noqa: BLE001 - the last line of defence for users
        if args.debug:
            raise
        elapsed = time.perf_counter() - start
        print(f"internal error: {type(exc).__name__}: {exc} (after {elapsed:.1f} s; rerun with "
              "--debug for the traceback and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
