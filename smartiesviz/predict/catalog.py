"""The index of an archive's outputs: a STAC-style catalogue and a VRT mosaic per CRS.

:func:`build_index` (called by :func:`smartiesviz.predict.archive.run_archive` when the last
scene is finished) writes, into the output folder:

- ``catalog.json``: a STAC ``FeatureCollection`` (an ItemCollection): one Item per scene, with
  its WGS84 footprint and bbox, ``datetime`` when the scene's name or tags give one (else
  ``null``), ``proj:*`` (CRS, native bbox, shape, transform), ``smartiesviz:*`` (scene,
  sensor, model sha256, token normalisation, options) and the output as the ``data`` asset
  (a path relative to the catalogue);
- ``mosaic-<CRS>.vrt``: a GDAL VRT per CRS mosaicking every north-up output in it at the finest
  resolution among them (open it with rasterio/QGIS like one raster; GDAL's own ``BuildVRT``
  needs the ``osgeo`` bindings, not installed here, so the XML is written directly).

:func:`open_catalog` reads a catalogue back; :func:`search` ranks the patches of every scene in
it by cosine similarity to a query vector (centred by the archive mean of each sensor, by
default), so one query patch is searched across the whole archive.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import numpy as np

from smartiesviz import outputs

CATALOG = "catalog.json"
STAC_VERSION = "1.0.0"
_DATE = re.compile(r"(20\d{2}|19\d{2})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2}))?")


@dataclass(frozen=True)
class CatalogEntry:
    """One scene of a catalogue: ``id``, the output's absolute ``path``, its ``sensor``,
    ``datetime`` (ISO string or ``None``), WGS84 ``bbox`` and the Item's ``properties``."""

    id: str
    path: Path
    sensor: str | None
    datetime: str | None
    bbox: tuple[float, float, float, float] | None
    properties: dict[str, Any]


def scene_datetime(source: str, tags: dict[str, str] | None = None) -> str | None:
    """An ISO datetime from a scene's tags (``TIFFTAG_DATETIME``, ``ACQUISITIONDATETIME``) or,
    failing that, its name (``S2A_MSIL1C_20200101T103421_...``); ``None`` when neither has one."""
    for key in ("ACQUISITIONDATETIME", "TIFFTAG_DATETIME", "DATETIME"):
        value = (tags or {}).get(key)
        if value:
            m = re.match(r"(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})", value)
            if m:
                y, mo, d, h, mi, s = m.groups()
                return f"{y}-{mo}-{d}T{h}:{mi}:{s}Z"
    m = _DATE.search(Path(source).name)
    if not m:
        return None
    y, mo, d, h, mi, s = m.groups()
    if not (1 <= int(mo) <= 12 and 1 <= int(d) <= 31):
        return None
    return f"{y}-{mo}-{d}T{h or '00'}:{mi or '00'}:{s or '00'}Z"


def _source_tags(source: str) -> dict[str, str]:
    if source.startswith("sample:") or not Path(source).is_file():
        return {}
    import rasterio  # heavy optional: a scene's header

    try:
        with rasterio.open(source) as src:
            return dict(src.tags())
    except Exception:  # noqa: BLE001 - the date is optional: an unreadable header gives none
        return {}


def stac_item(out_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The STAC Item of one finished scene (a manifest ``record``)."""
    import rasterio  # heavy optional: the output's header
    from rasterio.enums import WktVersion
    from rasterio.warp import transform_geom

    path = out_dir / record["output"]
    with rasterio.open(path) as src:
        crs, tr, (h, w), b = src.crs, src.transform, src.shape, src.bounds
        tags = src.tags()
    props: dict[str, Any] = {
        "datetime": scene_datetime(record["scene"], _source_tags(record["scene"])),
        "proj:shape": [h, w],
        "proj:transform": [tr.a, tr.b, tr.c, tr.d, tr.e, tr.f],
        "smartiesviz:scene": record["scene"],
        "smartiesviz:sensor": record.get("sensor"),
        "smartiesviz:kind": record.get("kind"),
        "smartiesviz:model_sha256": record.get("model_sha256"),
        "smartiesviz:token_norm": tags.get("token_norm", record["options"].get("token_norm")),
        "smartiesviz:options": record.get("options"),
        "smartiesviz:patches": record.get("patches"),
    }
    geometry = bbox = None
    if crs is not None:
        props["proj:epsg"] = crs.to_epsg()
        props["proj:wkt2"] = crs.to_wkt(version=WktVersion.WKT2_2019)
        props["proj:bbox"] = [b.left, b.bottom, b.right, b.top]
        ring = [(b.left, b.bottom), (b.right, b.bottom), (b.right, b.top), (b.left, b.top)]
        polygon = {"type": "Polygon", "coordinates": [ring + ring[:1]]}
        geometry = transform_geom(crs, "EPSG:4326", polygon)
        xs = [p[0] for p in geometry["coordinates"][0]]
        ys = [p[1] for p in geometry["coordinates"][0]]
        bbox = [min(xs), min(ys), max(xs), max(ys)]
    item = {
        "type": "Feature", "stac_version": STAC_VERSION,
        "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json"],
        "id": Path(record["output"]).stem, "geometry": geometry, "bbox": bbox,
        "properties": props, "links": [],
        "assets": {"data": {
            "href": record["output"], "title": f"{record['kind']} of {record['scene']}",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized", "roles": ["data"],
        }},
    }  # fmt: skip
    if bbox is None:
        item.pop("bbox")
    return item


def build_index(
    out_dir: str | os.PathLike, records: Sequence[dict[str, Any]]
) -> tuple[Path, list[Path]]:
    """Write ``catalog.json`` and one ``mosaic-<CRS>.vrt`` per CRS for the finished scenes.

    Args:
        out_dir: the archive's output folder.
        records: manifest records with ``status == "done"`` (scene, output, sensor, ...).

    Returns:
        ``(catalog path, VRT paths)``. Both are written atomically; the same records give the
        same bytes (no time stamps), so processes that build it at once write the same file.
    """
    out = Path(out_dir)
    records = sorted(records, key=lambda r: r["output"])
    items = [stac_item(out, r) for r in records]
    collection = {"type": "FeatureCollection", "features": items}
    catalog = out / CATALOG
    outputs.atomic_write_bytes(catalog, (json.dumps(collection, indent=1) + "\n").encode())
    groups: dict[str, list[Path]] = {}
    for r in records:
        crs = _crs_key(out / r["output"])
        if crs is not None:
            groups.setdefault(crs, []).append(out / r["output"])
    mosaics = []
    for key, paths in sorted(groups.items()):
        vrt = out / f"mosaic-{key}.vrt"
        outputs.atomic_write_bytes(vrt, mosaic_vrt(paths, vrt.parent))
        mosaics.append(vrt)
    return catalog, mosaics


def _crs_key(path: Path) -> str | None:
    """``EPSG_32633`` (or a short hash of the WKT) for a north-up raster with a CRS, else None."""
    import hashlib

    import rasterio  # heavy optional: the output's header

    with rasterio.open(path) as src:
        if src.crs is None or src.transform.b or src.transform.d:
            return None
        epsg = src.crs.to_epsg()
        if epsg:
            return f"EPSG_{epsg}"
        return "WKT_" + hashlib.sha1(src.crs.to_wkt().encode()).hexdigest()[:8]


def mosaic_vrt(paths: Sequence[Path], folder: Path) -> bytes:
    """A GDAL VRT mosaic of north-up rasters sharing a CRS and band count, at the finest
    resolution among them (coarser ones are resampled by GDAL on read), sources relative to
    ``folder``. Where rasters overlap, the later one (sorted by name) is drawn on top."""
    import rasterio  # heavy optional: the sources' headers

    metas = []
    for p in paths:
        with rasterio.open(p) as src:
            metas.append((p, src.transform, src.width, src.height, src.count, src.crs,
                          src.descriptions, src.block_shapes[0]))  # fmt: skip
    counts = {m[4] for m in metas}
    if len(counts) != 1:
        raise ValueError(f"cannot mosaic rasters with different band counts {sorted(counts)}")
    res_x = min(m[1].a for m in metas)
    res_y = min(-m[1].e for m in metas)
    left = min(m[1].c for m in metas)
    top = max(m[1].f for m in metas)
    right = max(m[1].c + m[2] * m[1].a for m in metas)
    bottom = min(m[1].f + m[3] * m[1].e for m in metas)
    width, height = round((right - left) / res_x), round((top - bottom) / res_y)
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = metas[0][5].to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (left, res_x, 0.0, top, 0.0, -res_y)
    )
    for band in range(1, counts.pop() + 1):
        vb = ET.SubElement(root, "VRTRasterBand", dataType="Float32", band=str(band))
        ET.SubElement(vb, "NoDataValue").text = "nan"
        desc = metas[0][6][band - 1]
        if desc:
            ET.SubElement(vb, "Description").text = desc
        for p, tr, w, h, _, _, _, (by, bx) in metas:
            src = ET.SubElement(vb, "ComplexSource")
            name = ET.SubElement(src, "SourceFilename", relativeToVRT="1")
            name.text = os.path.relpath(p, folder)
            ET.SubElement(src, "SourceBand").text = str(band)
            ET.SubElement(src, "SourceProperties", RasterXSize=str(w), RasterYSize=str(h),
                          DataType="Float32", BlockXSize=str(bx), BlockYSize=str(by))  # fmt: skip
            ET.SubElement(src, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
            ET.SubElement(
                src, "DstRect", xOff=repr((tr.c - left) / res_x), yOff=repr((top - tr.f) / res_y),
                xSize=repr(w * tr.a / res_x), ySize=repr(h * -tr.e / res_y),
            )  # fmt: skip
            ET.SubElement(src, "NODATA").text = "nan"
    ET.indent(root)
    return ET.tostring(root) + b"\n"


def open_catalog(catalog: str | os.PathLike) -> list[CatalogEntry]:
    """The scenes of a ``catalog.json`` written by :func:`build_index` (or an archive's output
    folder holding one), in catalogue order; asset paths made absolute."""
    path = Path(catalog)
    if path.is_dir():
        path = path / CATALOG
    outputs.check_input_file(path, "catalogue")
    try:
        doc = json.loads(path.read_text())
        features = doc["features"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"catalogue {str(path)!r} is not a STAC FeatureCollection: {err}") from err
    entries = []
    for item in features:
        props = item.get("properties", {})
        href = item["assets"]["data"]["href"]
        entries.append(CatalogEntry(
            item["id"], (path.parent / href).resolve(), props.get("smartiesviz:sensor"),
            props.get("datetime"), tuple(item["bbox"]) if item.get("bbox") else None, props,
        ))  # fmt: skip
    return entries


def is_catalog(value: Any) -> bool:
    """Whether ``value`` is a catalogue: a ``.json`` path, a folder holding ``catalog.json``,
    or a list of :class:`CatalogEntry`."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(v, CatalogEntry) for v in value)
    if isinstance(value, (str, os.PathLike)):
        p = Path(value)
        return p.suffix.lower() == ".json" or (p.is_dir() and (p / CATALOG).is_file())
    return False


def entries_of(catalog: Any) -> list[CatalogEntry]:
    """A catalogue's entries (``catalog`` a path, a folder or entries already read)."""
    return list(catalog) if isinstance(catalog, (list, tuple)) else open_catalog(catalog)


@dataclass(frozen=True)
class Hit:
    """One patch found by :func:`search`: the scene ``id``, its grid ``row``/``col``, the
    ``score`` (centred cosine) and the patch centre in the scene's CRS (``x``, ``y``)."""

    id: str
    row: int
    col: int
    score: float
    x: float
    y: float


#: How :func:`search` centres embeddings before the cosine: ``"sensor"`` subtracts the mean
#: embedding of all scenes of the same sensor in the archive (keeps what tells scenes apart,
#: removes what tells sensors apart), ``"scene"`` each scene's own mean, ``"none"`` nothing.
CenterMode = Literal["sensor", "scene", "none"]


def archive_centers(catalog: Any, center: CenterMode = "sensor") -> dict[str, np.ndarray | None]:
    """The ``(D,)`` vector subtracted from each scene's patches (by scene id) under ``center``;
    a sensor's mean is the mean of its scenes' means weighted by their grid sizes."""
    from smartiesviz.options import check_option
    from smartiesviz.predict.similarity import mean_embedding

    check_option("center", center, CenterMode)
    entries = entries_of(catalog)
    if center == "none":
        return {e.id: None for e in entries}
    means = {e.id: mean_embedding(e.path).astype(np.float64) for e in entries}
    if center == "scene":
        return dict(means)
    sizes = {e.id: float(np.prod(e.properties.get("proj:shape") or [1])) for e in entries}
    by_sensor: dict[Any, list[str]] = {}
    for e in entries:
        by_sensor.setdefault(e.sensor, []).append(e.id)
    sensor_mean = {
        s: sum(means[i] * sizes[i] for i in ids) / sum(sizes[i] for i in ids)
        for s, ids in by_sensor.items()
    }
    return {e.id: sensor_mean[e.sensor] for e in entries}


def search(
    catalog: Any, query: np.ndarray, top_k: int = 10, center: CenterMode = "sensor",
    sensors: Sequence[str] | None = None, query_sensor: str | None = None,
    centers: dict[str, np.ndarray | None] | None = None,
) -> list[Hit]:  # fmt: skip
    """The ``top_k`` patches of all scenes of a catalogue most similar to ``query`` ``(D,)``.

    Each scene is read strip by strip (:func:`~smartiesviz.predict.similarity.cosine_map`) after
    subtracting its centre (:data:`CenterMode`, :func:`archive_centers`). The query is centred
    like each scene it is compared with, or, with ``center="sensor"`` and ``query_sensor``, by
    the archive mean of its own sensor (a Sentinel-2 query against Sentinel-1 scenes).

    Args:
        catalog: ``catalog.json``, its folder, or :func:`open_catalog` entries.
        query: ``(D,)`` embedding (e.g. :func:`~smartiesviz.predict.similarity.vector_at`).
        top_k: hits returned, best first.
        sensors: search only scenes of these sensors.
        centers: :func:`archive_centers` computed once for many queries.

    Returns:
        Up to ``top_k`` :class:`Hit`, highest score first.
    """
    from smartiesviz.predict.similarity import cosine_map

    entries = entries_of(catalog)
    centers = centers if centers is not None else archive_centers(entries, center)
    q_center = None
    if center == "sensor" and query_sensor is not None:
        q_center = next((centers[e.id] for e in entries if e.sensor == query_sensor), None)
        if q_center is None:
            raise ValueError(
                f"the catalogue holds no {query_sensor!r} scene to centre the query by"
            )
    hits: list[Hit] = []
    for entry in entries:
        if sensors is not None and entry.sensor not in sensors:
            continue
        c = centers[entry.id]
        # cosine_map subtracts c from the query too: shift it so the query loses q_center
        q = query if q_center is None or c is None else np.asarray(query) - q_center + c
        hits += _top(entry, cosine_map(entry.path, q, c), top_k)
    return sorted(hits, key=lambda h: -h.score)[:top_k]


def _top(entry: CatalogEntry, sim: Any, k: int) -> list[Hit]:
    values = np.nan_to_num(sim.values, nan=-np.inf).ravel()
    k = min(k, values.size)
    tr = sim.rio.transform()
    hits = []
    for flat in np.argpartition(-values, k - 1)[:k]:
        if np.isfinite(values[flat]):
            row, col = divmod(int(flat), sim.shape[1])
            x, y = tr @ (col + 0.5, row + 0.5)
            hits.append(Hit(entry.id, row, col, float(values[flat]), float(x), float(y)))
    return hits


def rank_of(hits: Sequence[Hit], scene_id: str, row: int, col: int) -> int | None:
    """1-based rank of a scene's grid cell among ``hits`` (``None`` when it is not there)."""
    for i, h in enumerate(hits, 1):
        if (h.id, h.row, h.col) == (scene_id, row, col):
            return i
    return None

