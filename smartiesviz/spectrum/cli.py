"""``smartiesviz sensors``: print the spectrum table and how each sensor's bands are served."""

from __future__ import annotations

import argparse

from smartiesviz.errors import UserError
from smartiesviz.spectrum import LEARNED_RANGES, SPECTRAL_RANGES, get_sensor, list_sensors


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sensors",
        help="print the spectral ranges, projection layers and sensors",
        description="Print the release's spectral ranges and, per sensor, which layers serve each band.",
    )
    p.add_argument("sensor", nargs="?", help="only this sensor (e.g. landsat8, S2)")
    p.add_argument(
        "--scheme",
        default="inverse-distance",
        help="interpolation scheme for bands between learned ranges (default inverse-distance)",
    )
    p.set_defaults(func=run)


def _fmt_nm(v: float) -> str:
    return f"{v:.3g}" if v >= 1e5 else f"{v:g}"


def spectrum_table() -> str:
    lines = [
        f"{'layer':>5}  {'range':<22} {'min nm':>8} {'max nm':>8} {'centre':>8}  {'family':<13} serves"
    ]
    for r in SPECTRAL_RANGES.values():
        layer = str(r.layer) if r.learned else ("interp" if r.interpolated else "none")
        how = f" (from layers {list(r.neighbours)})" if r.interpolated else ""
        lines.append(
            f"{layer:>5}  {r.name:<22} {_fmt_nm(r.min_nm):>8} {_fmt_nm(r.max_nm):>8} {_fmt_nm(r.center_nm):>8}  "
            f"{r.family:<13} {r.label}{how}"
        )
    return "\n".join(lines)


def sensor_table(name: str, scheme: str = "inverse-distance") -> str:
    # lazy: spectrum.resolve imports torch; keeps `smartiesviz sensors --help` free of it
    from smartiesviz.spectrum.resolve import NoLayerError, layer_weights

    sensor = get_sensor(name)
    lines = [
        f"{sensor.name} ({sensor.description}; {sensor.resolution_m:g} m; aliases: {', '.join(sensor.aliases) or '-'})"
    ]
    for band in sensor.bands:
        try:
            w = layer_weights(band, scheme=scheme)
            parts = [
                f"{LEARNED_RANGES[i].name}[{i}]×{w[i]:.2f}" for i in w.nonzero().flatten().tolist()
            ]
            served = " + ".join(parts)
        except (NoLayerError, ValueError) as err:
            served = f"not served: {str(err).split(';')[0]}"
        res = f"{band.resolution_m:g} m" if band.resolution_m else ""
        lines.append(
            f"  {band.name:<16} {_fmt_nm(band.min_nm):>8}–{_fmt_nm(band.max_nm):<8} {res:>6}  {served}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # lazy: spectrum.resolve imports torch; keeps `smartiesviz sensors --help` free of it
    from smartiesviz.spectrum.resolve import SCHEMES

    if args.scheme not in SCHEMES:  # else every band would print "not served"
        raise UserError(f"--scheme {args.scheme}: unknown scheme; use one of {', '.join(SCHEMES)}")

    if args.sensor:
        print(sensor_table(args.sensor, args.scheme))
        return 0
    print("SMARTIES spectral ranges (nm) and projection layers\n")
    print(spectrum_table())
    print()
    for name in list_sensors():
        print(sensor_table(name, args.scheme))
        print()
    return 0
