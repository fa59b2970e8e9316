"""The inference plan: every inference setting of a loaded model, resolved once.

:func:`resolve_plan` is the one place that reads ``config.infer`` (and, for inference, ``config.runtime``):
it applies the caller's changes to the run's own settings, resolves ``auto`` devices, precision and layout,
the windows (their size, overlap per axis and slices per window of a 2D network on volumes), the flips of
test-time augmentation, the foreground crop and the post-processing. Everything downstream (the predictor,
its stitching, the batch runner, the trainer's validation) reads the :class:`InferencePlan` only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from medseg_monai.config import SLICES_PER_WINDOW, InferConfig, RunConfig, RuntimeConfig, replace_fields
from medseg_monai.errors import ConfigError
from medseg_monai.networks.precision import resolve_memory_format, resolve_precision
from medseg_monai.transforms.slicing import in_plane_axes
from medseg_monai.utils import resolve_device

__all__ = [
    "InferSettings",
    "InferencePlan",
    "RuntimeSettings",
    "SlidingWindow",
    "image_window",
    "resolve_plan",
    "sliding_window",
]

#: inference settings for a loaded model: a whole :class:`InferConfig`, or field changes to the trained one
InferSettings = InferConfig | Mapping[str, Any] | None
#: device, precision and layout for a loaded model: a whole :class:`RuntimeConfig`, or changes to the run's
RuntimeSettings = RuntimeConfig | Mapping[str, Any] | None


@dataclasses.dataclass(frozen=True)
class InferencePlan:
    """Resolved inference settings of one loaded model (:func:`resolve_plan`).

    ``roi_size`` is the network's window (2D for a 2D network on volumes); :meth:`window_size` is the
    window in the image grid. ``flips`` holds the tensor dims flipped in each test-time pass (``((),)``:
    one plain pass). ``settings`` and ``runtime`` are the resolved sections as the run manifest records them.
    """

    settings: InferConfig
    runtime: RuntimeConfig
    device: torch.device
    stitch_device: torch.device
    dtype: torch.dtype | None
    memory_format: torch.memory_format
    window_memory_format: torch.memory_format
    slice_axis: int | None
    context_slices: int
    roi_size: tuple[int, ...]
    overlap: float | tuple[float, ...]
    sw_batch_size: int
    blend_mode: str
    tta: bool
    flips: tuple[tuple[int, ...], ...]
    stitching: str
    inversion: str
    foreground_crop: str
    crop_margin_mm: float
    windows_only: bool
    output_format: str | None
    min_component_size: int
    keep_largest_component: bool
    fill_holes: bool

    @property
    def tta_passes(self) -> int:
        """Network passes per window: 1, or one per flip with test-time augmentation."""
        return len(self.flips)

    @property
    def window_scores(self) -> str:
        """What the network over windows gives: ``"logits"``, or ``"probabilities"`` (flip-averaged) with TTA."""
        return "probabilities" if self.tta else "logits"

    def window_size(self, spatial: Sequence[int] | None = None) -> tuple[int, ...]:
        """The sliding window in the image grid of an image of ``spatial`` shape (:func:`image_window`)."""
        return image_window(self.roi_size, self.slice_axis, spatial)


@dataclasses.dataclass(frozen=True)
class SlidingWindow:
    """The sliding window of a run (:func:`sliding_window`), as validation during training uses it."""

    roi_size: tuple[int, ...]
    slice_axis: int | None
    overlap: float | tuple[float, ...]
    sw_batch_size: int
    blend_mode: str

    def window_size(self, spatial: Sequence[int] | None = None) -> tuple[int, ...]:
        """The sliding window in the image grid of an image of ``spatial`` shape (:func:`image_window`)."""
        return image_window(self.roi_size, self.slice_axis, spatial)


def image_window(roi_size: Sequence[int], slice_axis: int | None, spatial: Sequence[int] | None) -> tuple[int, ...]:
    """The network's window ``roi_size`` in the image grid: for a 2D network on volumes, with slices inserted across
    the slice axis (:data:`~medseg_monai.config.SLICES_PER_WINDOW`, at most as many as the volume has)."""
    if slice_axis is None:
        return tuple(roi_size)
    slices = SLICES_PER_WINDOW if spatial is None else min(SLICES_PER_WINDOW, int(spatial[slice_axis]))
    window = list(roi_size)
    window.insert(slice_axis, max(1, slices))
    return tuple(window)


def _section(current: Any, changes: Any, name: str) -> Any:
    """``current`` section, replaced by a whole section ``changes`` or with a mapping of field changes applied."""
    if changes is None:
        return current
    if isinstance(changes, type(current)):
        return changes
    moved = sorted(set(changes) & {f.name for f in dataclasses.fields(RuntimeConfig)}) if name == "infer" else []
    if moved:
        raise ConfigError(f"infer: {', '.join(moved)} belong to the runtime section now; pass them as runtime=")
    try:
        return replace_fields(current, changes, name)
    except TypeError as err:  # a value of the wrong shape, e.g. a number where a list belongs
        raise ConfigError(str(err)) from None


def _flips(settings: InferConfig, config: RunConfig) -> tuple[tuple[int, ...], ...]:
    """Tensor dims to flip for each test-time pass: every subset of the axes training mirrored."""
    if not settings.tta_flips:
        return ((),)
    data = config.data
    axes = data.mirror_axes
    if data.slice_axis is not None:  # the 2D network's axes are the in-plane axes of the volume's windows
        axes = tuple(in_plane_axes(data.slice_axis)[a] for a in axes)
    return tuple(tuple(a + 2 for i, a in enumerate(axes) if mask >> i & 1) for mask in range(2 ** len(axes)))


def _overlap(settings: InferConfig, slice_axis: int | None) -> float | tuple[float, ...]:
    """``overlap``, per axis for a 2D network on volumes: none across slices (each is predicted once)."""
    if slice_axis is None:
        return settings.overlap
    overlap = [settings.overlap] * 3
    overlap[slice_axis] = 0.0
    return tuple(overlap)


def sliding_window(config: RunConfig) -> SlidingWindow:
    """The sliding window of ``config``'s ``infer`` section (for a plan: after the caller's changes), without
    devices or precision."""
    settings = config.infer
    slice_axis = config.data.slice_axis
    overlap = _overlap(settings, slice_axis)
    return SlidingWindow(tuple(config.roi_size), slice_axis, overlap, settings.sw_batch_size, settings.blend_mode)


def resolve_plan(
    config: RunConfig, infer: InferSettings = None, runtime: RuntimeSettings = None
) -> tuple[RunConfig, InferencePlan]:
    """The run config with its ``infer`` and ``runtime`` sections changed, and the plan resolved from it.

    Args:
        config: the run configuration a network was trained with (resolved data fields).
        infer: an :class:`InferConfig`, a mapping of changes to ``config.infer`` (``{"overlap": 0.5}``), or
            ``None`` for ``config.infer``.
        runtime: a :class:`RuntimeConfig` or a mapping of changes to ``config.runtime`` (``{"device": "cpu"}``).

    Raises:
        ConfigError: a setting of the wrong shape, an unknown precision or layout, a device that is not there.
    """
    settings = _section(config.infer, infer, "infer")
    machine = _section(config.runtime, runtime, "runtime")
    config = dataclasses.replace(config, infer=settings, runtime=machine)
    data = config.data
    window = sliding_window(config)
    device = resolve_device(machine.device)
    memory_format = resolve_memory_format(machine.memory_format, data.spatial_dims, config.model.name)
    plan = InferencePlan(
        settings=settings,
        runtime=machine,
        device=device,
        stitch_device=resolve_device(settings.sw_device) if settings.sw_device else device,
        dtype=resolve_precision(machine.precision, device),
        memory_format=memory_format,
        window_memory_format=memory_format if data.slice_axis is None else torch.contiguous_format,
        slice_axis=data.slice_axis,
        context_slices=data.context_slices,
        roi_size=window.roi_size,
        overlap=window.overlap,
        sw_batch_size=window.sw_batch_size,
        blend_mode=window.blend_mode,
        tta=settings.tta_flips,
        flips=_flips(settings, config),
        stitching=settings.stitching,
        inversion=settings.inversion,
        foreground_crop=settings.foreground_crop,
        crop_margin_mm=settings.crop_margin_mm,
        windows_only=settings.windows_only,
        output_format=settings.output_format,
        min_component_size=settings.min_component_size,
        keep_largest_component=settings.keep_largest_component,
        fill_holes=settings.fill_holes,
    )
    return config, plan
