"""An invisible watermark in every rendered frame: a tiled spread-spectrum pattern in the luma,
shaped by local texture, carrying a 32-bit payload (a fixed talkingface mark, a format version
and a 12-bit user field), and its blind detector, pooled over frames.

Embedding adds ``mask * (sync + payload patterns)`` to R, G and B alike (so only the luma
changes), with the pattern tiled every ``TILE`` pixels and band-limited to mid frequencies
(wavelengths of 6 to 32 pixels: below what H.264 at high CRF, scaling and blur remove, above
what is visible as blotches), its local strength following the texture so that flat areas
get under a grey level and the frame's PSNR stays at 40 dB or more. The detector averages the
frames' luma, whitens it (high-pass, divided by the local contrast), folds it into one tile
(so a crop, which shifts the pattern, only shifts the fold cyclically), estimates a rescale
from the tiling's periodicity, and correlates with the known part of the pattern over every
cyclic shift: the peak's z-score is the confidence. Nothing is learned and nothing downloads;
the patterns come from a fixed seed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from talkingface.pipeline.contracts import Frames
from talkingface.pipeline.stages import FrameFilter

TILE = 64
"""Side of the tiled pattern, pixels."""
BAND = (1 / 32, 1 / 6)
"""Spatial frequencies of the pattern, cycles per pixel."""
MAGIC = 0x7466
"""The fixed 16-bit mark ("tf") every talkingface watermark carries."""
VERSION = 1
"""Format version (4 bits)."""
USER_BITS = 12
PAYLOAD_BITS = 32
SYNC_SHARE = 0.6
"""Share of the pattern's energy in the sync pattern (the rest carries the payload)."""
THRESHOLD = 5.5
"""Detection threshold on the z-score for :data:`POOLED` frames or more (set from the negative
set of ``benchmarks/bench_watermark.py``: unmarked videos stay below it)."""
THRESHOLD_FEW = 6.0
"""The threshold for fewer frames (a still image): one frame's fold is less Gaussian, and
single unmarked images reach higher z-scores than pooled videos."""
POOLED = 25
_SEED = 0x7A1C_F00D


def payload_bits(user: int = 0) -> np.ndarray:
    """The 32 payload bits as ±1: 16-bit magic, 4-bit version, 12-bit user field (MSB first)."""
    if not (isinstance(user, int) and 0 <= user < 1 << USER_BITS):
        raise ValueError(f"the watermark's user field is 0..{(1 << USER_BITS) - 1}, got {user!r}")
    word = (MAGIC << 16) | (VERSION << USER_BITS) | user
    return np.array([1.0 if word >> (PAYLOAD_BITS - 1 - i) & 1 else -1.0
                     for i in range(PAYLOAD_BITS)])


def _patterns() -> np.ndarray:
    """float64 ``[1 + 32, TILE, TILE]``: the sync pattern, then one per payload bit; each
    band-limited to :data:`BAND`, zero mean, unit norm, mutually orthogonal."""
    rng = np.random.default_rng(_SEED)
    fy = np.fft.fftfreq(TILE)[:, None]
    fx = np.fft.fftfreq(TILE)[None, :]
    radius = np.hypot(fx, fy)
    keep = (radius >= BAND[0]) & (radius <= BAND[1])
    raw = []
    for _ in range(1 + PAYLOAD_BITS):
        spectrum = np.fft.fft2(rng.standard_normal((TILE, TILE))) * keep
        raw.append(np.real(np.fft.ifft2(spectrum)).ravel())
    q, _ = np.linalg.qr(np.stack(raw, axis=1))  # orthonormal columns, still in the band
    return q.T.reshape(-1, TILE, TILE)


_PATTERNS = _patterns()
_PATTERNS.flags.writeable = False


def watermark_tile(user: int = 0) -> np.ndarray:
    """float32 ``[TILE, TILE]`` unit-RMS pattern carrying the payload for ``user``."""
    w = _combined(payload_bits(user))
    return (w / w.std()).astype(np.float32)


def _combined(bits: np.ndarray) -> np.ndarray:
    """The sync pattern plus the patterns of the first ``len(bits)`` payload bits, signed."""
    share = np.sqrt((1 - SYNC_SHARE) / PAYLOAD_BITS)
    return np.sqrt(SYNC_SHARE) * _PATTERNS[0] + share * np.tensordot(
        bits, _PATTERNS[1 : 1 + bits.size], axes=1)


FLAT_VARIANCE = 25.0
"""Sets the mark's floor on flat areas: ``sqrt(FLAT_VARIANCE) / 10`` grey levels RMS at
strength 1 (0.5)."""
MIN_PSNR_DB = 40.0
"""However textured a frame, the mark keeps its PSNR at or above this."""


class Watermarker:
    """Embeds the watermark into uint8 RGB frames.

    Args:
        user: the 12-bit user field of the payload (0..4095).
        strength: the mark's local RMS in units of ``sqrt(std^2 + 25) / 10`` (``std`` the local
            texture contrast; see :func:`_texture_mask`): the default 1.5 keeps the face
            region's SSIM above 0.99 and puts 0.75 grey levels on flat areas. Higher is more
            robust and less invisible.
            Whatever the strength, a frame's PSNR stays at or above :data:`MIN_PSNR_DB`.
    """

    def __init__(self, user: int = 0, strength: float = 1.5) -> None:
        if not 0.1 <= strength <= 4.0:
            raise ValueError(f"watermark strength must be in 0.1..4, got {strength!r}")
        payload_bits(user)  # checks the user field
        self.user, self.strength = user, strength
        self._tile = watermark_tile(user)
        # 3 % below the floor's RMS: the mask's mean square is measured at a quarter of the
        # resolution, and rounding to grey levels adds a little.
        self._max_rms = 0.97 * 255.0 / 10 ** (MIN_PSNR_DB / 20.0)
        self._canvas: dict[tuple[int, int], np.ndarray] = {}

    def _tiled(self, h: int, w: int) -> np.ndarray:
        canvas = self._canvas.get((h, w))
        if canvas is None:
            reps = (-(-h // TILE), -(-w // TILE))
            canvas = np.ascontiguousarray(np.tile(self._tile, reps)[:h, :w])
            self._canvas = {(h, w): canvas}  # one size at a time: frames keep their size
        return canvas

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``[T, H, W, 3]`` -> the same frames, watermarked (a new array)."""
        import cv2

        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"watermark embeds into uint8 [T, H, W, 3], got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        h, w = frames.shape[1:3]
        pattern = self._tiled(h, w)
        out = np.empty_like(frames)
        for i, frame in enumerate(frames):
            mask, mean_square = _texture_mask(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2)
            # The pattern is unit-RMS and independent of the mask: RMS(delta)^2 = mean(mask^2).
            rms = self.strength * float(np.sqrt(mean_square))
            gain = self.strength * min(1.0, self._max_rms / max(rms, 1e-6))
            delta = cv2.multiply(pattern, mask, scale=gain, dtype=cv2.CV_32F)
            steps = cv2.merge([np.rint(delta).astype(np.int16)] * 3)
            out[i] = cv2.add(frame, steps, dtype=cv2.CV_8U)  # saturates at 0 and 255
        return out


def _texture_mask(gray: np.ndarray, cv2) -> tuple[np.ndarray, float]:
    """float32 ``[H, W]`` relative strength of the mark: ``sqrt(std^2 + FLAT_VARIANCE) / 10``
    with ``std`` the local texture contrast (over about 12 px, on a 4x smaller image, lone
    edges removed), so the mark's variance is a fixed share of the local variance, as SSIM's
    contrast term weighs it: it hides in texture and stays faint on flat skin and along
    edges. Also the mean of its square."""
    h, w = gray.shape
    half, quarter = (max(1, w // 2), max(1, h // 2)), (max(1, w // 4), max(1, h // 4))

    def shrink(image: np.ndarray) -> np.ndarray:  # area means at half, then quarter size
        half_size = cv2.resize(image, half, interpolation=cv2.INTER_AREA).astype(np.float32)
        return cv2.resize(half_size, quarter, interpolation=cv2.INTER_AREA)

    sharp, energy = shrink(gray), shrink(gray.astype(np.float32) ** 2)
    contrast = np.sqrt(np.maximum(cv2.blur(energy, (3, 3)) - cv2.blur(sharp, (3, 3)) ** 2, 0.0))
    # An edge is contrast too, but noise along an edge shows: the minimum over about 12 px
    # keeps texture (contrast all around) and drops lone edges.
    contrast = cv2.erode(contrast, np.ones((3, 3), np.uint8))
    small_mask = np.sqrt(contrast * contrast + FLAT_VARIANCE) / 10.0
    mask = cv2.resize(small_mask, (w, h), interpolation=cv2.INTER_LINEAR)
    return mask, float(np.mean(small_mask * small_mask))


@dataclass(frozen=True)
class WatermarkReport:
    """What the detector found.

    Attributes:
        found: the z-score reached :data:`THRESHOLD` (:data:`THRESHOLD_FEW` under
            :data:`POOLED` frames).
        z: the correlation peak's z-score (3 to 5 on unmarked content, the maximum of
            thousands of noise values; a marked 5-second clip scores 6 to 12).
        frames: frames pooled.
        shift: ``(dy, dx)`` cyclic offset of the pattern (a crop moves it).
        scale: ``(sy, sx)`` size change the detector undid (1, 1 when the video was not resized).
        magic_ok: the payload's fixed mark decoded exactly.
        version: the payload's format version.
        user: the payload's user field.
        bit_errors: payload bits that disagree with the fixed mark and version.
    """

    found: bool
    z: float
    frames: int
    shift: tuple[int, int] = (0, 0)
    scale: tuple[float, float] = (1.0, 1.0)
    magic_ok: bool = False
    version: int | None = None
    user: int | None = None
    bit_errors: int | None = None


class WatermarkDetector:
    """Pools frames (any size, the same for all), then decides. Feed frames with :meth:`add`
    (uint8 ``[H, W, 3]`` RGB or ``[T, H, W, 3]``) and call :meth:`report`.

    The mark is the same in every frame, so the frames' luma is averaged first (cheap per
    frame) and whitened once: moving content blurs out of the average, the mark stays.
    """

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self.frames = 0

    def add(self, frames: np.ndarray) -> None:
        import cv2

        frames = frames[None] if frames.ndim == 3 else frames
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"watermark detection takes uint8 RGB [H, W, 3] or [T, H, W, 3], "
                             f"got {frames.dtype} {tuple(frames.shape)}")
        for frame in frames:
            luma = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
            if self._sum is not None and self._sum.shape != luma.shape:
                raise ValueError("watermark detection needs frames of one size")
            if self._sum is None:
                self._sum = np.zeros(luma.shape, np.float32)
            cv2.accumulate(luma, self._sum)
            self.frames += 1

    def report(self) -> WatermarkReport:
        """The decision on the frames added so far (not found for none)."""
        if self._sum is None:
            return WatermarkReport(False, 0.0, 0)
        residual = _whitened(self._sum / self.frames)
        best = None
        for estimate in _scale_candidates(residual):
            # The autocorrelation places a resize within about half a percent; the
            # correlation peak is that narrow, so each estimate is refined around it.
            fine = (estimate,) if estimate == (1.0, 1.0) else tuple(
                (estimate[0] + d, estimate[1] + d) for d in (-0.006, -0.003, 0.0, 0.003, 0.006))
            for scale in fine:
                z, shift, aligned = _sync(_fold(_rescaled(residual, scale)))
                if best is None or z > best[0]:
                    best = (z, shift, aligned, scale)
        z, shift, aligned, scale = best
        soft = np.tensordot(_PATTERNS[1:], aligned, axes=([1, 2], [0, 1]))
        bits = np.where(soft >= 0, 1, 0)
        word = int("".join(map(str, bits)), 2)
        known = payload_bits()[: PAYLOAD_BITS - USER_BITS]
        errors = int(np.sum(np.where(soft[: known.size] >= 0, 1.0, -1.0) != known))
        threshold = THRESHOLD if self.frames >= POOLED else THRESHOLD_FEW
        return WatermarkReport(
            found=z >= threshold, z=float(z), frames=self.frames, shift=shift,
            scale=(round(scale[0], 3), round(scale[1], 3)), magic_ok=(word >> 16) == MAGIC,
            version=(word >> USER_BITS) & 0xF, user=word & ((1 << USER_BITS) - 1),
            bit_errors=errors,
        )


def _whitened(luma: np.ndarray) -> np.ndarray:
    """The luma's high-pass (what a 2-pixel blur removes) divided by its local contrast, so that
    flat and busy areas weigh alike."""
    import cv2

    highpass = luma - cv2.GaussianBlur(luma, (0, 0), 2.0)
    return highpass / (np.sqrt(cv2.GaussianBlur(highpass * highpass, (0, 0), 4.0)) + 2.0)


def detect(frames: Iterable[np.ndarray]) -> WatermarkReport:
    """Pool ``frames`` (uint8 RGB, ``[H, W, 3]`` each or ``[T, H, W, 3]`` chunks) and decide."""
    detector = WatermarkDetector()
    for chunk in frames:
        detector.add(np.asarray(chunk))
    return detector.report()


def _fold(image: np.ndarray) -> np.ndarray:
    """Sum of all ``TILE`` x ``TILE`` tiles of ``image`` (partial tiles at the edges too)."""
    h, w = image.shape
    ph, pw = -(-h // TILE) * TILE, -(-w // TILE) * TILE
    padded = np.zeros((ph, pw), np.float64)
    padded[:h, :w] = image
    return padded.reshape(ph // TILE, TILE, pw // TILE, TILE).sum(axis=(0, 2))


_KNOWN_SPECTRUM = np.conj(np.fft.fft2(_combined(payload_bits()[: PAYLOAD_BITS - USER_BITS])))
"""Conjugate spectrum of the part of the pattern every mark shares (sync + fixed bits)."""
_KNOWN_SPECTRUM.flags.writeable = False


def _sync(fold: np.ndarray) -> tuple[float, tuple[int, int], np.ndarray]:
    """z-score of the best cyclic alignment of the known pattern (sync + fixed payload bits)
    with ``fold``, that offset, and ``fold`` rolled back by it."""
    surface = np.real(np.fft.ifft2(np.fft.fft2(fold) * _KNOWN_SPECTRUM))
    dy, dx = np.unravel_index(int(np.argmax(surface)), surface.shape)
    z = (surface[dy, dx] - surface.mean()) / max(float(surface.std()), 1e-12)
    return float(z), (int(dy), int(dx)), np.roll(fold, (-dy, -dx), axis=(0, 1))


def _scale_candidates(image: np.ndarray, keep: int = 8) -> list[tuple[float, float]]:
    """``(1, 1)`` plus the uniform size changes the image's periodicity suggests, best first.

    The tiled pattern makes the autocorrelation peak on a lattice of one-tile steps, which a
    resize by ``s`` moves to ``TILE * s``. Each candidate ``s`` is scored by the detrended
    autocorrelation summed over the first lattice points (many peaks together hold up under
    blur, noise and compression where one does not).
    """
    h, w = image.shape
    spectrum = np.fft.rfft2(image - image.mean())
    auto = np.fft.fftshift(np.fft.irfft2(np.abs(spectrum) ** 2, s=image.shape))
    auto = auto - _box_mean(auto, 7)  # the content's smooth trend; the lattice stays
    cy, cx = h // 2, w // 2
    scales = np.arange(0.45, 2.2, 0.004)
    steps = [(0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0)]
    score = np.zeros(scales.size)
    for dy, dx in steps:
        ys, xs = cy + dy * TILE * scales, cx + dx * TILE * scales
        inside = (ys >= 0) & (ys <= h - 2) & (xs >= 0) & (xs <= w - 2)
        score[inside] += _bilinear(auto, ys[inside], xs[inside])
    order = np.argsort(-score)
    candidates = [(1.0, 1.0)]
    for index in order:
        s = float(scales[index])
        if len(candidates) > keep:
            break
        if all(abs(s - c[0]) > 0.02 for c in candidates):
            candidates.append((s, s))
    return candidates


def _box_mean(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.blur(image.astype(np.float32), (size, size)).astype(np.float64)


def _bilinear(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    ty, tx = ys - y0, xs - x0
    return ((1 - ty) * (1 - tx) * image[y0, x0] + (1 - ty) * tx * image[y0, x0 + 1]
            + ty * (1 - tx) * image[y0 + 1, x0] + ty * tx * image[y0 + 1, x0 + 1])


def _rescaled(image: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """``image`` resized by ``1 / scale`` (undoing a resize by ``scale``)."""
    if scale == (1.0, 1.0):
        return image
    import cv2

    h, w = image.shape
    size = (max(TILE, round(w / scale[1])), max(TILE, round(h / scale[0])))
    return cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)


class WatermarkFilter(FrameFilter):
    """The frame filter that marks every rendered frame (``config.watermark``). Frames come
    out uint8 (a renderer's float frames are converted first)."""

    name = "watermark"

    def __init__(self, user: int = 0, strength: float = 1.5) -> None:
        self.watermarker = Watermarker(user, strength)

    def apply(self, frames: Frames) -> Frames:
        marked = self.watermarker.embed(np.ascontiguousarray(frames.to_uint8().numpy()))
        return Frames(torch.from_numpy(marked), frames.fps, frames.start_frame)
