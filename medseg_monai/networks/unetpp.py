"""UNet++ (``monai.networks.nets.BasicUNetPlusPlus``) with a one-tensor inference output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import BasicUNetPlusPlus

from medseg_monai.errors import ConfigError
from medseg_monai.networks.registry import register_network

__all__ = ["UNETPP_DEFAULTS", "UNetPlusPlus"]

UNETPP_DEFAULTS: dict = {
    "features": (16, 16, 32, 64, 128, 16),
    "deep_supervision": False,
    "act": ("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
    "norm": ("instance", {"affine": True}),
    "dropout": 0.0,
    "upsample": "deconv",
}


@register_network("unetpp")
class UNetPlusPlus(torch.nn.Module):
    """UNet++ returning one logits tensor ``(B, out_channels, H, W[, D])`` at inference.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (classes).
        features: six channel counts, encoder levels 0-4 then the decoder output level; default
            ``(16, 16, 32, 64, 128, 16)`` (half of MONAI's ``(32, 32, 64, 128, 256, 32)``, which
            suits CPU training and 3D patches on small GPUs).
        deep_supervision: in ``train()`` mode return all four decoder heads (see ``forward``).
        act: activation, default LeakyReLU(0.1).
        norm: normalisation, default affine instance norm.
        dropout: dropout probability, default 0.0.
        upsample: ``"deconv"`` (default), ``"pixelshuffle"`` or ``"nontrainable"``.

    The encoder pools 4 times: spatial sizes divisible by 16 are recommended.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: Sequence[int] = UNETPP_DEFAULTS["features"],
        deep_supervision: bool = UNETPP_DEFAULTS["deep_supervision"],
        act: str | tuple = UNETPP_DEFAULTS["act"],
        norm: str | tuple = UNETPP_DEFAULTS["norm"],
        dropout: float = UNETPP_DEFAULTS["dropout"],
        upsample: str = UNETPP_DEFAULTS["upsample"],
    ) -> None:
        super().__init__()
        features = tuple(features)
        if len(features) != 6 or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in features):
            raise ConfigError(f"features must be 6 positive integers; got {features!r}")
        if upsample not in ("deconv", "pixelshuffle", "nontrainable"):
            raise ConfigError(f"upsample must be 'deconv', 'pixelshuffle' or 'nontrainable'; got {upsample!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"dropout must be in [0, 1); got {dropout!r}")
        self.net = BasicUNetPlusPlus(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            features=features,
            deep_supervision=bool(deep_supervision),
            act=act,
            norm=norm,
            dropout=dropout,
            upsample=upsample,
        )
        if not deep_supervision:
            # the shallower heads would be computed but never used: drop their parameters
            for name in ("final_conv_0_1", "final_conv_0_2", "final_conv_0_3"):
                setattr(self.net, name, torch.nn.Identity())

    @property
    def deep_supervision(self) -> bool:
        """Whether ``train()``-mode forward returns every decoder head (fixed at construction)."""
        return bool(self.net.deep_supervision)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Map ``(B, in_channels, *spatial)`` to logits.

        Returns:
            ``eval()`` mode, or no deep supervision: one tensor ``(B, out_channels, *spatial)`` from the
            finest (final) head. ``train()`` mode with deep supervision: a list of the four heads'
            ``(B, out_channels, *spatial)`` logits, final head first, then shallower ones (the order
            ``monai.losses.DeepSupervisionLoss`` weights from highest to lowest).
        """
        heads = self.net(x)  # MONAI order: shallowest (x_0_1) ... final (x_0_4)
        if self.training and self.deep_supervision:
            return heads[::-1]
        return heads[-1]
