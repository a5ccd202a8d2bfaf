"""Train the viseme model shipped as ``talkingface/plugins/audio/weights/visemes.pt``.

Input: the ``.npz`` written by ``scripts/make_viseme_data.py`` (log-mel frames + viseme labels
from espeak-ng speech). Trains :class:`~talkingface.plugins.audio.visemes.VisemeNet` on random
crops for a fixed time budget on the CPU and reports train/val frame accuracy::

    python scripts/make_viseme_data.py --out /tmp/v10.npz --minutes 150 --seed 10
    python scripts/make_viseme_data.py --out /tmp/v11.npz --minutes 150 --seed 11
    python scripts/train_viseme_model.py --data /tmp/v10.npz /tmp/v11.npz --minutes 32 --threads 1

(the recipe of the shipped weights: 211 min of speech, ~24k steps, val accuracy 0.85).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from talkingface.pipeline.contracts import VISEMES
from talkingface.plugins.audio import mel
from talkingface.plugins.audio.visemes import (
    CONTEXT_FRAMES,
    DEFAULT_WEIGHTS,
    LOOKAHEAD_FRAMES,
    N_MELS,
    VisemeNet,
)

RF = CONTEXT_FRAMES + LOOKAHEAD_FRAMES
"""Input frames beyond the labelled ones (the net's receptive field minus one)."""


def band_octaves() -> torch.Tensor:
    """Centre of each mel band in octaves above 1 kHz ``[N_MELS]``."""
    filters = mel.mel_filterbank(N_MELS)
    centre_hz = filters.argmax(0).double() * mel.SAMPLE_RATE / mel.N_FFT
    return torch.log2(centre_hz.clamp(min=50) / 1000).float()


def crops(logmel: torch.Tensor, labels: torch.Tensor, batch: int, length: int, gen,
          max_tilt: float = 0.0, freq_masks: int = 0, context: int = CONTEXT_FRAMES):
    """Random windows: inputs ``[B, N_MELS, length + RF]``, targets ``[B, length]``.

    ``freq_masks`` > 0 blanks that many random bands of up to 4 mel bins per window (set to
    the window's mean), so the net cannot lean on one narrow spectral detail of espeak-ng's
    voices (SpecAugment's frequency masking).

    ``max_tilt`` > 0 tilts each window's spectrum down above a random corner (0.4-3 kHz) by up
    to that many log10 units per octave: espeak-ng's formant voices are much brighter than
    recorded speech (measured: 10-30 dB less energy at 3-7 kHz in real clips), and a log-mel
    offset per band is the same as filtering the waveform.
    """
    starts = torch.randint(0, logmel.shape[0] - length - RF, (batch,), generator=gen)
    idx = starts[:, None] + torch.arange(length + RF)
    x = logmel[idx].transpose(1, 2)
    y = labels[idx[:, context:context + length]]
    if max_tilt > 0:
        corner = torch.log2(0.4 + 2.6 * torch.rand(batch, 1, generator=gen))
        slope = torch.rand(batch, 1, generator=gen) * (max_tilt + 0.2) - 0.2
        tilt = -slope * (BAND_OCTAVES[None] - corner).clamp(min=0)
        x = x + tilt[:, :, None]
    for _ in range(freq_masks):
        width = torch.randint(0, 5, (batch, 1), generator=gen)
        low = torch.randint(0, N_MELS - 4, (batch, 1), generator=gen)
        bands = torch.arange(N_MELS)[None]
        masked = (bands >= low) & (bands < low + width)
        x = torch.where(masked[:, :, None], x.mean(dim=(1, 2), keepdim=True), x)
    return x, y


BAND_OCTAVES = band_octaves()


@torch.no_grad()
def accuracy(model: VisemeNet, logmel: torch.Tensor, labels: torch.Tensor, max_frames: int,
             context: int = CONTEXT_FRAMES):
    """Frame accuracy over (a prefix of) one long stream, in pieces of 4000 frames."""
    model.eval()
    n = min(logmel.shape[0], max_frames)
    correct, total = 0, 0
    confusion = torch.zeros(len(VISEMES), len(VISEMES), dtype=torch.long)
    for start in range(0, n - RF - 1, 4000):
        stop = min(n, start + 4000 + RF)
        logits = model(logmel[start:stop].T[None])[0]
        target = labels[start + context:stop - (RF - context)]
        pred = logits.argmax(0)
        correct += int((pred == target).sum())
        total += target.numel()
        confusion += torch.bincount(target * len(VISEMES) + pred,
                                    minlength=len(VISEMES) ** 2).view(len(VISEMES), -1)
    model.train()
    return correct / max(1, total), confusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True,
                        help="one or more .npz files from make_viseme_data.py")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--minutes", type=float, default=20.0, help="training time budget")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=200, help="labelled frames per crop")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--max-tilt", type=float, default=1.0,
                        help="spectral tilt augmentation, log10 units per octave (0 = off)")
    parser.add_argument("--lookahead", type=int, default=LOOKAHEAD_FRAMES,
                        help=f"future 10 ms frames the net sees (of the {RF} beyond the "
                             "labelled one; the encoder's LOOKAHEAD_FRAMES must match to use it)")
    parser.add_argument("--freq-masks", type=int, default=2,
                        help="SpecAugment frequency masks per window (0 = off)")
    parser.add_argument("--class-power", type=float, default=0.5,
                        help="class weights = (1 / class share) ** this, normalised (0 = plain "
                             "cross-entropy); >0 counters the rare visemes (PP, TH) being "
                             "swallowed by silence and vowels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0 = torch's default; 1 is faster on a busy box)")
    args = parser.parse_args()
    if not 0 <= args.lookahead <= RF:
        parser.error(f"--lookahead must be within 0..{RF}")
    context = RF - args.lookahead
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    data = [np.load(path) for path in args.data]

    def joined(key: str, dtype) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([d[key] for d in data]).astype(dtype))

    train_x, train_y = joined("train_logmel", np.float32), joined("train_labels", np.int64)
    val_x, val_y = joined("val_logmel", np.float32), joined("val_labels", np.int64)
    print(f"train {train_x.shape[0] / 6000:.1f} min, val {val_x.shape[0] / 6000:.1f} min")

    model = VisemeNet(args.channels, N_MELS, len(VISEMES))
    model.mean.copy_(train_x.mean(0))
    model.std.copy_(train_x.std(0) + 1e-3)
    shares = torch.bincount(train_y, minlength=len(VISEMES)).double() / len(train_y)
    weights = (1.0 / shares.clamp(min=1e-4)) ** args.class_power
    weights = (weights / (weights * shares).sum()).float()  # mean weight per frame = 1
    print("class weights:", {v: round(float(w), 2) for v, w in zip(VISEMES, weights,
                                                                   strict=True)})
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60
    began = time.time()
    step, last_report = 0, began
    while (elapsed := time.time() - began) < budget:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = crops(train_x, train_y, args.batch, args.length, gen, args.max_tilt,
                     args.freq_masks, context)
        loss = F.cross_entropy(model(x), y, weight=weights, label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if time.time() - last_report > 60:
            last_report = time.time()
            val_acc, _ = accuracy(model, val_x, val_y, 20000, context)
            print(f"{elapsed / 60:5.1f} min  step {step}  loss {loss.item():.3f}  "
                  f"lr {lr:.2e}  val acc {val_acc:.3f}", flush=True)
    train_acc, _ = accuracy(model, train_x, train_y, 200000, context)
    val_acc, confusion = accuracy(model, val_x, val_y, val_x.shape[0], context)
    print(f"done: {step} steps, train acc {train_acc:.3f}, val acc {val_acc:.3f}")
    recall = confusion.diag() / confusion.sum(1).clamp(min=1)
    print("val recall:", {v: round(float(r), 2) for v, r in zip(VISEMES, recall, strict=True)})
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "visemes": list(VISEMES), "channels": args.channels,
                "context_frames": context, "lookahead_frames": args.lookahead,
                "train_acc": train_acc, "val_acc": val_acc}, args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
