"""Phonetic audio encoder: per-frame viseme posteriors from a small 1-D conv net over log-mel.

Viseme set: the 15 visemes of Meta's OVR LipSync (also the MPEG-4-derived set many avatar
tools use), so the columns plug into existing blend-shape rigs:

    sil  silence / rest          PP  p b m (lips pressed)     FF  f v (lip on teeth)
    TH   θ ð (tongue on teeth)   DD  t d                      kk  k g ŋ h (back)
    CH   tʃ dʒ ʃ ʒ (postalveolar) SS  s z                      nn  n l
    RR   r ɹ ʁ                   aa  a ɑ æ ʌ (open)           E   e ɛ ə (mid)
    ih   i ɪ j (close front)     oh  o ɔ (rounded mid)        ou  u ʊ w y (rounded close)

The network (226k parameters) and its shipped weights (``weights/visemes.pt``, 0.9 MB) need
nothing but torch at run time. They were trained by ``scripts/train_viseme_model.py`` (32 min on
one CPU thread; class-weighted cross-entropy, spectral-tilt and frequency-mask augmentation) on
211 min of espeak-ng speech in 16 languages/accents with exact phone timings, made by
``scripts/make_viseme_data.py`` (pseudo-words and English sentences, 20 voice variants,
monotone slow "sung" speech, speed/gain/noise/reverb/EQ augmentation): frame accuracy 0.93
train, 0.85 on held-out espeak utterances; p/b/m recall 0.79. Real recordings are harder (the
synthetic-to-real gap): posteriors there are softer, and on the real evaluation videos' speech
the lips close on only 29 % of the p/b/m (``benchmarks/lipsync.py --asr-phones``). The
``sphinx`` encoder, a recogniser trained on real voices, does far better offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from talkingface.pipeline.contracts import VISEME_FEATURES, VISEMES, Audio, AudioFeatures
from talkingface.pipeline.errors import InputError
from talkingface.pipeline.stages import AudioEncoder
from talkingface.plugins.audio import mel

N_MELS = 40
CONTEXT_FRAMES = 28
"""Past analysis frames (10 ms each) the network sees."""
LOOKAHEAD_FRAMES = 6
"""Future analysis frames the network sees (60 ms: anticipation without much latency)."""
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "visemes.pt"


class VisemeNet(nn.Module):
    """Unpadded ("valid") 1-D conv net: log-mel ``[B, N_MELS, K + 34]`` → logits ``[B, 15, K]``.

    Output ``j`` looks at input frames ``j .. j + 34``; it labels input frame
    ``j + CONTEXT_FRAMES``, so it sees 28 frames of past and 6 of future. No padding anywhere,
    so a frame's output never depends on where the input window was cut.
    """

    receptive_field = CONTEXT_FRAMES + LOOKAHEAD_FRAMES + 1

    def __init__(self, channels: int = 128, n_mels: int = N_MELS, n_classes: int = len(VISEMES)):
        super().__init__()
        layers: list[nn.Module] = []
        # (kernel, dilation): receptive field 5 + 4 + 8 + 16 + 2 = 35 frames.
        plan = [(5, 1), (3, 2), (3, 4), (3, 8), (3, 1)]
        width = n_mels
        for kernel, dilation in plan:
            layers += [
                nn.Conv1d(width, channels, kernel, dilation=dilation),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
            ]
            width = channels
        layers.append(nn.Conv1d(channels, n_classes, 1))
        self.net = nn.Sequential(*layers)
        # Fixed input normalisation (per mel band), estimated on the training data.
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = (logmel - self.mean[:, None]) / self.std[:, None]
        return self.net(x)


@dataclass
class VisemeConfig:
    """Parameters of the ``visemes`` encoder.

    Attributes:
        weights: path of a checkpoint written by ``scripts/train_viseme_model.py``; empty =
            the weights shipped with talkingface.
        temperature: divides the logits before the softmax; >1 gives softer, more blended
            posteriors, <1 sharper ones.
    """

    weights: str = ""
    temperature: float = 1.0


class VisemeEncoder(AudioEncoder):
    """Viseme posteriors per video frame plus speech level: ``[T, 16]``, columns
    ``VISEME_FEATURES``. The 15 posteriors sum to 1 (the mean of the 10 ms posteriors centred
    in the video frame); ``level`` is loudness mapped to 0..1 exactly as the ``energy``
    encoder's column, so a motion generator can scale the mouth with it."""

    name = "visemes"
    feature_kind = "visemes"
    feature_names = VISEME_FEATURES
    sample_rate = mel.SAMPLE_RATE
    context_s = (CONTEXT_FRAMES * mel.HOP + mel.WIN // 2) / mel.SAMPLE_RATE
    lookahead_s = (LOOKAHEAD_FRAMES * mel.HOP + mel.WIN // 2) / mel.SAMPLE_RATE
    max_fps = mel.MAX_FPS
    Config = VisemeConfig

    def load(self) -> None:
        path = Path(self.config.weights) if self.config.weights else DEFAULT_WEIGHTS
        if not path.is_file():
            raise InputError(
                f"visemes: no weights at {path}; train them with scripts/train_viseme_model.py "
                "or set audio.params.weights to a checkpoint"
            )
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if tuple(checkpoint.get("visemes", ())) != VISEMES:
            raise InputError(
                f"visemes: {path} was trained for visemes {checkpoint.get('visemes')}, this "
                f"version uses {list(VISEMES)}; retrain with scripts/train_viseme_model.py"
            )
        window = (int(checkpoint.get("context_frames", 28)),
                  int(checkpoint.get("lookahead_frames", 6)))
        if window != (CONTEXT_FRAMES, LOOKAHEAD_FRAMES):
            raise InputError(
                f"visemes: {path} labels frame {window[0]} of its window ({window[1]} frames of "
                f"lookahead), this version expects {CONTEXT_FRAMES} ({LOOKAHEAD_FRAMES}); "
                "retrain with scripts/train_viseme_model.py"
            )
        model = VisemeNet(int(checkpoint["channels"]))
        model.load_state_dict(checkpoint["state_dict"])
        self.model = model.eval().to(self.device)
        self.filters = mel.mel_filterbank(N_MELS)
        self.loaded = True

    def encode(
        self, audio: Audio, fps: float, frames: tuple[int, int] | None = None
    ) -> AudioFeatures:
        samples = self.check_audio(audio, fps)
        self.ensure_loaded()
        first, stop = frames if frames is not None else self.frame_range(audio, fps)
        if stop <= first:
            return AudioFeatures(torch.zeros(0, len(VISEME_FEATURES)), fps, self.feature_kind,
                                 VISEME_FEATURES, first)
        k0, k1 = mel.analysis_range(first, stop, fps)
        frames_k = mel.frames_at(
            samples, audio.offset, k0 - CONTEXT_FRAMES, k1 + LOOKAHEAD_FRAMES
        )
        logmel = mel.log_mel(mel.power_spectrum(frames_k), self.filters)
        with torch.inference_mode():
            logits = self.model(logmel.T[None].to(self.device))[0].T.float().cpu()
        posteriors = torch.softmax(logits / self.config.temperature, dim=1)
        inner = frames_k[CONTEXT_FRAMES:CONTEXT_FRAMES + k1 - k0]
        level = mel.level(mel.loudness_db(inner))
        columns = torch.cat([posteriors, level[:, None]], dim=1)
        values = mel.pool_to_video(columns, k0, first, stop, fps)
        return AudioFeatures(values, fps, self.feature_kind, VISEME_FEATURES, first)
