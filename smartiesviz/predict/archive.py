"""Embeddings (or predictions) for a whole archive: many scenes, many processes, resumable.

:func:`run_archive` takes many scenes (:func:`expand_inputs`: a list file, a glob, a folder of
scenes, or paths) and writes one output per scene into an output folder, with

- **work split by the launchers the project already uses**: each process takes the scenes
  ``i`` with ``i % world == rank`` of the sorted list (:func:`shard_from_env`: ``RANK`` /
  ``WORLD_SIZE`` from ``torchrun``, a submitit job-array index, or bare ``srun``); each rank
  uses ``cuda:LOCAL_RANK`` when there is a GPU;
- **a manifest**, one JSON file per scene in ``OUT/manifest/`` (scene, size + mtime, output,
  status, model sha256, options incl. ``token_norm``, one-line error), so a rerun skips
  finished scenes and redoes partial ones; outputs are atomic (:mod:`smartiesviz.outputs`), so a
  killed process loses at most the scene it was on;
- **a claim per output** (``OUT/.locks/NAME.lock``, created with ``O_EXCL``; stale when its
  process is gone or it was not refreshed for :data:`STALE_LOCK_S`), so two processes never
  write one output even when two runs overlap;
- **bad scenes** recorded with their one-line error (``on_bad="skip"``) or stopping the run with
  one error naming the scene (``on_bad="error"``);
- **an index** built by the process that finishes last (:mod:`smartiesviz.predict.catalog`):
  a STAC-style ``catalog.json`` and a VRT mosaic per CRS.

List files (``.txt``, ``.list``, ``.lst``): one scene per line, ``#`` comments and blank lines
ignored, relative paths taken from the list's folder; a sensor per line as ``PATH<TAB>SENSOR`` or
``PATH sensor=SENSOR``. A line that names a folder is one scene (a folder of band rasters).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from smartiesviz import outputs
from smartiesviz.data.readers import RASTER_SUFFIXES
from smartiesviz.errors import UserError

Kind = Literal["embed", "predict"]
OnBad = Literal["error", "skip"]
LIST_SUFFIXES = (".txt", ".list", ".lst")
MANIFEST = "manifest"
LOCKS = ".locks"
#: A claim not refreshed for this long (seconds) is taken over; the running process refreshes
#: its claim after every batch, and a claim of a process known to be gone is taken at once.
STALE_LOCK_S = 1800.0
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class SceneInput:
    """One scene of an archive: where it is read from, its sensor (``None``: detected from its
    band names) and the stem of its output file."""

    source: str
    sensor: str | None
    name: str


def is_archive_request(inputs: Sequence[str], out: str | os.PathLike) -> bool:
    """Whether a command line names many scenes: several inputs, a list file, a glob, or an
    ``--out`` that is a folder (an existing one, or a name without a suffix)."""
    first = str(inputs[0]) if inputs else ""
    return (
        len(inputs) > 1
        or Path(first).suffix.lower() in LIST_SUFFIXES
        or bool(_GLOB.search(first))
        or Path(out).is_dir()
        or not Path(out).suffix
    )


def expand_inputs(
    inputs: Sequence[str | os.PathLike], sensor: str | None = None, exclude: Path | None = None
) -> list[SceneInput]:
    """The scenes that ``inputs`` name, sorted by output name (the order every rank shares).

    Args:
        inputs: list files, globs (``"tiles/*.tif"``, ``**`` recursive), folders of scenes (each
            raster file and each sub-folder of band rasters in it is a scene), sample names
            (``sample:sentinel2``) or scene paths.
        sensor: the sensor of scenes that give none (``None``: detect from band names).
        exclude: a folder never read as a scene (the output folder).

    Raises:
        UserError: a list line, glob or folder that names no scene, or a missing path.
    """
    found: list[tuple[str, str | None]] = []
    for item in map(str, inputs):
        if Path(item).suffix.lower() in LIST_SUFFIXES and Path(item).is_file():
            found += _read_list(Path(item), sensor)
        elif _GLOB.search(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise UserError(f"the pattern {item!r} matches no file or folder")
            found += [(m, sensor) for m in matches if not _excluded(Path(m), exclude)]
        elif Path(item).is_dir() and not item.startswith("sample:"):
            found += [(str(p), sensor) for p in _folder_scenes(Path(item), exclude)]
        elif item.startswith("sample:") or Path(item).exists():
            found.append((item, sensor))
        else:
            raise UserError(f"scene {item!r} does not exist")
    if not found:
        raise UserError(f"no scene found in {', '.join(map(str, inputs))}")
    return _named(found)


def _read_list(path: Path, sensor: str | None) -> list[tuple[str, str | None]]:
    """``(source, sensor)`` per line of a list file (see the module docstring)."""
    outputs.check_input_file(path, "scene list")
    out = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, given = line, sensor
        if "\t" in line:
            name, given = (part.strip() for part in line.split("\t", 1))
        elif " sensor=" in line:
            name, given = (part.strip() for part in line.rsplit(" sensor=", 1))
        if not name or (given is not None and not given):
            raise UserError(f"scene list {str(path)!r} line {n}: expected PATH[<TAB>SENSOR]")
        if not name.startswith("sample:") and not Path(name).is_absolute():
            name = str(path.parent / name)
        if not name.startswith("sample:") and not Path(name).exists():
            raise UserError(f"scene list {str(path)!r} line {n}: {name!r} does not exist")
        out.append((name, given))
    return out


def _excluded(path: Path, exclude: Path | None) -> bool:
    return exclude is not None and path.resolve() == exclude.resolve()


def _folder_scenes(folder: Path, exclude: Path | None) -> list[Path]:
    scenes = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or _excluded(p, exclude):
            continue
        if p.is_dir() or p.suffix.lower() in RASTER_SUFFIXES:
            scenes.append(p)
    if not scenes:
        raise UserError(
            f"folder {str(folder)!r} holds no scene (raster files {', '.join(RASTER_SUFFIXES)} "
            "or sub-folders of band rasters)"
        )
    return scenes


def _named(found: list[tuple[str, str | None]]) -> list[SceneInput]:
    """Give each scene a distinct output stem: its file, folder or sample name; names that two
    scenes share get a suffix from a hash of the scene's absolute path."""
    seen: dict[str, str | None] = {}
    for source, sensor in found:  # a scene listed twice is one scene
        seen.setdefault(source, sensor)
    stems = {s: _stem(s) for s in seen}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    scenes = []
    for source, sensor in seen.items():
        stem = stems[source]
        if counts[stem] > 1:
            digest = hashlib.sha1(os.path.abspath(source).encode()).hexdigest()[:8]
            stem = f"{stem}-{digest}"
        scenes.append(SceneInput(source, sensor, stem))
    return sorted(scenes, key=lambda s: s.name)


def _stem(source: str) -> str:
    if source.startswith("sample:"):
        base = "sample-" + source[len("sample:") :]
    else:
        p = Path(source.rstrip("/"))
        base = p.name if p.is_dir() else p.stem
    return re.sub(r"[^A-Za-z0-9._-]", "_", base) or "scene"


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(rank, world)`` of this process: ``SMARTIESVIZ_SHARD="i/n"`` (set by the submitit job
    array of ``smartiesviz launch slurm``), else ``RANK``/``WORLD_SIZE`` (``torchrun``), else
    ``SLURM_PROCID``/``SLURM_NTASKS`` (bare ``srun``), else ``(0, 1)``."""
    env = os.environ if environ is None else environ
    if env.get("SMARTIESVIZ_SHARD"):
        rank, _, world = env["SMARTIESVIZ_SHARD"].partition("/")
    elif "RANK" in env and "WORLD_SIZE" in env:
        rank, world = env["RANK"], env["WORLD_SIZE"]
    elif int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        rank, world = env["SLURM_PROCID"], env["SLURM_NTASKS"]
    else:
        return 0, 1
    try:
        r, w = int(rank), int(world)
    except ValueError:
        r, w = -1, 0
    if not 0 <= r < w:
        raise UserError(f"rank {rank!r} of world size {world!r} from the environment is invalid")
    return r, w


def rank_device(device: str | None, local_rank: int | None = None) -> str | None:
    """The device of this rank: ``cuda:LOCAL_RANK`` (modulo the GPUs present) when ``device`` is
    ``None`` or ``"cuda"`` and there is a GPU; ``device`` as given otherwise."""
    if device not in (None, "cuda"):
        return device
    import torch  # lazy: keeps the module (and the CLI's --help) light

    if not torch.cuda.is_available():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0")) if local_rank is None else local_rank
    return f"cuda:{local % torch.cuda.device_count()}"


def fingerprint(source: str) -> dict[str, Any]:
    """What tells a changed scene from an unchanged one: size and mtime (ns) of its file, or
    of every file of a folder; a sample's name."""
    if source.startswith("sample:"):
        return {"sample": source}
    p = Path(source)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    stats = [f.stat() for f in files]
    return {
        "files": len(files),
        "size": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


# ---------------------------------------------------------------------------- manifest and claims


def manifest_path(out_dir: Path, name: str) -> Path:
    return out_dir / MANIFEST / f"{name}.json"


def read_manifest(out_dir: Path, name: str) -> dict[str, Any] | None:
    """The scene's manifest record, or ``None`` (none yet, or unreadable: redone)."""
    try:
        return json.loads(manifest_path(out_dir, name).read_text())
    except (OSError, ValueError):
        return None


def write_manifest(out_dir: Path, name: str, record: dict[str, Any]) -> None:
    text = json.dumps(record, sort_keys=True, indent=1) + "\n"
    outputs.atomic_write_bytes(manifest_path(out_dir, name), text.encode())


@dataclass
class Claim:
    """An output claimed by this process (see :func:`claim`); :meth:`refresh` keeps it alive."""

    path: Path
    touched: float = field(default_factory=time.monotonic)

    def refresh(self, *_: Any) -> None:
        if time.monotonic() - self.touched > 10:
            self.touched = time.monotonic()
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def claim(out_dir: Path, name: str) -> Claim | None:
    """Claim the output ``name`` with an ``O_EXCL`` lock file; ``None`` when another live
    process holds it. A stale claim (its process gone on this host, or not refreshed for
    :data:`STALE_LOCK_S`) is moved aside atomically and taken."""
    path = out_dir / LOCKS / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    me = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode()
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _stale(path):
                return None
            try:  # only one of several processes taking over a stale claim wins the rename
                os.replace(path, path.with_name(f"{path.name}.stale-{os.getpid()}"))
                path.with_name(f"{path.name}.stale-{os.getpid()}").unlink()
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(me)
        return Claim(path)
    return None


def _stale(path: Path) -> bool:
    try:
        holder = json.loads(path.read_text() or "{}")
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return False  # being written or just removed: try again later
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        if holder["pid"] != os.getpid() and not outputs._alive(holder["pid"]):
            return True
    return age > STALE_LOCK_S


# ---------------------------------------------------------------------------------- the runner


@dataclass
class ArchiveSummary:
    """What one process did (``rank`` of ``world``), and the index when this process built it.

    Attributes:
        done, skipped, failed: scenes written, skipped (finished before or claimed elsewhere),
            failed (recorded in the manifest). patches: patch-grid cells written. seconds: wall
            time of the scenes this process ran. catalog: ``catalog.json`` when built here.
    """

    rank: int = 0
    world: int = 1
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    patches: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    catalog: Path | None = None
    mosaics: list[Path] = field(default_factory=list)

    def line(self) -> str:
        """One summary line: scenes done/skipped/failed and patches per second."""
        rate = self.patches / self.seconds if self.seconds > 0 else 0.0
        return (
            f"rank {self.rank}/{self.world}: {self.done} done, {self.skipped} skipped, "
            f"{self.failed} failed of {self.total} scenes; {self.patches} patches in "
            f"{self.seconds:.1f} s ({rate:.1f} patches/s)"
        )


@dataclass(frozen=True)
class _Run:
    """What every scene of one process's run shares."""

    out_dir: Path
    kind: Kind
    write: Callable[..., Path]
    key: dict[str, Any]
    on_bad: OnBad
    overwrite: bool
    rank: int


def run_archive(
    inputs: Sequence[str | os.PathLike] | Sequence[SceneInput],
    out_dir: str | os.PathLike,
    kind: Kind = "embed",
    *,
    sensor: str | None = None,
    checkpoint: Any = None,
    options: Any = None,
    on_bad: OnBad = "skip",
    overwrite: bool = False,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> ArchiveSummary:
    """Write one output per scene into ``out_dir``: this process's share, resumably.

    Args:
        inputs: what :func:`expand_inputs` takes, or :class:`SceneInput` records.
        out_dir: output folder: ``NAME.tif`` per scene, ``manifest/NAME.json``, and (written
            by the process that finishes the archive) ``catalog.json`` and ``mosaic-*.vrt``.
        kind: ``"embed"`` (:func:`~smartiesviz.predict.embed.embed_to_file`, options an
            :class:`~smartiesviz.predict.embed.EmbedOptions`) or ``"predict"``
            (``smartiesviz.predict.tasks.predict_to_file``, options passed through).
        sensor: sensor of scenes that give none (``None``: detected from band names).
        checkpoint: model checkpoint name (``None``: the demo model); a ``SmartiesMAE`` also
            works for ``"embed"``.
        on_bad: ``"skip"``: record a failing scene and go on; ``"error"``: record it and stop
            with one :class:`UserError` naming it.
        overwrite: redo scenes the manifest calls finished.
        shard: ``(rank, world)``; default :func:`shard_from_env`.
        progress: one tqdm bar per process (``position=rank``).

    Returns:
        This process's :class:`ArchiveSummary`.
    """
    from smartiesviz.options import check_option

    check_option("kind", kind, Kind)
    check_option("on_bad", on_bad, OnBad)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {str(out)!r} is a file; many scenes need an output folder")
    if all(isinstance(s, SceneInput) for s in inputs):
        scenes = list(inputs)
    else:
        scenes = expand_inputs(inputs, sensor, exclude=out)
    rank, world = shard or shard_from_env()
    out.mkdir(parents=True, exist_ok=True)
    run = _prepare(kind, out, checkpoint, options, on_bad, overwrite, rank)
    summary = _run_share(run, scenes[rank::world], world, progress)
    if _all_final(out, scenes, run.key):
        from smartiesviz.predict.catalog import build_index

        done = [r for r in (read_manifest(out, s.name) for s in scenes) if r["status"] == "done"]
        summary.catalog, summary.mosaics = build_index(out, done)
    return summary


def _run_share(run: _Run, mine: list[SceneInput], world: int, progress: bool) -> ArchiveSummary:
    from tqdm.auto import tqdm  # lazy: tqdm.auto probes for Jupyter widgets

    summary = ArchiveSummary(run.rank, world, len(mine))
    desc = f"rank {run.rank}/{world}"
    with tqdm(total=len(mine), position=run.rank, desc=desc, unit="scene",
              disable=not progress) as bar:  # fmt: skip
        for scene in mine:
            status, patches, seconds, error = _process(run, scene)
            setattr(summary, status, getattr(summary, status) + 1)
            summary.patches += patches
            summary.seconds += seconds
            if error:
                summary.errors.append(f"{scene.source}: {error}")
            rate = summary.patches / summary.seconds if summary.seconds else 0.0
            bar.set_postfix_str(f"{summary.failed} failed, {rate:.0f} patches/s", refresh=False)
            bar.update()
    return summary


def _prepare(
    kind: Kind, out: Path, checkpoint: Any, options: Any, on_bad: OnBad, overwrite: bool,
    rank: int,
) -> _Run:  # fmt: skip
    """Load the model once per process and fix what every scene's record compares."""
    from dataclasses import replace

    if kind == "embed":
        from smartiesviz.models.resolve import resolve_model
        from smartiesviz.predict.embed import EmbedOptions, embed_to_file, model_sha256

        opts = options or EmbedOptions()
        opts = replace(opts, device=rank_device(opts.device), progress=False)
        model = resolve_model(checkpoint)
        if opts.device is not None:
            model = model.to(opts.device)
        key = {"kind": kind, "model_sha256": model_sha256(model), "options": opts.provenance()}

        def write(source: str, path: Path, sensor: str | None, claim_: Claim) -> Path:
            step = replace(opts, on_progress=claim_.refresh)
            return embed_to_file(source, path, sensor, model, step, overwrite=True)

    else:
        from smartiesviz.models.resolve import resolve_checkpoint
        from smartiesviz.predict.tasks import predict_to_file  # lazy: the task heads

        if hasattr(checkpoint, "state_dict"):  # a model object
            from smartiesviz.predict.embed import model_sha256

            sha = model_sha256(checkpoint)
        else:
            sha = resolve_checkpoint(checkpoint or "demo").sha256
        key = {"kind": kind, "model_sha256": sha, "options": _options_record(options)}

        def write(source: str, path: Path, sensor: str | None, claim_: Claim) -> Path:
            return predict_to_file(source, path, sensor, checkpoint, options, overwrite=True)

    return _Run(out, kind, write, key, on_bad, overwrite, rank)


def _options_record(options: Any) -> dict[str, Any]:
    """Options as plain JSON (their ``provenance()`` when they have one)."""
    if options is None:
        return {}
    if hasattr(options, "provenance"):
        return options.provenance()
    from dataclasses import asdict, is_dataclass

    raw = asdict(options) if is_dataclass(options) else dict(vars(options))
    return json.loads(json.dumps(raw, sort_keys=True, default=lambda o: type(o).__name__))


def _finished(
    prev: dict[str, Any] | None, scene: SceneInput, fp: dict, key: dict, out: Path
) -> bool:
    """Whether the manifest records this scene, unchanged, as written with this model and these
    options, and its output is still there (same size)."""
    if not prev or prev.get("status") != "done" or prev.get("fingerprint") != fp:
        return False
    if prev.get("sensor_given") != scene.sensor or any(prev.get(k) != v for k, v in key.items()):
        return False
    return out.is_file() and out.stat().st_size == prev.get("output_size")


def _process(run: _Run, scene: SceneInput) -> tuple[str, int, float, str | None]:
    """Run one scene: ``(status, patches, seconds, error)`` with status ``done``, ``skipped``
    or ``failed``. The manifest says ``running`` while the output is written, so a killed
    process leaves a record that the next run redoes."""
    out = run.out_dir / f"{scene.name}.tif"
    fp = fingerprint(scene.source)
    prev = read_manifest(run.out_dir, scene.name)
    if not run.overwrite and _finished(prev, scene, fp, run.key, out):
        return "skipped", 0, 0.0, None
    held = claim(run.out_dir, scene.name)
    if held is None:  # another live process writes it
        return "skipped", 0, 0.0, None
    try:
        prev = read_manifest(run.out_dir, scene.name)  # it may have finished while we looked
        if not run.overwrite and _finished(prev, scene, fp, run.key, out):
            return "skipped", 0, 0.0, None
        record = {
            "scene": scene.source, "sensor_given": scene.sensor, "fingerprint": fp,
            "output": out.name, "status": "running", "rank": run.rank,
            "host": socket.gethostname(), "pid": os.getpid(), **run.key,
        }  # fmt: skip
        write_manifest(run.out_dir, scene.name, record)
        return _write_scene(run, scene, out, prev, record, held)
    finally:
        held.release()


def _write_scene(
    run: _Run, scene: SceneInput, out: Path, prev: dict | None, record: dict, held: Claim
) -> tuple[str, int, float, str | None]:
    start = time.perf_counter()
    try:
        if out.exists() and prev is None and not run.overwrite:
            raise UserError(
                f"{str(out)!r} exists but this folder's manifest does not record it; "
                "pass --overwrite to replace it"
            )
        sensor = scene.sensor or _detect_sensor(scene.source)
        run.write(scene.source, out, sensor, held)
    except Exception as err:  # noqa: BLE001 - a bad scene is recorded, whatever it raised
        message = one_line(err)
        seconds = time.perf_counter() - start
        write_manifest(
            run.out_dir, scene.name, {**record, "status": "failed", "error": message,
                                      "seconds": round(seconds, 3)},
        )  # fmt: skip
        if run.on_bad == "error":
            raise UserError(f"scene {scene.source!r} failed: {message}") from err
        return "failed", 0, seconds, message
    seconds = time.perf_counter() - start
    patches = _patches(out)
    record.update(
        status="done", sensor=sensor, output_size=out.stat().st_size,
        output_sha256=outputs.file_sha256(out), patches=patches, seconds=round(seconds, 3),
    )  # fmt: skip
    write_manifest(run.out_dir, scene.name, record)
    return "done", patches, seconds, None


def one_line(err: BaseException) -> str:
    """An error as one line: its message's first line (with its type unless it is a user
    error), at most 300 characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if not isinstance(err, (UserError, FileNotFoundError)):
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text[:300]


def _detect_sensor(source: str) -> str:
    """A scene's sensor from its band names (file band descriptions or band file names)."""
    from smartiesviz.data.bands import cube_sensor
    from smartiesviz.data.readers import sensor_hint_for
    from smartiesviz.data.samples import is_sample
    from smartiesviz.data.scene import open_scene

    try:
        return cube_sensor(open_scene(source).cube)
    except (ValueError, KeyError) as err:
        if is_sample(source):
            raise
        raise UserError(
            f"cannot tell its sensor ({one_line(err)}); give it in the list file "
            f"(PATH<TAB>SENSOR) or with --sensor; {sensor_hint_for(source)}"
        ) from err


def _patches(out: Path) -> int:
    import rasterio  # heavy optional: the output's header

    with rasterio.open(out) as src:
        return int(src.width * src.height)


def _all_final(out: Path, scenes: Sequence[SceneInput], key: dict[str, Any]) -> bool:
    """Whether every scene is recorded as done or failed with this run's model and options."""
    for scene in scenes:
        rec = read_manifest(out, scene.name)
        if not rec or rec.get("status") not in ("done", "failed"):
            return False
        if any(rec.get(k) != v for k, v in key.items()):
            return False
    return True


def archive_line(out_dir: str | os.PathLike, scenes: Sequence[SceneInput]) -> str:
    """One line over the whole archive, from the manifest (every process's scenes)."""
    out = Path(out_dir)
    records = [read_manifest(out, s.name) or {} for s in scenes]
    done = [r for r in records if r.get("status") == "done"]
    failed = sum(r.get("status") == "failed" for r in records)
    patches = sum(int(r.get("patches", 0)) for r in done)
    seconds = sum(float(r.get("seconds", 0)) for r in done)
    rate = patches / seconds if seconds else 0.0
    return (
        f"archive {out}: {len(done)} of {len(scenes)} scenes done, {failed} failed, "
        f"{len(scenes) - len(done) - failed} pending; {patches} patches "
        f"({rate:.1f} patches/s per process)"
    )
