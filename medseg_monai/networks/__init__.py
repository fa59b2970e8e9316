"""Segmentation networks behind one factory.

``create_network(name, spatial_dims, in_channels, out_channels, **options)`` builds ``"unet"``,
``"unetpp"`` or ``"deeplabv3"``; in ``eval()`` mode each maps ``(B, in_channels, H, W[, D])`` to one
logits tensor ``(B, out_channels, H, W[, D])``. New networks are added with ``@register_network``.
``build_network(config)`` builds the network of a :class:`~medseg_monai.config.RunConfig` (training and inference).
"""

from __future__ import annotations

from medseg_monai.networks.deeplab import DEEPLAB_BACKBONES, DeepLabV3Wrapper, build_deeplabv3
from medseg_monai.networks.registry import (
    available_networks,
    backbone_parameters,
    build_network,
    create_network,
    register_network,
)
from medseg_monai.networks.slicewise import SliceWindowNetwork
from medseg_monai.networks.unet import UNET_DEFAULTS, build_unet
from medseg_monai.networks.unetpp import UNETPP_DEFAULTS, UNetPlusPlus

__all__ = [
    "DEEPLAB_BACKBONES",
    "DeepLabV3Wrapper",
    "SliceWindowNetwork",
    "UNETPP_DEFAULTS",
    "UNET_DEFAULTS",
    "UNetPlusPlus",
    "available_networks",
    "backbone_parameters",
    "build_network",
    "build_deeplabv3",
    "build_unet",
    "create_network",
    "register_network",
]
