"""Residual U-Net (``monai.networks.nets.UNet``), 2D or 3D."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import UNet

from medseg_monai.errors import ConfigError
from medseg_monai.networks.registry import register_network

__all__ = ["UNET_DEFAULTS", "build_unet"]

UNET_DEFAULTS: dict = {
    "channels": (16, 32, 64, 128, 256),
    "strides": (2, 2, 2, 2),
    "num_res_units": 2,
    "norm": "batch",
    "dropout": 0.0,
    "act": "PRELU",
}


@register_network("unet")
def build_unet(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    channels: Sequence[int] = UNET_DEFAULTS["channels"],
    strides: Sequence[int] = UNET_DEFAULTS["strides"],
    num_res_units: int = UNET_DEFAULTS["num_res_units"],
    norm: str | tuple = UNET_DEFAULTS["norm"],
    dropout: float = UNET_DEFAULTS["dropout"],
    act: str | tuple = UNET_DEFAULTS["act"],
) -> UNet:
    """MONAI residual U-Net: ``(B, in_channels, H, W[, D]) -> (B, out_channels, H, W[, D])`` logits.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (classes).
        channels: feature channels per level, default ``(16, 32, 64, 128, 256)``.
        strides: down-sampling stride between levels (``len(channels) - 1`` entries), default ``(2, 2, 2, 2)``.
        num_res_units: residual units per block, default 2.
        norm: normalisation, default ``"batch"``.
        dropout: dropout probability, default 0.0.
        act: activation, default ``"PRELU"``.

    Every spatial size must be divisible by ``prod(strides)`` (16 with the defaults); training
    patches are chosen that way and sliding-window inference uses such a ROI for any image size.
    """
    channels, strides = tuple(channels), tuple(strides)
    if len(channels) < 2:
        raise ConfigError(f"channels needs at least 2 levels; got {channels!r}")
    if len(strides) != len(channels) - 1:
        raise ConfigError(f"strides needs len(channels) - 1 = {len(channels) - 1} entries; got {strides!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError(f"dropout must be in [0, 1); got {dropout!r}")
    return UNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        channels=channels,
        strides=strides,
        num_res_units=num_res_units,
        norm=norm,
        dropout=dropout,
        act=act,
    )
