"""Phonetic audio encoder backed by PocketSphinx 5: words recognised in the speech (or given as
a transcript), force-aligned to it phone by phone, as viseme columns.

PocketSphinx (``pip install "talkingface[sphinx]"``, i.e. ``pocketsphinx==5.1.1``) ships a
US-English acoustic model, language model and CMU dictionary inside its wheel: nothing is
downloaded. It is a recogniser trained on real recordings, so on real voices its phone timings
are far closer to the truth than the shipped ``visemes`` network's, which learned from
synthetic speech. On the three real evaluation videos, the real lips are closed on 96 % of the
p/b/m it finds.

The price is latency: a phone is only known once its utterance is decoded. The audio is cut
into utterances at pauses (``pause_s`` of quiet after at least ``min_segment_s``, at the latest
after ``max_segment_s``), decided from the audio as it arrives, so a stream and a batch run cut
at the same places and give the same features; a streamed frame waits for the end of its
utterance (``lookahead_s`` declares the worst case). With ``text`` the whole clip is one
utterance aligned to that transcript. Use ``visemes`` where start latency matters.

Other languages and singing are recognised as the English words that sound closest: the
phones still fall on the syllables, so the mouth moves with the voice, but shapes are
approximate. Decoding is slower than the ``visemes`` network (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from talkingface.pipeline.contracts import (
    VISEME_FEATURES,
    VISEMES,
    Audio,
    AudioFeatures,
    num_frames_for,
)
from talkingface.pipeline.errors import ConfigError, ContractError, InputError
from talkingface.pipeline.stages import AudioEncoder, StreamProcessor
from talkingface.plugins.audio import mel

ARPABET_VISEMES: dict[str, str] = {
    "P": "PP", "B": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    "K": "kk", "G": "kk", "NG": "kk", "HH": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "L": "nn",
    "R": "RR", "ER": "RR",
    "AA": "aa", "AE": "aa", "AH": "aa", "AY": "aa", "AW": "aa",
    "EH": "E", "EY": "E",
    "IH": "ih", "IY": "ih", "Y": "ih",
    "AO": "oh", "OW": "oh", "OY": "oh",
    "UH": "ou", "UW": "ou", "W": "ou",
}
"""The CMU dictionary's 39 phones (ARPAbet) as visemes; anything else (SIL, noise) is ``sil``."""

TRANSCRIPT_LOOKAHEAD_S = 3600.0
"""Declared lookahead with a transcript: the clip is one utterance, a stream waits for its end."""
FRAME_S = 0.01
"""PocketSphinx's frame: 10 ms, the same grid as ``mel``'s analysis frames."""


@dataclass
class SphinxConfig:
    """Parameters of the ``sphinx`` encoder.

    Attributes:
        text: the transcript (English words). Given, the whole clip is one utterance whose phones
            are aligned to these words instead of to recognised ones: exact shapes where the
            words are known. Empty: recognise the words.
        pause_s: quiet this long ends an utterance (once it is ``min_segment_s`` long).
        min_segment_s: shortest utterance cut at a pause (longer ones decode better).
        max_segment_s: an utterance is cut here even without a pause (bounds latency/memory).
        quiet_level: speech level (0..1, as the ``energy`` encoder's ``level``) under which a
            10 ms frame counts as quiet for the pause detector.
    """

    text: str = ""
    pause_s: float = 0.3
    min_segment_s: float = 2.0
    max_segment_s: float = 15.0
    quiet_level: float = 0.25


class SphinxEncoder(AudioEncoder):
    """PocketSphinx phones (recognised, or aligned to ``text``) as viseme columns plus speech
    level per video frame, ``[T, 16]`` (``VISEME_FEATURES``, the ``visemes`` encoder's layout,
    so every generator that takes visemes takes these): each column is the fraction of the
    frame's 10 ms steps spent in a phone of that viseme."""

    name = "sphinx"
    feature_kind = "visemes"
    feature_names = VISEME_FEATURES
    sample_rate = mel.SAMPLE_RATE
    context_s = 0.0
    lookahead_s = SphinxConfig.max_segment_s + mel.WIN / mel.SAMPLE_RATE
    max_fps = mel.MAX_FPS
    Config = SphinxConfig
    inputs = {"text": "the transcript (English words): phones are aligned to it, not recognised"}

    def __init__(self, config=None, *, device="cpu") -> None:
        super().__init__(config, device=device)
        c = self.config
        for field in ("pause_s", "min_segment_s", "max_segment_s"):
            if not getattr(c, field) > 0:
                raise ConfigError(f"sphinx: {field} must be > 0, got {getattr(c, field)!r}")
        if c.max_segment_s < c.min_segment_s + c.pause_s:
            raise ConfigError(
                f"sphinx: max_segment_s ({c.max_segment_s}) must be at least min_segment_s + "
                f"pause_s ({c.min_segment_s + c.pause_s})"
            )
        if not 0 <= c.quiet_level < 1:
            raise ConfigError(f"sphinx: quiet_level must be in [0, 1), got {c.quiet_level!r}")
        # The most audio a streamed frame may wait for: its utterance (with a transcript, the
        # whole clip, declared as an hour).
        span = TRANSCRIPT_LOOKAHEAD_S if c.text.strip() else c.max_segment_s
        self.lookahead_s = span + mel.WIN / self.sample_rate

    def load(self) -> None:
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError:
            raise ConfigError(
                "audio=sphinx needs PocketSphinx: pip install 'talkingface[sphinx]' "
                "(pocketsphinx==5.1.1); or use audio=visemes"
            ) from None
        model = get_model_path()
        self.dictionary = os.path.join(model, "en-us", "cmudict-en-us.dict")
        common = dict(hmm=os.path.join(model, "en-us", "en-us"), dict=self.dictionary,
                      cmn="batch", loglevel="FATAL")
        self.recogniser = Decoder(lm=os.path.join(model, "en-us", "en-us.lm.bin"), **common)
        # Wide beams align the utterances the default ones give up on.
        self.wide = Decoder(beam=1e-100, wbeam=1e-80, pbeam=1e-100, fwdflat=False,
                            bestpath=False, **common)
        if self.config.text.strip():
            self._check_words(self.config.text)
        self.loaded = True

    def _check_words(self, text: str) -> None:
        known = set()
        with open(self.dictionary, encoding="utf-8") as f:
            for line in f:
                known.add(line.split(" ", 1)[0])
        unknown = [w for w in _words(text) if w not in known]
        if unknown:
            raise InputError(
                f"sphinx: the transcript has words the English dictionary lacks: {unknown[:8]}; "
                "spell numbers and abbreviations as spoken, or leave audio.params.text empty"
            )

    # -- decoding -----------------------------------------------------------------------------

    def phones(self, samples: torch.Tensor) -> list[tuple[str, int, int]]:
        """``(ARPAbet phone, first 10 ms frame, frame count)`` of one utterance ``[S]``."""
        self.ensure_loaded()
        pcm = (samples.float().clamp(-1, 1) * 32767).round().to(torch.int16).numpy().tobytes()
        text = " ".join(_words(self.config.text))
        attempts = [(self.recogniser, text), (self.wide, text)]
        if not text:
            _decode(self.recogniser, pcm)
            hyp = self.recogniser.hyp()
            text = hyp.hypstr.strip() if hyp is not None else ""
            if not text:
                return []
            # align the hypothesis just found, else align its words afresh with wide beams
            attempts = [(self.recogniser, None), (self.wide, text)]
        for decoder, words in attempts:
            phones = _aligned(decoder, pcm, words)
            if phones is not None:
                return phones
        if self.config.text.strip():
            raise InputError(
                "sphinx: the transcript could not be aligned to the audio; check that it is "
                "what is said, or leave audio.params.text empty to recognise the words"
            )
        return []

    def encode(
        self, audio: Audio, fps: float, frames: tuple[int, int] | None = None
    ) -> AudioFeatures:
        """Features of ``frames``; ``audio`` is taken to start an utterance (in a pipeline, the
        stream's start). Runs the same utterance cutter and decoder as :meth:`stream`."""
        samples = self.check_audio(audio, fps)
        first, stop = frames if frames is not None else self.frame_range(audio, fps)
        if stop <= first:
            return _empty(fps, first)
        proc = self.stream(fps, start=audio.offset)
        parts = [proc.push(Audio(samples, audio.sample_rate, audio.offset)), proc.flush()]
        feats = AudioFeatures.concat([p for p in parts if p is not None and p.num_frames])
        return feats.slice(first - feats.start_frame, stop - feats.start_frame)

    def stream(self, fps: float, start: int = 0) -> SphinxStream:
        """A streaming run whose audio starts at stream sample ``start``."""
        self.ensure_loaded()
        return SphinxStream(self, fps, start)


class SphinxStream(StreamProcessor[Audio, AudioFeatures]):
    """Cuts the incoming audio into utterances at pauses, decodes each as soon as it ends and
    emits the video frames whose 10 ms steps are all decoded.

    Steps are ``mel``'s analysis frames on the stream's absolute grid (step ``k`` is centred
    on sample ``k * HOP``); the utterance cuts fall on step boundaries.
    """

    def __init__(self, encoder: SphinxEncoder, fps: float, start: int = 0) -> None:
        self.enc, self.fps = encoder, fps
        c = encoder.config
        self.whole = bool(c.text.strip())
        self.pause = max(1, round(c.pause_s / FRAME_S))
        self.min_len = max(1, round(c.min_segment_s / FRAME_S))
        self.max_len = max(self.min_len + self.pause, round(c.max_segment_s / FRAME_S))
        self.quiet_db = mel.LEVEL_FLOOR_DB + c.quiet_level * mel.LEVEL_RANGE_DB
        self.buffer = torch.zeros(0)  # stream samples [buffer_at, received)
        self.buffer_at = self.received = start
        self.seg_start = -(-start // mel.HOP)  # first step of the open utterance
        self.scanned = self.seg_start  # steps the pause detector has seen
        self.quiet_run = 0
        self.rows: list[np.ndarray] = []  # decoded [K, 16] rows from step rows_at on
        self.rows_at = self.seg_start
        self.next_frame = math.ceil(start * fps / mel.SAMPLE_RATE - 1e-9)

    def push(self, chunk: Audio) -> AudioFeatures | None:
        if chunk.sample_rate != mel.SAMPLE_RATE:
            raise ContractError(f"sphinx: stream chunk at {chunk.sample_rate} Hz, expected "
                                f"{mel.SAMPLE_RATE} Hz")
        if chunk.offset != self.received:
            raise ContractError(f"sphinx: chunk offset {chunk.offset}, expected {self.received}")
        x = chunk.samples.reshape(-1).float()
        self.buffer = torch.cat([self.buffer, x])
        self.received += x.shape[0]
        if not self.whole:
            self._scan()
        return self._emit(num_frames_for(self.received, mel.SAMPLE_RATE, self.fps))

    def flush(self) -> AudioFeatures | None:
        end = -(-self.received // mel.HOP)  # every step centred inside the audio
        if end > self.seg_start:
            self._decode(end)
        return self._emit(num_frames_for(self.received, mel.SAMPLE_RATE, self.fps), final=True)

    def _scan(self) -> None:
        """Run the pause detector over the steps whose whole window has arrived."""
        ready = (self.received - mel.WIN // 2) // mel.HOP + 1  # steps ..ready-1 are complete
        if ready <= self.scanned:
            return
        steps = mel.frames_at(self.buffer, self.buffer_at, self.scanned, ready)
        quiet = (mel.loudness_db(steps) < self.quiet_db).tolist()
        for k, q in enumerate(quiet, start=self.scanned):
            self.quiet_run = self.quiet_run + 1 if q else 0
            length = k + 1 - self.seg_start
            if length >= self.max_len:
                self._decode(k + 1)
            elif length >= self.min_len + self.pause and self.quiet_run >= self.pause:
                self._decode(k + 1 - self.pause // 2)  # cut in the middle of the pause
        self.scanned = ready

    def _decode(self, end: int) -> None:
        """Decode steps ``seg_start .. end - 1`` as one utterance and keep their rows."""
        a, b = self.seg_start, end
        lo = max(0, a * mel.HOP - self.buffer_at)
        hi = max(lo, min(self.buffer.shape[0], b * mel.HOP - self.buffer_at))
        onehot = np.zeros((b - a, len(VISEMES)))
        onehot[:, 0] = 1.0
        loudness = mel.loudness_db(mel.frames_at(self.buffer, self.buffer_at, a, b))
        # An utterance that is quiet throughout is a pause: the recogniser would still find
        # words in it (it always answers with something), so it is not asked.
        heard = bool(len(loudness)) and float(loudness.max()) >= self.quiet_db
        for phone, start, count in self.enc.phones(self.buffer[lo:hi]) if heard else ():
            lo_k, hi_k = max(0, start), min(b - a, start + count)
            onehot[lo_k:hi_k] = 0.0
            onehot[lo_k:hi_k, VISEMES.index(ARPABET_VISEMES.get(phone, "sil"))] = 1.0
        level = mel.level(loudness).numpy()
        self.rows.append(np.concatenate([onehot, level[:, None]], axis=1))
        self.seg_start = b
        self.quiet_run = 0
        # Keep the samples the next utterance's steps need (their windows reach WIN/2 back).
        drop = b * mel.HOP - mel.WIN // 2 - self.buffer_at
        if drop > 0:
            self.buffer = self.buffer[drop:]
            self.buffer_at += drop

    def _emit(self, stop: int, final: bool = False) -> AudioFeatures | None:
        """Frames ``next_frame ..`` up to ``stop`` whose steps are all decoded (at the end,
        steps past the audio read as silence)."""
        if not final:  # the last frame whose steps end by the first undecoded one
            decoded = self.seg_start
            stop = min(stop, math.floor(decoded * mel.HOP * self.fps / mel.SAMPLE_RATE) + 1)
            while stop > self.next_frame and mel.analysis_range(0, stop, self.fps)[1] > decoded:
                stop -= 1
        if stop <= self.next_frame:
            return None
        k0, k1 = mel.analysis_range(self.next_frame, stop, self.fps)
        rows = np.concatenate(self.rows) if self.rows else np.zeros((0, len(VISEME_FEATURES)))
        if k1 - self.rows_at > len(rows):  # only when final
            pad = np.zeros((k1 - self.rows_at - len(rows), len(VISEME_FEATURES)))
            pad[:, 0] = 1.0
            rows = np.concatenate([rows, pad])
        local = torch.from_numpy(rows[k0 - self.rows_at:k1 - self.rows_at])
        values = mel.pool_to_video(local, k0, self.next_frame, stop, self.fps)
        out = AudioFeatures(values, self.fps, "visemes", VISEME_FEATURES, self.next_frame)
        rest = rows[k1 - self.rows_at:]
        self.rows = [rest] if len(rest) else []
        self.rows_at, self.next_frame = k1, stop
        return out


def _empty(fps: float, first: int) -> AudioFeatures:
    return AudioFeatures(torch.zeros(0, len(VISEME_FEATURES)), fps, "visemes", VISEME_FEATURES,
                         first)


def _words(text: str) -> list[str]:
    cleaned = "".join(c if c.isalnum() or c in "'-" else " " for c in text.lower())
    return cleaned.split()


def _decode(decoder, pcm: bytes) -> None:
    # Fresh feature state per utterance: otherwise PocketSphinx's cepstral normalisation
    # carries over from the previous one and the same audio decodes differently depending on
    # what came before (runs would not repeat, streams would not equal batch runs).
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()


def _aligned(decoder, pcm: bytes, text: str | None) -> list[tuple[str, int, int]] | None:
    """Phones of ``text`` (None: the decoder's current hypothesis) force-aligned to ``pcm``;
    None where the decoder cannot align them."""
    try:
        if text is not None:
            decoder.set_align_text(text)
            _decode(decoder, pcm)
        decoder.set_alignment()
        _decode(decoder, pcm)
        return _phones_of(decoder.get_alignment())
    except RuntimeError:
        return None
    finally:
        decoder.activate_search()


def _phones_of(alignment) -> list[tuple[str, int, int]]:
    return [(ph.name, int(ph.start), int(ph.duration)) for word in alignment for ph in word]
