"""Building a dataset from a folder of talking videos: finds the videos, resumes what an
earlier run built, hands one task per clip (:mod:`talkingface.dataset.clip`) to an executor
(:mod:`talkingface.dataset.executors`: a process pool, or Ray) and writes each finished clip and
the manifest (:mod:`talkingface.dataset.format`).

The tasks return the clip file's bytes and this process alone writes files, so workers need no
access to the output folder and a killed build leaves whole files only. A rerun skips the clips
already built (and those skipped for a reason, unless ``retry_skipped``).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkingface.dataset import format as fmt
from talkingface.dataset.clip import BuildSettings, ClipTask, check_settings
from talkingface.dataset.executors import executor_for
from talkingface.pipeline.errors import InputError

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


@dataclass
class BuildReport:
    """What a build did.

    Attributes:
        root: the dataset folder.
        built: clip ids built by this run.
        reused: clip ids already there from an earlier run.
        skipped: clip id -> reason, for unusable videos (this run's and earlier ones').
        failed: clip id -> error, for unexpected errors (retried by the next run).
        skipped_now: the clip ids of ``skipped`` that this run tried.
        wall_s: seconds this run took.
        work_s: seconds the built clips took, summed over workers.
    """

    root: Path
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped_now: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    work_s: float = 0.0

    @property
    def clips_per_minute(self) -> float:
        """Clips this run built or skipped, per minute of wall time."""
        done = len(self.built) + len(self.skipped_now)
        return 60.0 * done / self.wall_s if done and self.wall_s > 0 else math.nan


def find_videos(folder: str | Path) -> list[tuple[str, Path]]:
    """``(clip id, path)`` of every video under ``folder`` (recursively), sorted. The id is the
    relative path without the suffix, ``/`` written as ``__``; the suffix is kept when two
    videos would otherwise share an id."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder of videos")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTS)
    stems = [
        re.sub(r"[^\w.-]", "_", "__".join(p.relative_to(root).with_suffix("").parts)) for p in paths
    ]
    ids = [
        s if stems.count(s) == 1 else f"{s}{p.suffix.lower().replace('.', '_')}"
        for s, p in zip(stems, paths, strict=True)
    ]
    return list(zip(ids, paths, strict=True))


def _recover(root: Path, clip_id: str, source: str) -> dict[str, Any] | None:
    """The manifest entry of a clip file already on disk, or None when there is none (or it
    cannot be read: it is then built again)."""
    path = fmt.clip_path(root, clip_id)
    if not path.exists():
        return None
    try:
        meta = fmt.read_clip_meta(path)
    except Exception:  # noqa: BLE001 - a damaged or foreign file is rebuilt
        return None
    return {
        "id": clip_id,
        "source": source,
        "status": "ok",
        "file": str(path.relative_to(root)),
        "frames": meta["frames"],
    }


def build_dataset(
    videos: str | Path,
    out: str | Path,
    settings: BuildSettings | None = None,
    *,
    executor: str = "process",
    workers: int | None = None,
    address: str | None = None,
    retry_skipped: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Build (or finish building) the dataset ``out`` from the videos under ``videos``.

    Args:
        videos: folder of talking videos (searched recursively).
        out: dataset folder (created; an existing one is resumed).
        settings: what to extract (:class:`BuildSettings`); must match an existing dataset's.
        executor: ``process`` (a local process pool; ``workers=1`` runs in this process) or
            ``ray`` (Ray tasks on the cluster at ``address``, or a local Ray when None;
            needs ``pip install 'talkingface[ray]'``).
        workers: processes for ``process`` (default: the CPU count, at most 4); for ``ray``
            without ``address``, the CPUs of the local Ray (a cluster uses all of its own).
        address: Ray cluster address (``ray://host:10001`` or ``auto``).
        retry_skipped: build again the clips an earlier run skipped.
        progress: show a progress bar (tqdm) on stderr.

    Raises:
        InputError: no videos, a bad setting or encoder, an existing dataset built with other
            settings or of another format version.
    """
    settings = settings or BuildSettings()
    root = Path(out)
    found = find_videos(videos)
    if not found:
        raise InputError(f"no videos ({', '.join(VIDEO_EXTS)}) under {videos}")
    params = check_settings(settings)
    run = executor_for(executor, workers=workers, address=address)
    try:
        manifest = fmt.read_manifest(root)
    except ValueError as exc:
        raise InputError(f"{exc}; or choose another --out") from None
    if manifest is not None and manifest["params"] != params:
        changed = sorted(k for k in params if manifest["params"].get(k) != params[k])
        raise InputError(
            f"{root} was built with other settings ({', '.join(changed)}): "
            "rebuild with the same settings to resume, or choose another --out"
        )
    (root / fmt.CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (root / fmt.CLIPS_DIR).glob(f"*{fmt.TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)  # left by a killed run: never a whole clip

    from talkingface._version import __version__

    earlier = {c["id"]: c for c in (manifest or {}).get("clips", [])}
    entries: dict[str, dict[str, Any]] = {}
    report = BuildReport(root)
    todo: list[tuple[str, Path]] = []
    for clip_id, path in found:
        source = str(path.relative_to(videos))
        entry = _recover(root, clip_id, source)
        if entry is not None:
            entries[clip_id] = entry
            report.reused.append(clip_id)
        elif clip_id in earlier and earlier[clip_id]["status"] == "skipped" and not retry_skipped:
            entries[clip_id] = earlier[clip_id]
            report.skipped[clip_id] = earlier[clip_id]["reason"]
        else:
            todo.append((clip_id, path))
    head = {
        "format": fmt.FORMAT,
        "version": fmt.VERSION,
        "created_by": f"talkingface {__version__}",
        "params": params,
    }

    def save() -> None:
        fmt.write_manifest(root, {**head, "clips": list(entries.values())})

    save()
    tasks = [
        ClipTask(cid, str(path), str(path.relative_to(videos)), settings, run.threads)
        for cid, path in todo
    ]
    bar = None
    if progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="clip", desc="dataset", leave=False)
    start = time.perf_counter()
    try:
        for result in run(tasks):
            entry = {"id": result.id, "source": result.source, "status": result.status}
            if result.status == "ok":
                path = fmt.clip_path(root, result.id)
                fmt.write_atomic(path, result.data)
                entry.update(
                    file=str(path.relative_to(root)),
                    frames=result.frames,
                    build_s=round(result.seconds, 2),
                )
                report.built.append(result.id)
                report.work_s += result.seconds
            else:
                entry["reason"] = result.reason
                target = report.skipped if result.status == "skipped" else report.failed
                target[result.id] = result.reason
                if result.status == "skipped":
                    report.skipped_now.append(result.id)
            entries[result.id] = entry
            save()
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(result.id[:30])
    finally:
        report.wall_s = time.perf_counter() - start
        if bar is not None:
            bar.close()
    return report
