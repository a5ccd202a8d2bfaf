"""MediaPipe face-mesh landmarks: the 478-point layout, its named index sets, and the
:class:`FaceLandmarks` of one face.

"Left" and "right" mean as seen in the image (the viewer's left), so ``LEFT_EYE`` is the
subject's right eye; MediaPipe's own ``FACEMESH_LEFT_*`` names use the subject's side. This is
the one place the index sets are written: renderers, metrics and motion extraction import them."""

from __future__ import annotations

from talkingface.pipeline.contracts import FaceLandmarks as FaceLandmarks  # re-exported

NUM_LANDMARKS = 478

# Named landmark groups. Closed contours are listed in drawing order around the loop.
LIPS_OUTER: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375,
    291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
)  # fmt: skip
LIPS_INNER: tuple[int, ...] = (
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324,
    308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
)  # fmt: skip
LEFT_EYE: tuple[int, ...] = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
)  # fmt: skip
RIGHT_EYE: tuple[int, ...] = (
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,
)  # fmt: skip
LEFT_IRIS: tuple[int, ...] = (468, 469, 470, 471, 472)
"""Centre first, then the four rim points."""
RIGHT_IRIS: tuple[int, ...] = (473, 474, 475, 476, 477)
"""Centre first, then the four rim points."""
LEFT_BROW: tuple[int, ...] = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
"""Lower edge from the outer end inwards, then the upper edge back out."""
RIGHT_BROW: tuple[int, ...] = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
"""Lower edge from the outer end inwards, then the upper edge back out."""
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip
"""From the top of the forehead (10) clockwise as seen in the image, through the chin (152)."""
JAW: tuple[int, ...] = (
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152,
    377, 400, 378, 379, 365, 397, 288, 361, 323, 454,
)  # fmt: skip
"""The lower face oval, from the left cheek (234) through the chin (152) to the right cheek."""
NOSE: tuple[int, ...] = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 48, 278, 64, 294)
"""The bridge from between the eyes (168) to the tip (1) and base (2), then the nostril wings."""

FOREHEAD, CHIN, NOSE_BRIDGE, NOSE_TIP = 10, 152, 168, 1
LEFT_CHEEK, RIGHT_CHEEK = 234, 454
GONIONS: tuple[int, int] = (172, 397)
"""The jaw angles, image-left first."""
MOUTH_CORNERS: tuple[int, int] = (61, 291)
"""The outer mouth corners, image-left first."""
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((13, 14), (82, 87), (312, 317))
"""Upper / lower inner-lip points facing each other (mouth opening)."""
EYE_LID_POINTS: tuple[tuple[int, int, int, int], ...] = ((159, 145, 33, 133), (386, 374, 263, 362))
"""(upper lid, lower lid, outer corner, inner corner) per eye, image-left eye first."""


def _split_loop(loop: tuple[int, ...], corner: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A closed contour that starts at one corner and reaches the other at ``loop[corner]`` ->
    its (upper, lower) halves, each from the first corner to the second."""
    return (loop[0], *reversed(loop[corner:])), loop[: corner + 1]


UPPER_OUTER_LIP, LOWER_OUTER_LIP = _split_loop(LIPS_OUTER, 10)
"""The outer lip contours from the image-left mouth corner (61) to the right one (291)."""
UPPER_INNER_LIP, LOWER_INNER_LIP = _split_loop(LIPS_INNER, 10)
"""The inner lip contours from the image-left corner (78) to the right one (308)."""
EYE_LIDS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    _split_loop(LEFT_EYE, 8), _split_loop(RIGHT_EYE, 8),
)
"""Per eye (image-left first): (upper lid, lower lid), from the outer corner to the inner one."""
IRISES = (LEFT_IRIS, RIGHT_IRIS)
BROWS = (LEFT_BROW, RIGHT_BROW)
