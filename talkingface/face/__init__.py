"""Face analysis shared by renderers, motion extraction and metrics: MediaPipe landmarks and
their index sets, aligned crops, paste-back into the portrait, face measures, and motion
extraction from video.

    from talkingface.face import FaceAnalyzer, align_crop, extract_motion, mouth_opening
"""

from talkingface.face.align import align_crop
from talkingface.face.analyzer import FaceAnalyzer, as_rgb_uint8
from talkingface.face.landmarks import NUM_LANDMARKS, FaceLandmarks
from talkingface.face.measures import eye_openness, head_pivot, head_pose, mouth_opening
from talkingface.face.motion_track import MotionTrack, extract_motion
from talkingface.face.paste import PasteBack, build_paste_back, output_canvas
from talkingface.face.smoothing import SmoothingConfig
from talkingface.pipeline.contracts import FaceCrop

__all__ = [
    "NUM_LANDMARKS",
    "FaceAnalyzer",
    "FaceCrop",
    "FaceLandmarks",
    "MotionTrack",
    "PasteBack",
    "SmoothingConfig",
    "align_crop",
    "as_rgb_uint8",
    "build_paste_back",
    "extract_motion",
    "eye_openness",
    "head_pivot",
    "head_pose",
    "mouth_opening",
    "output_canvas",
]
