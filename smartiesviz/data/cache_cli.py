"""``smartiesviz cache info|clear``: what the caches hold, and emptying them.

Two caches: ``samples`` (the sample cubes and BigEarthNet extractions in the cache root, verified
by their manifests and never evicted) and ``map-layers`` (one entry per scene and model, evicted
least recently used first when the cache outgrows ``$SMARTIESVIZ_CACHE_LIMIT``, default 2 GiB).
Only entries these caches create are removed: other files in the folders are left alone.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from smartiesviz.data import cache

NAMES = ("samples", "map-layers")


@dataclass(frozen=True)
class CacheUse:
    """One cache: its folder, entries (folders removed whole), total bytes and limit text."""

    name: str
    path: Path
    entries: list[Path]
    size: int
    limit: str


def human(n: float) -> str:
    """Bytes in binary units, e.g. ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def caches() -> list[CacheUse]:
    """Both caches as they are now."""
    limit = cache.cache_limit()
    shown = "" if limit is None else human(limit)
    folders = cache.sample_folders()
    entries = [e for f in folders for e in ([f] if f.is_symlink() else sorted(f.iterdir()))]
    layers = cache.map_layer_cache()
    shared = cache.is_inside(layers, cache.cache_root())
    return [
        CacheUse("samples", cache.cache_root(), entries, sum(map(cache.tree_size, folders)),
                 "none, never evicted" + (" (counts towards the map-layers limit)" if shared else "")),
        CacheUse("map-layers", layers, cache.layer_entries(layers),
                 sum(map(cache.tree_size, cache.layer_entries(layers))),
                 f"none (${cache.LIMIT_ENV}=none), nothing evicted" if limit is None else
                 f"{shown}{' with samples' if shared else ''} (${cache.LIMIT_ENV}), least recently "
                 "used entries evicted"),
    ]  # fmt: skip


#: ``smartiesviz cache --help``: where the caches are and what bounds them.
DESCRIPTION = (
    "Show or clear smartiesviz's caches. The cache root is $SMARTIESVIZ_CACHE (default "
    "~/.cache/smartiesviz); map layers go to $SMARTIESVIZ_MAP_CACHE (default: map-layers "
    "in the root). $SMARTIESVIZ_CACHE_LIMIT (e.g. 2G, 500M, or 'none'; default 2G) bounds "
    "the cache: least recently used map-layer entries are evicted, sample data never."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``cache`` command."""
    help_ = "show or clear the caches (sample data, map layers)"
    p = subparsers.add_parser("cache", help=help_, description=DESCRIPTION)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="list each cache: path, entries, size, limit")
    info.set_defaults(func=run_info)
    clear = sub.add_parser(
        "clear",
        help="remove cached entries (default: map layers; --all: sample data too)",
        description="Remove the map-layer entries, one named cache, or (--all) every cache.",
    )
    clear.add_argument("name", nargs="?", choices=NAMES, help="only this cache")
    clear.add_argument("--all", action="store_true", help="every cache, sample data included")
    clear.set_defaults(func=run_clear)


def run_info(args: argparse.Namespace) -> int:
    for c in caches():
        print(f"{c.name}: {c.path}")
        print(f"  entries: {len(c.entries)}, size: {human(c.size)}, limit: {c.limit}")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    if args.all and args.name:
        raise ValueError(f"give either a cache name ({args.name!r}) or --all, not both")
    names = NAMES if args.all else (args.name or "map-layers",)
    for c in caches():
        if c.name not in names:
            continue
        removed = cache.sample_folders() if c.name == "samples" else c.entries
        for path in removed:
            cache.discard(path)
        print(f"cleared {c.name} ({c.path}): {len(c.entries)} entries, {human(c.size)} freed")
    return 0
