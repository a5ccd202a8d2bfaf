"""Writes a comparison out: ``results.csv`` (long format), ``results.json``, a self-contained
``report.html`` with plots and key frames, and the terminal table.

``results.csv`` has one row per variant × input × metric, columns
``variant,input,family,metric,value,unit,better,status,note`` (``better`` says which way is
better: ``higher``, ``lower``, ``closer to 0`` or ``closer to real`` — the value of the
``real video`` rows). Every run also gets a ``run,status`` row whose ``status`` is ``ok`` or
``error`` and whose ``note`` is the one-line error. Long format keeps the file valid when
variants report different metrics (a failed run, a stage the profiler names differently).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from talkingface.compare.runner import KEY_MOMENTS, REAL, Comparison

HEADLINE: tuple[tuple[str, str], ...] = (
    ("mouth_corr", "mouth r"),
    ("mouth_lag", "lag fr"),
    ("av_offset_ms", "AV ms"),
    ("bilabial_closure", "bilab"),
    ("delta_p", "ΔP °/fr"),
    ("jitter_pose", "jit °"),
    ("blink_rate", "blink/min"),
    ("silent_lip_std", "sil lip%"),
    ("bg_psnr", "bg dB"),
    ("face_rest_psnr", "face dB"),
    ("fps", "fps"),
    ("real_time_factor", "RTF"),
)
"""(metric, short label) of the columns of the terminal table and the bar charts."""

REENACT: tuple[tuple[str, str], ...] = (
    ("psnr", "PSNR dB"),
    ("ssim", "SSIM"),
    ("lpips", "LPIPS"),
    ("lmk_all", "lmk all"),
    ("lmk_mouth", "lmk mouth"),
    ("lmk_eyes", "lmk eyes"),
    ("mouth_corr", "mouth r"),
)
"""(metric, label) of the self-reenactment table: generated vs real frames of the same video
(landmark errors in inter-ocular distances), audio- and video-driven variants together."""


def _fmt(v: float, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "inf"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}g}" if a < 0.01 and v != 0 else f"{v:.{digits - 1}f}"


def run_rows(comp: Comparison) -> list[dict]:
    """All metric rows plus one ``run,status`` row per run, as dicts in CSV column order."""
    out = []
    for rec in comp.records:
        out.append(dict(variant=rec.variant, input=rec.input, family="run", metric="status",
                        value=math.nan, unit="", better="", status=rec.status, note=rec.error))
    out += [dict(vars(r)) for r in comp.rows]
    return out


def write_csv(comp: Comparison, path: Path) -> Path:
    cols = ("variant", "input", "family", "metric", "value", "unit", "better", "status", "note")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for row in run_rows(comp):
            row = dict(row)
            row["value"] = "" if math.isnan(row["value"]) else repr(float(row["value"]))
            w.writerow(row)
    return path


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (np.floating, np.integer)):
        return _json_safe(v.item())
    return v


def summary(comp: Comparison) -> dict[str, dict[str, float]]:
    """Per variant (and the real videos), the mean of each metric over the inputs where it is
    defined (not NaN)."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in comp.rows:
        if not math.isnan(r.value):
            acc[r.variant][r.metric].append(r.value)
    order = [v.name for v in comp.variants] + [REAL]
    return {v: {m: float(np.mean(x)) for m, x in acc[v].items()} for v in order if v in acc}


def metric_info(comp: Comparison) -> dict[str, dict[str, str]]:
    """Unit, direction and family of every metric seen."""
    info: dict[str, dict[str, str]] = {}
    for r in comp.rows:
        info.setdefault(r.metric, {"family": r.family, "unit": r.unit, "better": r.better})
    return info


def _round(v) -> float | str | None:
    v = float(v)
    return round(v, 5) if math.isfinite(v) else _json_safe(v)


def write_json(comp: Comparison, path: Path) -> Path:
    data = {
        "format": "talkingface-compare/1",
        "variants": [{"name": v.name, "spec": v.spec} for v in comp.variants],
        "inputs": comp.inputs,
        "runs": [
            {
                "variant": rec.variant, "input": rec.input, "status": rec.status,
                "error": rec.error, "fps": rec.fps,
                "speed": {k: _json_safe(v) for k, v in rec.speed.items()},
                "key_frames": rec.keyframe_index,
                "curves": {
                    name: None if curve is None else [_round(v) for v in curve]
                    for name, curve in (("mouth", rec.mouth), ("real_mouth", rec.real_mouth),
                                        ("energy_db", rec.energy_db))
                },
            }
            for rec in comp.records
        ],
        "metrics": metric_info(comp),
        "summary": {v: {m: _json_safe(x) for m, x in d.items()} for v, d in summary(comp).items()},
        "rows": [{k: _json_safe(v) for k, v in row.items()} for row in run_rows(comp)],
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def _row(comp: Comparison, variant: str, input_name: str, metric: str):
    for r in comp.rows:
        if r.variant == variant and r.input == input_name and r.metric == metric:
            return r
    return None


def _value(comp: Comparison, variant: str, input_name: str, metric: str) -> float:
    row = _row(comp, variant, input_name, metric)
    return math.nan if row is None else row.value


def _lpips_cell(comp: Comparison, variant: str, input_name: str, metric: str) -> str | None:
    """The LPIPS cell's text when no local model scored it (its note), else None."""
    row = _row(comp, variant, input_name, metric)
    if metric == "lpips" and row is not None and math.isnan(row.value) and row.note:
        return row.note.partition(":")[0]
    return None


def has_reenactment(comp: Comparison) -> bool:
    return any(r.family == "reenact" for r in comp.rows)


def reenactment_table(comp: Comparison) -> str:
    """The self-reenactment scores as text: one line per variant × real video, then the mean
    of each variant."""
    cols = [label for _, label in REENACT]
    widths = [max(9, len(c) + 2) for c in cols]
    names = [v.name for v in comp.variants]
    vw = max([len(n) for n in names] + [7]) + 2
    iw = max([len(i) for i in comp.inputs] + [5]) + 2
    head = f"{'variant':<{vw}}{'input':<{iw}}" + "".join(
        f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))
    lines = ["self-reenactment: each real video's first frame animated, vs its real frames "
             "(landmark errors in inter-ocular distances)", head, "-" * len(head)]
    means: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    notes = set()
    for input_name in comp.inputs:
        for name in names:
            if _row(comp, name, input_name, "psnr") is None:
                continue
            cells = []
            for (m, _), w in zip(REENACT, widths, strict=True):
                v = _value(comp, name, input_name, m)
                if math.isfinite(v):
                    means[name][m].append(v)
                text = _lpips_cell(comp, name, input_name, m)
                if text:
                    notes.add(_row(comp, name, input_name, m).note)
                cells.append(f"{'n/a' if text else _fmt(v):>{w}}")
            lines.append(f"{name:<{vw}}{input_name:<{iw}}" + "".join(cells))
    lines.append("-" * len(head))
    for name in names:
        if name in means:
            cells = [_fmt(float(np.mean(means[name][m])) if means[name][m] else math.nan)
                     for m, _ in REENACT]
            cells = ["n/a" if m == "lpips" and notes and c == "-" else c
                     for (m, _), c in zip(REENACT, cells, strict=True)]
            lines.append(f"{name:<{vw}}{'(mean)':<{iw}}" + "".join(
                f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    lines += [f"LPIPS: {n}" for n in sorted(notes)]
    return "\n".join(lines)


def terminal_table(comp: Comparison) -> str:
    """One line per variant × input with the headline metrics and the status, then the mean of
    each variant over the inputs (and the real videos' own values as the reference); then the
    self-reenactment table when there are real videos."""
    cols = [label for _, label in HEADLINE]
    widths = [max(8, len(c) + 1) for c in cols]
    vw = max([len(v.name) for v in comp.variants] + [len(REAL), 7]) + 2
    iw = max([len(i) for i in comp.inputs] + [5]) + 2
    head = f"{'variant':<{vw}}{'input':<{iw}}" + "".join(
        f"{c:>{w}}" for c, w in zip(cols, widths, strict=True)) + "  status"
    lines = [head, "-" * len(head)]
    names = [v.name for v in comp.variants]
    for input_name in comp.inputs:
        for name in [*names, REAL]:
            rec = comp.status_of(name, input_name)
            if rec is None:
                continue
            vals = "".join(
                f"{_fmt(_value(comp, name, input_name, m)):>{w}}"
                for (m, _), w in zip(HEADLINE, widths, strict=True)
            )
            status = rec.status if rec.status == "ok" else f"ERROR: {rec.error}"
            lines.append(f"{name:<{vw}}{input_name:<{iw}}{vals}  {status}")
    lines.append("-" * len(head))
    for name, means in summary(comp).items():
        vals = "".join(
            f"{_fmt(means.get(m, math.nan)):>{w}}" for (m, _), w in zip(HEADLINE, widths,
                                                                      strict=True)
        )
        lines.append(f"{name:<{vw}}{'(mean)':<{iw}}{vals}")
    if has_reenactment(comp):
        lines += ["", reenactment_table(comp)]
    return "\n".join(lines)


# --- plots --------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _colors(comp: Comparison) -> dict[str, str]:
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    out = {v.name: palette[i % len(palette)] for i, v in enumerate(comp.variants)}
    out[REAL] = "#000000"
    return out


def plot_mouth_curves(comp: Comparison, input_name: str) -> str | None:
    """Mouth opening over time of every variant and the real video, over the audio loudness."""
    recs = [r for r in comp.records if r.input == input_name and r.mouth is not None]
    if not recs:
        return None
    plt = _plt()
    colors = _colors(comp)
    fig, ax = plt.subplots(figsize=(11, 3.6))
    energy = next((r for r in recs if r.variant != REAL and r.energy_db is not None), None)
    if energy is not None:
        t = np.arange(len(energy.energy_db)) / energy.fps
        ax2 = ax.twinx()
        ax2.fill_between(t, energy.energy_db.min(), energy.energy_db, color="#cccccc",
                         alpha=0.5, step="mid", lw=0)
        ax2.set_ylabel("audio loudness (dB)", color="#888888")
        ax2.grid(False)
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
    real_drawn = False
    for rec in recs:
        if rec.variant == REAL:
            continue
        t = np.arange(len(rec.mouth)) / rec.fps
        if rec.real_mouth is not None and not real_drawn:
            ax.plot(t, rec.real_mouth * 100, color="black", lw=2.2, label="real video")
            real_drawn = True
        ax.plot(t, rec.mouth * 100, color=colors[rec.variant], lw=1.3, label=rec.variant)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mouth opening (% face height)")
    ax.set_title(f"Mouth opening over time — {input_name}")
    ax.legend(loc="upper right", ncol=min(5, len(recs) + 1), fontsize=9, framealpha=0.9)
    return _png(fig)


def plot_stage_times(comp: Comparison) -> str | None:
    """Per-stage ms/frame of each variant (mean over its runs), stacked horizontal bars."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in comp.records:
        for k, v in rec.speed.items():
            if k.startswith("ms_per_frame.") and math.isfinite(v):
                per[rec.variant][k.removeprefix("ms_per_frame.")].append(v)
    if not per:
        return None
    plt = _plt()
    stages = sorted({s for d in per.values() for s in d})
    names = [v.name for v in comp.variants if v.name in per]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(names) + 1.6))
    left = np.zeros(len(names))
    cmap = plt.get_cmap("tab10")
    for j, stage in enumerate(stages):
        vals = np.array([np.mean(per[n][stage]) if per[n].get(stage) else 0.0 for n in names])
        ax.barh(names, vals, left=left, color=cmap(j % 10), label=stage)
        for i, (lft, v) in enumerate(zip(left, vals, strict=True)):
            if v > 0.06 * max(1e-9, (left + vals).max()):
                ax.text(lft + v / 2, i, f"{v:.1f}", ha="center", va="center", fontsize=8,
                        color="white")
        left += vals
    for i, total in enumerate(left):
        ax.text(total, i, f"  {total:.1f} ms", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("ms per frame (mean over inputs)")
    ax.set_title("Per-stage time")
    ax.set_xlim(0, left.max() * 1.18 if left.max() > 0 else 1)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25 - 0.05 / max(1, len(names))),
              ncol=min(5, len(stages)), fontsize=8, frameon=False)
    return _png(fig)


def plot_metric_bars(comp: Comparison) -> str | None:
    """One panel per headline metric: a bar per variant (mean over inputs, dots = inputs), the
    real videos' mean as a dashed line where there is one."""
    metrics = [(m, lab) for m, lab in HEADLINE
               if any(r.metric == m and math.isfinite(r.value) for r in comp.rows)]
    if not metrics:
        return None
    plt = _plt()
    info = metric_info(comp)
    colors = _colors(comp)
    names = [v.name for v in comp.variants]
    ncol = 4
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.9 * nrow), squeeze=False)
    for ax, (metric, _) in zip(axes.flat, metrics, strict=False):
        means, points = [], []
        for n in names:
            vals = [r.value for r in comp.rows
                    if r.variant == n and r.metric == metric and math.isfinite(r.value)]
            means.append(np.mean(vals) if vals else math.nan)
            points.append(vals)
        x = np.arange(len(names))
        ax.bar(x, np.nan_to_num(means), color=[colors[n] for n in names], alpha=0.85)
        for i, vals in enumerate(points):
            ax.plot([i] * len(vals), vals, "o", color="black", ms=3, alpha=0.6)
        real = [r.value for r in comp.rows
                if r.variant == REAL and r.metric == metric and math.isfinite(r.value)]
        if real:
            ax.axhline(np.mean(real), color="black", ls="--", lw=1, label="real")
            ax.legend(fontsize=7, loc="best")
        meta = info.get(metric, {})
        unit = f" ({meta['unit']})" if meta.get("unit") else ""
        ax.set_title(f"{metric}{unit}\n{meta.get('better', '')} is better", fontsize=9)
        ax.set_xticks(x, names, rotation=30 if len(names) > 3 else 0, ha="right" if len(
            names) > 3 else "center", fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


# --- HTML ---------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
td.best{background:#d9f2d9;font-weight:600} td.err{color:#b00;text-align:left}
img.plot{max-width:100%;margin:6px 0 18px} .thumbs td{text-align:center}
.thumbs img{width:150px;height:auto;display:block} small{color:#666}
"""


def _img_tag(b64: str | None, alt: str) -> str:
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">' if (
        b64
    ) else f"<p><small>({html.escape(alt)}: nothing to plot)</small></p>"


def _thumb_b64(pixels: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _best(values: dict[str, float], better: str, real: float | None) -> set[str]:
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    if len(finite) < 2:
        return set()
    if better == "higher":
        target = max(finite.values())
        return {k for k, v in finite.items() if v == target}
    if better == "lower":
        target = min(finite.values())
        return {k for k, v in finite.items() if v == target}
    ref = 0.0 if better == "closer to 0" else real
    if ref is None or not math.isfinite(ref):
        return set()
    dist = {k: abs(v - ref) for k, v in finite.items()}
    return {k for k, d in dist.items() if d == min(dist.values())}


def summary_html(comp: Comparison) -> str:
    """The mean of every metric per variant; the best variant of each row is highlighted."""
    summ = summary(comp)
    info = metric_info(comp)
    names = [v.name for v in comp.variants]
    cols = names + ([REAL] if REAL in summ else [])
    out = ['<table><tr><th class="l">metric</th><th class="l">unit</th>'
           '<th class="l">better</th>']
    out += [f"<th>{html.escape(c)}</th>" for c in cols]
    out.append("</tr>")
    for metric, meta in sorted(info.items(), key=lambda kv: (kv[1]["family"], kv[0])):
        vals = {n: summ.get(n, {}).get(metric, math.nan) for n in names}
        best = _best(vals, meta["better"], summ.get(REAL, {}).get(metric))
        out.append(f'<tr><td class="l">{meta["family"]}.{html.escape(metric)}</td>'
                   f'<td class="l">{html.escape(meta["unit"])}</td>'
                   f'<td class="l">{html.escape(meta["better"])}</td>')
        for c in cols:
            v = summ.get(c, {}).get(metric, math.nan)
            cls = ' class="best"' if c in best else ""
            out.append(f"<td{cls}>{_fmt(v)}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def runs_html(comp: Comparison) -> str:
    out = ['<table><tr><th class="l">variant</th><th class="l">input</th>']
    out += [f"<th>{html.escape(lab)}</th>" for _, lab in HEADLINE]
    out.append('<th class="l">status</th></tr>')
    for input_name in comp.inputs:
        for name in [v.name for v in comp.variants] + [REAL]:
            rec = comp.status_of(name, input_name)
            if rec is None:
                continue
            out.append(f'<tr><td class="l">{html.escape(name)}</td>'
                       f'<td class="l">{html.escape(input_name)}</td>')
            out += [f"<td>{_fmt(_value(comp, name, input_name, m))}</td>" for m, _ in HEADLINE]
            if rec.status == "ok":
                out.append('<td class="l">ok</td>')
            else:
                out.append(f'<td class="err">{html.escape(rec.error)}</td>')
            out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def keyframes_html(comp: Comparison, input_name: str) -> str:
    recs = [r for r in comp.records if r.input == input_name and r.keyframes]
    if not recs:
        return ""
    order = {v.name: i for i, v in enumerate(comp.variants)}
    recs.sort(key=lambda r: order.get(r.variant, -1))  # the real video first
    out = ['<table class="thumbs"><tr><th class="l"></th>']
    out += [f"<th>{m}</th>" for m in KEY_MOMENTS]
    out.append("</tr>")
    for rec in recs:
        out.append(f'<tr><td class="l">{html.escape(rec.variant)}</td>')
        for moment in KEY_MOMENTS:
            if moment in rec.keyframes:
                t = rec.keyframe_index[moment] / rec.fps
                out.append(f'<td><img alt="{moment}" src="data:image/png;base64,'
                           f'{_thumb_b64(rec.keyframes[moment])}"><small>{t:.2f} s</small></td>')
            else:
                out.append("<td><small>-</small></td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def reenactment_html(comp: Comparison) -> str:
    """The self-reenactment scores per variant × real video (the best of each column per
    video highlighted)."""
    names = [v.name for v in comp.variants]
    out = ['<table><tr><th class="l">input</th><th class="l">variant</th>']
    out += [f"<th>{html.escape(label)}</th>" for _, label in REENACT]
    out.append("</tr>")
    info = metric_info(comp)
    for input_name in comp.inputs:
        shown = [n for n in names if _row(comp, n, input_name, "psnr") is not None]
        best = {m: _best({n: _value(comp, n, input_name, m) for n in shown},
                         info.get(m, {}).get("better", ""), None) for m, _ in REENACT}
        for name in shown:
            out.append(f'<tr><td class="l">{html.escape(input_name)}</td>'
                       f'<td class="l">{html.escape(name)}</td>')
            for m, _ in REENACT:
                text = _lpips_cell(comp, name, input_name, m)
                cls = ' class="best"' if name in best[m] else ""
                cell = html.escape(text) if text else _fmt(_value(comp, name, input_name, m))
                out.append(f"<td{cls}>{cell}</td>")
            out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def strip_html(comp: Comparison, input_name: str) -> str:
    """Frames side by side at the same times: the real video, then each variant."""
    recs = [r for r in comp.records if r.input == input_name and r.strip]
    if not recs:
        return ""
    order = {v.name: i for i, v in enumerate(comp.variants)}
    recs.sort(key=lambda r: order.get(r.variant, len(order)))
    columns = [("real video", recs[0].strip_real)] + [(r.variant, r.strip) for r in recs]
    out = ['<table class="thumbs"><tr><th class="l">time</th>']
    out += [f"<th>{html.escape(name)}</th>" for name, _ in columns]
    out.append("</tr>")
    for k, t in enumerate(recs[0].strip_times):
        out.append(f'<tr><td class="l">{t:.2f} s</td>')
        for _, thumbs in columns:
            if k < len(thumbs):
                out.append(f'<td><img alt="frame" src="data:image/png;base64,'
                           f'{_thumb_b64(thumbs[k])}"></td>')
            else:
                out.append("<td><small>-</small></td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


_GLOSSARY = """
<ul>
<li><b>mouth_corr</b>: Pearson r between the mouth opening (inner-lip gap / face height, from
MediaPipe landmarks) on the generated frames and on the real video of the same audio, at the
best lag within ±3 frames; <b>mouth_lag</b> is that lag (+ = generated late). The real video's
own audio-visual offset is taken out first (when its own correlation is at least 0.2; see the
row's note); a generated mouth that does not move (std below 0.3 % of the face height)
scores 0.</li>
<li><b>av_offset</b>: lag (within ±1 s) that best correlates audio loudness with mouth
opening; + = video late. <b>av_corr</b>: the correlation there (below 0.2 the offset is
unreliable; real speakers keep the mouth open in pauses, so real videos score low).</li>
<li><b>bilabial_closure</b>: fraction of p/b/m phones where the lips close (needs phone
timings: <code>&lt;clip&gt;.phones.txt</code>, Audacity label format).</li>
<li><b>delta_p</b>: VASA-1's ΔP, mean |Δ(yaw, pitch, roll)| per frame in degrees, from the
landmark head pose; closer to the real video is better. <b>jitter_pose</b>: mean |second
difference| of the angles (°/frame²); <b>jitter_landmarks</b>: the same on landmark positions
(% face height).</li>
<li><b>blink_rate</b> / <b>blink_duration</b>: blinks found in eye openness with hysteresis
(close below 55 % of the median openness, reopen above 75 %).</li>
<li><b>silent_lip_std</b> / <b>silent_lip_move</b>: mouth-opening std and mean frame-to-frame
change during silences of 300 ms or more (found from audio loudness); 0 = still lips.</li>
<li><b>bg_psnr/ssim</b>: outside the head box, generated frames vs the portrait as rendered;
<b>face_rest_psnr/ssim</b>: inside the face box during silences (or the first frame).</li>
<li><b>reenact</b> (real videos, the portrait being the video's first frame: self-reenactment):
<b>psnr</b>/<b>ssim</b> of each generated frame against the real frame at the same time (in
the renderer's face crop, cut from the real frame with the renderer's own crop matrix, or the
whole frame when the renderer pastes back); <b>lpips</b> only with a local model (the lpips
package and torchvision's AlexNet checkpoint in the torch hub cache; nothing downloads);
<b>lmk_all</b>: mean distance of all 478 landmarks to the real ones, as placed (pose and
expression), over the real inter-ocular distance (outer eye corners); <b>lmk_mouth</b> /
<b>lmk_eyes</b>: lip / eye points after a similarity alignment on the upper face outline and
nose, which do not move with the expression (shape, not placement). Video-driven variants
(<code>motion=video</code>) follow the real video's motion; audio-driven ones are scored the
same way, so both sit in one table.</li>
<li><b>speed</b>: ms/frame per stage call, total ms of one-off calls (loading, preparing the
portrait), frames/s and real-time factor of the stages (the measuring sink excluded),
streaming start latency (first second of the first input), peak memory (process RSS on CPU,
allocator peak on GPU).</li>
</ul>
"""


def write_html(comp: Comparison, path: Path, *, title: str = "talkingface compare") -> Path:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        has_plots = False
    else:
        has_plots = True

    def plot(fn, alt: str, *args) -> str:
        if not has_plots:
            return "<p><small>(plots need matplotlib: pip install matplotlib)</small></p>"
        return _img_tag(fn(comp, *args), alt)

    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        "<h2>Variants</h2><ul>",
    ]
    parts += [f"<li><code>{html.escape(v.spec)}</code></li>" for v in comp.variants]
    parts.append(f"</ul><p>{len(comp.inputs)} inputs: "
                 f"{html.escape(', '.join(comp.inputs))}</p>")
    parts.append("<h2>Summary (mean over inputs)</h2>" + summary_html(comp))
    parts.append("<h2>Metrics per variant</h2>" + plot(plot_metric_bars, "metrics"))
    parts.append("<h2>Per-stage time</h2>" + plot(plot_stage_times, "stage times"))
    parts.append("<h2>Runs</h2>" + runs_html(comp))
    if has_reenactment(comp):
        parts.append("<h2>Self-reenactment</h2><p><small>Each real video's first frame "
                     "animated and compared with its real frames; landmark errors in "
                     "inter-ocular distances.</small></p>" + reenactment_html(comp))
    for input_name in comp.inputs:
        parts.append(f"<h2>{html.escape(input_name)}</h2>")
        parts.append(plot(plot_mouth_curves, "mouth opening", input_name))
        parts.append(keyframes_html(comp, input_name))
        strip = strip_html(comp, input_name)
        if strip:
            parts.append("<h3>Real | each variant</h3>" + strip)
    parts.append("<h2>Metrics</h2>" + _GLOSSARY)
    parts.append("<p><small>Full data: results.csv (long format), results.json.</small></p>"
                 "</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_all(comp: Comparison, output: str | Path) -> dict[str, Path]:
    """Write results.csv, results.json and report.html into ``output`` (created if needed)."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "csv": write_csv(comp, out / "results.csv"),
        "json": write_json(comp, out / "results.json"),
        "html": write_html(comp, out / "report.html"),
    }
