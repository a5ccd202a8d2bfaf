"""Face analysis shared by renderers, motion extraction and metrics: MediaPipe landmarks and
their index sets, aligned crops, paste-back into the portrait, and face measures.

    from talkingface.face import FaceAnalyzer, align_crop, mouth_opening
"""

from talkingface.face.align import align_crop, eye_mouth_crop
from talkingface.face.analyzer import FaceAnalyzer, as_rgb_uint8
from talkingface.face.landmarks import NUM_LANDMARKS, FaceLandmarks
from talkingface.face.measures import eye_openness, head_pose, mouth_opening
from talkingface.face.paste import PasteBack, build_paste_back, output_canvas
from talkingface.pipeline.contracts import FaceCrop

__all__ = [
    "NUM_LANDMARKS",
    "FaceAnalyzer",
    "FaceCrop",
    "FaceLandmarks",
    "PasteBack",
    "align_crop",
    "as_rgb_uint8",
    "build_paste_back",
    "eye_mouth_crop",
    "eye_openness",
    "head_pose",
    "mouth_opening",
    "output_canvas",
]
