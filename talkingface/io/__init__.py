"""Media I/O: portraits and speech in (files or arrays), real videos in, MP4 and PNG out, with
the streaming resampler and the provenance tags every output carries.

Everything a user or plugin needs is importable from here::

    from talkingface.io import load_image, load_audio, VideoWriter
"""

from talkingface.io.audio import (
    MIN_AUDIO_SECONDS,
    audio_level_db,
    check_not_silent,
    load_audio,
    stream_audio_file,
)
from talkingface.io.images import MIN_IMAGE_SIDE, load_image
from talkingface.io.provenance import PROVENANCE, container_tags, run_tags
from talkingface.io.resample import StreamResampler, resample, resample_chunks
from talkingface.io.video import VideoClip, probe_media, read_video, video_frames
from talkingface.io.writers import (
    X264_PRESETS,
    PNGWriter,
    VideoWriter,
    WriteResult,
    h264_round_trip,
)

__all__ = [
    "MIN_AUDIO_SECONDS",
    "MIN_IMAGE_SIDE",
    "PROVENANCE",
    "X264_PRESETS",
    "PNGWriter",
    "StreamResampler",
    "VideoClip",
    "VideoWriter",
    "WriteResult",
    "audio_level_db",
    "check_not_silent",
    "container_tags",
    "h264_round_trip",
    "load_audio",
    "load_image",
    "probe_media",
    "read_video",
    "resample",
    "resample_chunks",
    "run_tags",
    "stream_audio_file",
    "video_frames",
]
