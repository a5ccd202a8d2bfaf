"""Train the viseme model shipped as ``talkingface/plugins/audio/weights/visemes.pt``.

Input: the ``.npz`` written by ``scripts/make_viseme_data.py`` (log-mel frames + viseme labels
from espeak-ng speech). Trains :class:`~talkingface.plugins.audio.visemes.VisemeNet` on random
crops for a fixed time budget on the CPU and reports train/val frame accuracy::

    python scripts/make_viseme_data.py --out /tmp/visemes.npz --minutes 100
    python scripts/train_viseme_model.py --data /tmp/visemes.npz --minutes 25 --threads 1
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from talkingface.plugins.audio import mel
from talkingface.plugins.audio.visemes import (
    CONTEXT_FRAMES,
    DEFAULT_WEIGHTS,
    LOOKAHEAD_FRAMES,
    N_MELS,
    VISEMES,
    VisemeNet,
)

RF = CONTEXT_FRAMES + LOOKAHEAD_FRAMES


def band_octaves() -> torch.Tensor:
    """Centre of each mel band in octaves above 1 kHz ``[N_MELS]``."""
    filters = mel.mel_filterbank(N_MELS)
    centre_hz = filters.argmax(0).double() * mel.SAMPLE_RATE / mel.N_FFT
    return torch.log2(centre_hz.clamp(min=50) / 1000).float()


def crops(logmel: torch.Tensor, labels: torch.Tensor, batch: int, length: int, gen,
          max_tilt: float = 0.0):
    """Random windows: inputs ``[B, N_MELS, length + RF]``, targets ``[B, length]``.

    ``max_tilt`` > 0 tilts each window's spectrum down above a random corner (0.4-3 kHz) by up
    to that many log10 units per octave: espeak-ng's formant voices are much brighter than
    recorded speech (measured: 10-30 dB less energy at 3-7 kHz in real clips), and a log-mel
    offset per band is the same as filtering the waveform.
    """
    starts = torch.randint(0, logmel.shape[0] - length - RF, (batch,), generator=gen)
    idx = starts[:, None] + torch.arange(length + RF)
    x = logmel[idx].transpose(1, 2)
    y = labels[idx[:, CONTEXT_FRAMES:CONTEXT_FRAMES + length]]
    if max_tilt > 0:
        corner = torch.log2(0.4 + 2.6 * torch.rand(batch, 1, generator=gen))
        slope = torch.rand(batch, 1, generator=gen) * (max_tilt + 0.2) - 0.2
        tilt = -slope * (BAND_OCTAVES[None] - corner).clamp(min=0)
        x = x + tilt[:, :, None]
    return x, y


BAND_OCTAVES = band_octaves()


@torch.no_grad()
def accuracy(model: VisemeNet, logmel: torch.Tensor, labels: torch.Tensor, max_frames: int):
    """Frame accuracy over (a prefix of) one long stream, in pieces of 4000 frames."""
    model.eval()
    n = min(logmel.shape[0], max_frames)
    correct, total = 0, 0
    confusion = torch.zeros(len(VISEMES), len(VISEMES), dtype=torch.long)
    for start in range(0, n - RF - 1, 4000):
        stop = min(n, start + 4000 + RF)
        logits = model(logmel[start:stop].T[None])[0]
        target = labels[start + CONTEXT_FRAMES:stop - LOOKAHEAD_FRAMES]
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0 = torch's default; 1 is faster on a busy box)")
    args = parser.parse_args()
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
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    budget = args.minutes * 60
    began = time.time()
    step, last_report = 0, began
    while (elapsed := time.time() - began) < budget:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = crops(train_x, train_y, args.batch, args.length, gen, args.max_tilt)
        loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if time.time() - last_report > 60:
            last_report = time.time()
            val_acc, _ = accuracy(model, val_x, val_y, 20000)
            print(f"{elapsed / 60:5.1f} min  step {step}  loss {loss.item():.3f}  "
                  f"lr {lr:.2e}  val acc {val_acc:.3f}", flush=True)
    train_acc, _ = accuracy(model, train_x, train_y, 200000)
    val_acc, confusion = accuracy(model, val_x, val_y, val_x.shape[0])
    print(f"done: {step} steps, train acc {train_acc:.3f}, val acc {val_acc:.3f}")
    recall = confusion.diag() / confusion.sum(1).clamp(min=1)
    print("val recall:", {v: round(float(r), 2) for v, r in zip(VISEMES, recall, strict=True)})
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "visemes": list(VISEMES), "channels": args.channels,
                "train_acc": train_acc, "val_acc": val_acc}, args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
