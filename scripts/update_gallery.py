"""Copy chosen figures of a ``smartiesviz tour`` report into ``docs/gallery/`` for the README.

    smartiesviz tour --out smartiesviz-tour && python scripts/update_gallery.py smartiesviz-tour

Prints the Markdown for the README gallery. Fails (exit 1) when a chosen figure is missing, e.g.
after a tutorial's figures were reordered: update ``GALLERY`` then.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# gallery file name -> (tour figure file, caption)
GALLERY = {
    "spectrum-explorer.png": (
        "01-spectrum-and-sensors-1.png",
        "Spectrum explorer: learned layers, sensors, interpolation weights (tutorial 01)",
    ),
    "tokenization.png": (
        "02-tokenization-step-by-step-2.png",
        "One patch tokenized band by band with the demo model (tutorial 02)",
    ),
    "mixup.png": (
        "03-mixup-and-masking-3.png",
        "Cross-sensor token mixup on a BigEarthNet S2/S1 pair (tutorial 03)",
    ),
    "reconstruction.png": (
        "04-masked-reconstruction-1.png",
        "Masked reconstruction of a held-out Sentinel-2 tile (tutorial 04)",
    ),
    "thermal-schemes.png": (
        "05-unseen-sensors-2.png",
        "Landsat-8 TIRS B10: layer weights under three interpolation schemes (tutorial 05)",
    ),
    "pretraining.png": (
        "06-laptop-to-cluster-1.png",
        "Loss curve of a 20-step local pretraining run (tutorial 06)",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tour", type=Path, help="the folder written by `smartiesviz tour --out`")
    parser.add_argument("--dest", type=Path, default=ROOT / "docs" / "gallery")
    args = parser.parse_args(argv)
    figures = args.tour / "figures"
    missing = [src for src, _ in GALLERY.values() if not (figures / src).is_file()]
    if missing:
        print(f"missing in {figures}: {missing}", file=sys.stderr)
        return 1
    args.dest.mkdir(parents=True, exist_ok=True)
    cells = []
    for name, (src, caption) in GALLERY.items():
        shutil.copyfile(figures / src, args.dest / name)
        rel = (args.dest / name).resolve().relative_to(ROOT)
        cells.append(f"| ![{caption}]({rel.as_posix()}) <br> {caption} |")
    print("| Gallery (from `smartiesviz tour`) |\n|---|")
    print("\n".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
