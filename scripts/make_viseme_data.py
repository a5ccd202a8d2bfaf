"""Make training data for the viseme model: espeak-ng speech with exact phone timings.

Dev-time only (needs the Debian package ``espeak-ng``). Synthesises pseudo-words in many
languages and real English sentences with many voices, rates and pitch ranges (monotone slow
speech stands in for singing), augments each utterance (speed, gain, noise, reverb, EQ) and
writes the log-mel frames and per-frame viseme labels to one ``.npz``::

    python scripts/make_viseme_data.py --out /tmp/visemes.npz --minutes 90

Phone timings come from the libespeak-ng C API (through ctypes): with phoneme events enabled,
each ``espeakEVENT_PHONEME`` carries the phone in IPA and its position in the audio.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import random
import re
import unicodedata
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from scipy import signal

from talkingface.pipeline.contracts import VISEMES
from talkingface.plugins.audio import mel
from talkingface.plugins.audio.visemes import N_MELS

ESPEAK_RATE = 22050

# IPA → viseme. Affricates first (they start with a stop letter); then the first letter decides.
_AFFRICATES = {"tʃ": "CH", "dʒ": "CH", "tɕ": "CH", "dʑ": "CH", "ʈʂ": "CH", "ts": "SS", "dz": "SS"}
_LETTERS = {
    **dict.fromkeys("pbmɓ", "PP"),
    **dict.fromkeys("fvʋɱɸβ", "FF"),
    **dict.fromkeys("θð", "TH"),
    **dict.fromkeys("tdɾʈɖ", "DD"),
    **dict.fromkeys("kgɡŋxɣqɢχhɦʔɰ", "kk"),
    **dict.fromkeys("ʃʒɕʑʂʐçcɟ", "CH"),
    **dict.fromkeys("sz", "SS"),
    **dict.fromkeys("nlɲɳɫʎɭɬ", "nn"),
    **dict.fromkeys("rɹʁʀɻɽ", "RR"),
    **dict.fromkeys("aɑɐæʌä", "aa"),
    **dict.fromkeys("eɛəɜɘ", "E"),
    **dict.fromkeys("iɪɨj", "ih"),
    **dict.fromkeys("oɔɒɵœø", "oh"),
    **dict.fromkeys("uʊwɯyʏʉɥ", "ou"),
}


def ipa_visemes(phone: str) -> list[str]:
    """Visemes of one espeak IPA phone (two for diphthongs), [] when it has none (stress, ʲ)."""
    phone = "".join(c for c in unicodedata.normalize("NFD", phone) if not unicodedata.combining(c))
    phone = re.sub(r"[ːˑˈˌʲʰʷ'\-_.()]", "", phone)
    for affricate, vis in _AFFRICATES.items():
        if phone.startswith(affricate):
            return [vis]
    out = [_LETTERS[c] for c in phone if c in _LETTERS]
    if not out:
        return []
    if len(out) > 1 and all(v in ("aa", "E", "ih", "oh", "ou") for v in out):
        return [out[0], out[-1]]
    return [out[0]]


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int), ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _Id),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)
_EVENT_PHONEME, _SYNCHRONOUS, _PHONEME_EVENTS_IPA = 7, 2, 0x0003
_RATE, _PITCH, _RANGE = 1, 3, 4


class Espeak:
    """Minimal synchronous libespeak-ng binding: text → (int16 audio, [(sample, ipa)])."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS_IPA)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak-ng runs at {rate} Hz, expected {ESPEAK_RATE}")
        self._audio: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n, events) -> int:
        if wav and n > 0:
            self._audio.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                ipa = bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((e.sample, ipa))
            i += 1
        return 0

    def say(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int):
        self._audio, self._events = [], []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, value, 0)
        data = text.encode("utf-8")
        self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.int16)
        return audio.astype(np.float32) / 32768.0, list(self._events)


# Spelling inventories for pseudo-words: the language's own rules turn them into real phones.
_SYLLABLES = {
    "en-us": ("b ch d f g h j k l m n p r s sh t th v w y z bl pr st", "a e i o u ee oo ay ow"),
    "en": ("b ch d f g h j k l m n p r s sh t th v w z br cl sp", "a e i o u ea oa ai ou ir"),
    "de": ("b d f g h k l m n p r s sch t w z pf ch st", "a e i o u ä ö ü ei au eu ie"),
    "fr": ("b ch d f g j l m n p r s t v z gn", "a e i o u ou eau on an in é è oi"),
    "es": ("b c d f g j l ll m n ñ p r rr s t v z ch", "a e i o u ue ie ai"),
    "it": ("b c d f g gl l m n p r s t v z ch gh sc", "a e i o u io ia uo"),
    "pt": ("b c d f g j l lh m n nh p r s t v x z", "a e i o u ão ei ou ã õ"),
    "nl": ("b d f g h j k l m n p r s t v w z sch", "a e i o u aa ee oo uu ij ui oe eu"),
    "pl": ("b c cz d f g h j k l ł m n p r rz s sz t w z ż", "a e i o u y ą ę ó"),
    "sv": ("b d f g h j k l m n p r s sj t v", "a e i o u y å ä ö"),
    "tr": ("b c ç d f g h k l m n p r s ş t v y z", "a e ı i o ö u ü"),
    "id": ("b c d g h j k l m n ng p r s t w y", "a e i o u ai au"),
    "sw": ("b ch d f g h j k l m n ng p r s t v w y z", "a e i o u"),
    "fi": ("h j k l m n p r s t v", "a e i o u y ä ö aa ii uu"),
    "ru": ("б в г д ж з к л м н п р с т ф х ц ч ш щ", "а е и о у ы э ю я"),
    "ja": ("", "か き く け こ さ し す せ そ た ち つ て と な に ぬ ね の は ひ ふ へ ほ "
           "ま み む め も や ゆ よ ら り る れ ろ わ ん が ぎ ぐ げ ご ざ じ ず ぜ ぞ "
           "だ で ど ば び ぶ べ ぼ ぱ ぴ ぷ ぺ ぽ あ い う え お"),
}
_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4",
             "+f5", "+klatt", "+klatt2", "+klatt3", "+croak", "+whisper", "+grandma", "+max"]
_LICENSE_DIR = Path("/usr/share/common-licenses")


def english_sentences() -> list[str]:
    text = " ".join(p.read_text(errors="ignore") for p in sorted(_LICENSE_DIR.glob("*"))
                    if p.is_file())
    text = re.sub(r"[^A-Za-z,.;' ]+", " ", text)
    sentences = [s.strip() for s in re.split(r"[.;]", text)]
    return [s for s in sentences if 4 <= len(s.split()) <= 25]


def pseudo_text(rng: random.Random, lang: str) -> str:
    onsets, vowels = (s.split() for s in _SYLLABLES[lang])
    words = []
    for _ in range(rng.randint(3, 12)):
        word = ""
        for _ in range(rng.randint(1, 3)):
            onset = rng.choice(onsets) if onsets and rng.random() < 0.85 else ""
            word += onset + rng.choice(vowels)
        if onsets and rng.random() < 0.3:
            word += rng.choice(onsets)
        words.append(word)
    text = " ".join(words)
    return text + rng.choice([".", ",", "?", "!", "."])


def frame_labels(events: list[tuple[int, str]], n_frames: int, scale: float,
                 level_db: np.ndarray) -> np.ndarray:
    """Viseme index per 10 ms frame from phone onsets (``scale``: espeak sample → output sample).

    Events without a viseme (pauses, stress marks) continue the previous phone while there is
    sound and become silence when the frame is quiet.
    """
    centres = np.arange(n_frames) * mel.HOP
    labels = np.zeros(n_frames, np.int64)  # sil before the first phone
    sil = VISEMES.index("sil")
    spans = []
    for i, (sample, ipa) in enumerate(events):
        start = sample * scale
        end = events[i + 1][0] * scale if i + 1 < len(events) else n_frames * mel.HOP
        spans.append((start, end, ipa_visemes(ipa)))
    current = ["sil"]
    for start, end, vis in spans:
        inside = (centres >= start) & (centres < end)
        if not vis:
            quiet = inside & (level_db < -50)
            labels[inside] = VISEMES.index(current[-1])
            labels[quiet] = sil
            continue
        if len(vis) == 2:
            mid = (start + end) / 2
            labels[inside & (centres < mid)] = VISEMES.index(vis[0])
            labels[inside & (centres >= mid)] = VISEMES.index(vis[1])
        else:
            labels[inside] = VISEMES.index(vis[0])
        current = vis
    return labels


def augment(rng: np.random.Generator, audio: np.ndarray) -> np.ndarray:
    """Gain, EQ, reverb and noise, each with some probability (the clean case stays common)."""
    if rng.random() < 0.3:
        b, a = (signal.butter(2, rng.uniform(2500, 7000), "low", fs=mel.SAMPLE_RATE)
                if rng.random() < 0.5 else
                signal.butter(2, rng.uniform(80, 400), "high", fs=mel.SAMPLE_RATE))
        audio = signal.lfilter(b, a, audio)
    if rng.random() < 0.3:
        rt60 = rng.uniform(0.15, 0.7)
        n = int(rt60 * mel.SAMPLE_RATE)
        ir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)
        ir[0] = 1.0 / rng.uniform(0.05, 0.3)
        audio = signal.fftconvolve(audio, ir / np.abs(ir).sum() * 4)[: len(audio)]
    peak = np.abs(audio).max() + 1e-9
    audio = audio / peak * 10 ** (rng.uniform(-36, -1) / 20)
    if rng.random() < 0.6:
        noise = rng.standard_normal(len(audio))
        if rng.random() < 0.5:  # pink-ish: more low-frequency energy, like room noise
            noise = signal.lfilter([1.0], [1.0, -0.95], noise)
        speech_power = np.mean(audio**2) + 1e-12
        snr = rng.uniform(5, 40)
        noise *= math.sqrt(speech_power / 10 ** (snr / 10) / (np.mean(noise**2) + 1e-12))
        audio = audio + noise
    return np.clip(audio, -1, 1).astype(np.float32)


_FILTERS = mel.mel_filterbank(N_MELS)


def log_mel(audio: np.ndarray) -> np.ndarray:
    samples = torch.from_numpy(audio)
    k1 = -(-len(audio) // mel.HOP)
    frames = mel.frames_at(samples, 0, 0, k1)
    return mel.log_mel(mel.power_spectrum(frames), _FILTERS).numpy()


def to_16k(audio: np.ndarray, speed: float = 1.0) -> tuple[np.ndarray, float]:
    """Espeak-ng's 22050 Hz audio at 16 kHz, ``speed`` times faster and higher (resampling to
    a slightly different ratio changes tempo and pitch together), and the factor that maps an
    espeak sample index to a 16 kHz one."""
    up, down = 1600, int(round(ESPEAK_RATE // 10 * speed))  # 22050 -> 16000 Hz is 1600/2205
    return signal.resample_poly(audio, up, down).astype(np.float32), up / down


def make_utterance(job: tuple[int, int]):
    seed, split = job
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    global _ESPEAK, _ENGLISH
    if "_ESPEAK" not in globals():
        _ESPEAK, _ENGLISH = Espeak(), english_sentences()
    lang = rng.choice(list(_SYLLABLES) + ["en-us", "en-us", "en"])
    real = lang.startswith("en") and rng.random() < 0.6
    text = rng.choice(_ENGLISH) if real else pseudo_text(rng, lang)
    sung = rng.random() < 0.15
    rate = rng.randint(70, 120) if sung else rng.randint(120, 260)
    pitch_range = rng.randint(0, 10) if sung else rng.randint(20, 90)
    voice = lang + rng.choice(_VARIANTS)
    audio, events = _ESPEAK.say(text, voice, rate, rng.randint(15, 85), pitch_range)
    if len(audio) < ESPEAK_RATE // 4 or not events:
        return None
    audio, scale = to_16k(audio, nrng.uniform(0.88, 1.12))
    lead = int(nrng.uniform(0, 0.4) * mel.SAMPLE_RATE)  # silence before and after, as in clips
    audio = np.concatenate([np.zeros(lead, np.float32), audio,
                            np.zeros(int(nrng.uniform(0.05, 0.4) * mel.SAMPLE_RATE), np.float32)])
    events = [(s + lead / scale, ipa) for s, ipa in events]
    clean = log_mel(audio / (np.abs(audio).max() + 1e-9))
    level_db = 10 * clean.max(axis=1)  # per-frame loudest band, dB below the clip's peak level
    labels = frame_labels(events, clean.shape[0], scale, level_db - level_db.max())
    feats = log_mel(augment(nrng, audio))
    return feats.astype(np.float16), labels.astype(np.int8), split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=90.0, help="audio to make (approx.)")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_utts = int(args.minutes * 60 / 5.0)  # espeak utterances here average ~5 s
    jobs = [(args.seed * 1_000_003 + i, int(i % round(1 / args.val_fraction) == 0))
            for i in range(n_utts)]
    feats = {0: [], 1: []}
    labels = {0: [], 1: []}
    with Pool(args.workers) as pool:
        for result in pool.imap_unordered(make_utterance, jobs, chunksize=16):
            if result is None:
                continue
            f, lab, split = result
            feats[split].append(f)
            labels[split].append(lab)
    out = {}
    for split, name in ((0, "train"), (1, "val")):
        out[f"{name}_logmel"] = np.concatenate(feats[split])
        out[f"{name}_labels"] = np.concatenate(labels[split])
        out[f"{name}_lengths"] = np.array([len(x) for x in labels[split]])
    np.savez(args.out, **out)
    total = len(out["train_labels"])
    counts = np.bincount(out["train_labels"], minlength=len(VISEMES)) / max(1, total)
    print(f"train frames {total} ({total / 6000:.1f} min), val {len(out['val_labels'])}")
    print("class shares:", {v: round(float(c), 3) for v, c in zip(VISEMES, counts, strict=True)})


if __name__ == "__main__":
    main()
