"""Benchmark: a well-kept library function against the hand-written code it replaced (or would replace).

    python bench/library_swaps.py            # about a minute on 2 CPU cores
    python bench/library_swaps.py --quick    # smaller arrays, a few seconds

Each row runs both on the same inputs in this one process and reports the time ratio (library / ours;
below 1 the library is faster) and whether the outputs agree. The hand-written baselines of the swaps
that were made are kept here, as they were, so the comparison can be run again. Results go to
``bench/results/library_swaps.json``; docs/performance.md holds the figures and docs/architecture.md the
decisions.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_of  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "library_swaps.json"


# ----------------------------------------------------------------------------------------- baselines that were replaced
def old_scan_starts(size: int, roi: int, overlap: float) -> list[int]:
    if roi >= size:
        return [0]
    interval = max(int(roi * (1 - overlap)), 1)
    count = next(d for d in range(math.ceil(size / interval)) if d * interval + roi >= size) + 1
    return [min(i * interval, size - roi) for i in range(count)]


def old_remove_small(values: np.ndarray, labels: tuple[int, ...], min_size: int) -> np.ndarray:
    from skimage.measure import label as label_components

    out = values.copy()
    for value in labels:
        mask = values == value
        if not mask.any():
            continue
        components = label_components(mask, connectivity=mask.ndim)
        small = np.bincount(components.ravel()) < min_size
        small[0] = False
        out[small[components]] = 0
    return out


def old_oblique_nearest(labels: np.ndarray, xform: np.ndarray, source_shape: tuple[int, ...]) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    nd, chunk = labels.ndim, 1 << 22
    out = np.empty(source_shape, dtype=labels.dtype)
    plane = int(np.prod(source_shape[1:]))
    step = max(1, chunk // max(plane, 1))
    rest = np.indices(source_shape[1:], dtype=np.float64).reshape(nd - 1, -1)
    for start in range(0, source_shape[0], step):
        stop = min(start + step, source_shape[0])
        first = np.repeat(np.arange(start, stop, dtype=np.float64), plane)
        index = np.vstack([first, np.tile(rest, stop - start), np.ones_like(first)])
        coords = np.rint((xform @ index)[:nd])
        for a in range(nd):
            np.clip(coords[a], 0, labels.shape[a] - 1, out=coords[a])
        out[start:stop] = map_coordinates(labels, coords, order=0, mode="nearest").reshape(
            (stop - start,) + source_shape[1:]
        )
    return out


def old_map_label_values(label: torch.Tensor, label_values: tuple[int, ...]) -> torch.Tensor:
    ordered = np.asarray(label_values, dtype=np.int64)
    order = np.argsort(ordered)
    values = label.round().to(torch.int64)
    sorted_values = torch.as_tensor(ordered[order])
    pos = torch.searchsorted(sorted_values, values.reshape(-1)).clamp_(max=len(sorted_values) - 1)
    known = sorted_values[pos] == values.reshape(-1)
    if not bool(known.all()):
        raise ValueError("unknown mask values")
    return torch.as_tensor(order)[pos].reshape(values.shape).to(torch.float32)


# ---------------------------------------------------------------------------------------------- the rows
def blobs(shape: tuple[int, ...], classes: int, seed: int = 0) -> np.ndarray:
    """A label map of random balls of each class, plus specks."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, sparse=True)
    out = np.zeros(shape, np.uint8)
    for value in range(1, classes):
        for _ in range(6):
            centre = [rng.uniform(0, s) for s in shape]
            radius = rng.uniform(3, min(shape) / 6)
            out[sum((g - c) ** 2 for g, c in zip(grid, centre)) < radius**2] = value
    specks = tuple(rng.integers(0, s, 400) for s in shape)
    out[specks] = rng.integers(1, classes, 400)
    return out


def row_window_starts() -> dict:
    from medseg_monai.inference.stitching import scan_starts

    cases = [
        (size, roi, overlap)
        for size in range(1, 300, 7)
        for roi in (8, 16, 32, 96, 128)
        for overlap in (0.0, 0.25, 0.5, 0.625, 0.9)
    ]
    same = sum(scan_starts(*case) == old_scan_starts(*case) for case in cases)
    return {
        "what": "sliding-window starts",
        "library": "monai.data.utils.dense_patch_slices",
        "agree": f"{same}/{len(cases)} axes identical",
        "decision": "library",
        "ratio": None,
    }


def row_small_components(shape) -> dict:
    from medseg_monai.transforms.postprocessing import RemoveSmallComponents

    labels = blobs(shape, 3)
    ours_s, ours = best_of(lambda: old_remove_small(labels, (1, 2), 50))
    lib_s, lib = best_of(lambda: RemoveSmallComponents((1, 2), 50)(torch.from_numpy(labels[None]))[0].numpy())
    return {
        "what": "remove components under 50 voxels per class",
        "library": "skimage.morphology.remove_small_objects",
        "shape": list(shape),
        "ours_s": ours_s,
        "library_s": lib_s,
        "ratio": lib_s / ours_s,
        "agree": f"{int((ours != lib).sum())} voxels differ",
        "decision": "library",
    }


def _oblique(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    xform = np.eye(4)
    xform[:3, :3] = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]) @ np.diag(
        [0.83, 0.91, 1.27]
    )
    xform[:3, 3] = (3.1, -20.7, 1.3)
    return xform


def row_oblique_back(grid_shape, source_shape) -> dict:
    from medseg_monai.transforms.resampling import labels_to_source_grid

    labels = blobs(grid_shape, 3)
    xform = _oblique(17.3)  # source index -> grid index; labels_to_source_grid takes the affines
    ours_s, ours = best_of(lambda: old_oblique_nearest(labels, xform, source_shape), repeats=2)
    lib_s, lib = best_of(lambda: labels_to_source_grid(labels, np.eye(4), xform, source_shape), repeats=2)
    return {
        "what": "oblique label map back to the source grid",
        "library": "scipy.ndimage.affine_transform (order 0)",
        "shape": list(source_shape),
        "ours_s": ours_s,
        "library_s": lib_s,
        "ratio": lib_s / ours_s,
        "agree": f"{int((ours != lib).sum())} voxels differ (a tie half-way between two points may go either way)",
        "decision": "library",
    }


def row_axis_aligned_back(grid_shape, source_shape) -> dict:
    import SimpleITK as sitk
    from scipy.ndimage import affine_transform

    from medseg_monai.transforms.resampling import labels_to_source_grid

    labels = blobs(grid_shape, 3)
    scale = np.asarray(grid_shape, float) / np.asarray(source_shape, float)
    source_affine = np.diag([*scale, 1.0])  # source index -> grid index: a per-axis scaling
    ours_s, ours = best_of(lambda: labels_to_source_grid(labels, np.eye(4), source_affine, source_shape), repeats=2)
    scipy_s, via_scipy = best_of(
        lambda: affine_transform(labels, scale, output_shape=source_shape, output=np.uint8, order=0, mode="nearest"),
        repeats=2,
    )

    def sitk_resample():
        image = sitk.GetImageFromArray(labels.T.copy())  # ITK (x, y, z) = our index order
        ref = sitk.Image([int(s) for s in source_shape], sitk.sitkUInt8)
        ref.SetSpacing(tuple(float(s) for s in scale))
        return sitk.GetArrayFromImage(
            sitk.Resample(image, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        ).T

    sitk_s, via_sitk = best_of(sitk_resample, repeats=2)
    return {
        "what": "axis-aligned label map back to the source grid",
        "library": "scipy.ndimage.affine_transform / SimpleITK.Resample",
        "shape": list(source_shape),
        "ours_s": ours_s,
        "library_s": min(scipy_s, sitk_s),
        "scipy_s": scipy_s,
        "sitk_s": sitk_s,
        "ratio": min(scipy_s, sitk_s) / ours_s,
        "agree": f"scipy {int((ours != via_scipy).sum())}, SimpleITK {int((ours != via_sitk).sum())} voxels differ",
        "decision": "ours",
    }


def row_overlay(size: int) -> dict:
    from skimage.color import label2rgb

    from medseg_monai.reporting.render import colour_table, overlay

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[size // 4 : size // 2, size // 4 : size // 2] = 2  # class 2 only: class 1 absent from this image
    colours = colour_table((1, 2))
    ours_s, ours = best_of(lambda: overlay(image, mask, colours))
    lib_s, lib = best_of(
        lambda: label2rgb(
            mask,
            image=image,
            colors=[np.asarray(c) / 255 for c in colours.values()],
            alpha=0.45,
            bg_label=0,
            kind="overlay",
        )
    )
    ours_colour = ours[size // 3, size // 3].astype(int).tolist()
    lib_colour = (np.asarray(lib[size // 3, size // 3]) * 255).round().astype(int).tolist()
    expected = np.round(0.55 * image[size // 3, size // 3] + 0.45 * np.asarray(colours[2])).astype(int).tolist()
    return {
        "what": "overlay of a mask holding class 2 only",
        "library": "skimage.color.label2rgb",
        "shape": [size, size],
        "ours_s": ours_s,
        "library_s": lib_s,
        "ratio": lib_s / ours_s,
        "agree": f"class 2 pixel: ours {ours_colour}, label2rgb {lib_colour}, class 2's colour blended {expected}",
        "decision": "ours",
    }


def row_checkpoint() -> dict:
    import tempfile

    from ignite.engine import Engine
    from ignite.handlers import Checkpoint, DiskSaver

    events: list[str] = []

    class RecordingSaver(DiskSaver):
        def __call__(self, checkpoint, filename, metadata=None):
            events.append(f"save {filename}")
            super().__call__(checkpoint, filename, metadata)

        def remove(self, filename):
            events.append(f"remove {filename}")
            super().remove(filename)

    with tempfile.TemporaryDirectory() as folder:
        model = torch.nn.Linear(2, 2)
        handler = Checkpoint(
            {"network": model},
            RecordingSaver(folder, atomic=True, require_empty=False),
            filename_pattern="last.pt",
            n_saved=1,
        )
        engine = Engine(lambda e, b: None)
        for epoch in (1, 2):
            engine.state.epoch, engine.state.iteration = epoch, epoch
            handler(engine)
    return {
        "what": "save last.pt every epoch",
        "library": "ignite Checkpoint + DiskSaver(atomic=True)",
        "agree": " -> ".join(events),
        "decision": "ours",
        "ratio": None,
        "note": "the previous last.pt is removed before the new one is written: a run killed in between "
        "has no last.pt; "
        "ours replaces it with one atomic rename",
    }


def row_label_mapping(shape) -> dict:
    from monai.transforms import MapLabelValued

    from medseg_monai.transforms.chains import MapLabelValuesd

    mask = torch.from_numpy((blobs(shape, 2) * 255).astype(np.float32)[None])
    old_s, old = best_of(lambda: old_map_label_values(mask, (0, 255)))
    ours_s, ours = best_of(lambda: MapLabelValuesd("label", (0, 255))({"label": mask})["label"])
    bare = MapLabelValued("label", orig_labels=[0, 255], target_labels=[0, 1], dtype=torch.float32)
    lib_s, _ = best_of(lambda: bare({"label": mask})["label"])
    odd = mask.clone()
    odd[0, 0, 0, 0] = 128  # an anti-aliased edge value
    kept = float(bare({"label": odd})["label"][0, 0, 0, 0])
    try:
        MapLabelValuesd("label", (0, 255))({"label": odd})
        refused = "accepted"
    except ValueError as err:
        refused = f"refused ({str(err).split(':', 1)[-1].strip()})"
    return {
        "what": "mask values 0/255 to classes 0/1",
        "library": "monai.transforms.MapLabelValue",
        "shape": list(shape),
        "ours_s": old_s,
        "library_s": ours_s,
        "bare_library_s": lib_s,
        "ratio": ours_s / old_s,
        "agree": f"{int((old != ours).sum())} voxels differ; "
        f"MapLabelValued alone takes {lib_s:.3f} s but keeps a value 128 "
        f"({kept:g}), so the values are checked first: 128 {refused}",
        "decision": "library mapping after our check",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller arrays (seconds)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    small = args.quick
    rows = [
        row_window_starts(),
        row_small_components((96, 96, 48) if small else (256, 256, 128)),
        row_oblique_back((120, 120, 80) if small else (300, 300, 200), (128, 128, 64) if small else (320, 320, 160)),
        row_axis_aligned_back(
            (164, 164, 200) if small else (410, 410, 500), (205, 205, 160) if small else (512, 512, 400)
        ),
        row_overlay(256 if small else 512),
        row_checkpoint(),
        row_label_mapping((128, 128, 40) if small else (512, 512, 200)),
    ]
    result = {
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "quick": small,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print("| what | library | ours (s) | library (s) | library / ours | agreement | kept |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ours = f"{row['ours_s']:.3f}" if "ours_s" in row else "-"
        lib = f"{row['library_s']:.3f}" if "library_s" in row else "-"
        ratio = f"{row['ratio']:.2f}" if row.get("ratio") is not None else "-"
        print(f"| {row['what']} | `{row['library']}` | {ours} | {lib} | {ratio} | {row['agree']} | {row['decision']} |")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
