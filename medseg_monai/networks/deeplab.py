"""DeepLabV3 (torchvision), 2D only, any number of input channels, optional local backbone weights."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large, deeplabv3_resnet50, deeplabv3_resnet101

from medseg_monai.errors import ConfigError
from medseg_monai.networks.registry import register_network

__all__ = ["DEEPLAB_BACKBONES", "DeepLabV3Wrapper", "build_deeplabv3"]

logger = logging.getLogger(__name__)

DEEPLAB_BACKBONES = {
    "resnet50": deeplabv3_resnet50,
    "resnet101": deeplabv3_resnet101,
    "mobilenet_v3_large": deeplabv3_mobilenet_v3_large,
}
# key of the first convolution's weight inside ``model.backbone``, and the prefix a torchvision
# classification state dict puts before the backbone keys
_FIRST_CONV = {"resnet50": "conv1", "resnet101": "conv1", "mobilenet_v3_large": "0.0"}
_CLASSIFICATION_PREFIX = {"resnet50": "", "resnet101": "", "mobilenet_v3_large": "features."}
_CLASSIFICATION_HEAD = ("fc.", "classifier.")
_CONTAINER_KEYS = ("state_dict", "model", "network")


class DeepLabV3Wrapper(torch.nn.Module):
    """torchvision DeepLabV3 mapping ``(B, in_channels, H, W)`` to logits ``(B, out_channels, H, W)``.

    Built with ``weights=None, weights_backbone=None`` (nothing is downloaded) and ``aux_loss=False``.
    The first convolution is replaced when ``in_channels != 3``. Pretrained weights come only from a
    local file, see :meth:`load_pretrained`.

    In ``train()`` mode the batch size must be at least 2: the ASPP image-pooling branch applies
    batch norm to a ``1 x 1`` map, which needs more than one value per channel.

    Every batch norm uses ``bn_momentum`` (default 0.1, PyTorch's). torchvision's MobileNetV3 ships
    with 0.01, tuned for long ImageNet runs: after the few thousand steps of a CPU budget its running
    statistics still describe the early network, and ``eval()`` then predicts background everywhere.
    """

    def __init__(
        self, in_channels: int, out_channels: int, backbone: str = "resnet50", bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        if backbone not in DEEPLAB_BACKBONES:
            raise ConfigError(f"unknown deeplabv3 backbone {backbone!r}; choices: {', '.join(DEEPLAB_BACKBONES)}")
        if not 0.0 < bn_momentum <= 1.0:
            raise ConfigError(f"bn_momentum must be in (0, 1], got {bn_momentum}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.backbone_name = backbone
        self.model = DEEPLAB_BACKBONES[backbone](
            weights=None, weights_backbone=None, num_classes=out_channels, aux_loss=False
        )
        if in_channels != 3:
            self._replace_first_conv(in_channels)
        for module in self.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.momentum = bn_momentum

    @property
    def backbone(self) -> torch.nn.Module:
        """The feature extractor (pretrainable part); its parameters are what gets frozen."""
        return self.model.backbone

    def _replace_first_conv(self, in_channels: int) -> None:
        name = _FIRST_CONV[self.backbone_name]
        old: torch.nn.Conv2d = self.backbone.get_submodule(name)
        new = torch.nn.Conv2d(
            in_channels,
            old.out_channels,
            old.kernel_size,
            old.stride,
            old.padding,
            old.dilation,
            old.groups,
            old.bias is not None,
        )
        self.backbone.set_submodule(name, new)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> logits ``(B, out_channels, H, W)``."""
        if x.ndim != 4:
            raise ConfigError(f"deeplabv3 expects a (B, C, H, W) input; got shape {tuple(x.shape)}")
        if self.training and x.shape[0] < 2:
            raise ConfigError(
                f"deeplabv3 needs a batch of at least 2 in train() mode (ASPP pooling uses batch norm on a 1x1 map); "
                f"got batch size {x.shape[0]}. Raise the batch size/samples per image or call eval()."
            )
        return self.model(x)["out"]

    def load_pretrained(self, path: str | Path) -> None:
        """Load backbone (and matching head) weights from a local state-dict file.

        The file holds a state dict, or a dict with it under ``"state_dict"``, ``"model"`` or
        ``"network"``. Accepted layouts: a torchvision classification network of the same backbone
        (``conv1.weight``, ``layer1...``/``features...``; its ``fc``/``classifier`` is ignored), or a
        full DeepLabV3 state dict (``backbone.*``, ``classifier.*``; head tensors whose shapes differ,
        e.g. another class count, are skipped). A 3-channel first convolution is adapted to
        ``in_channels`` by averaging over the RGB axis and repeating.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: nothing matched, or backbone tensors are missing, unexpected or mis-shaped.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file not found: {path}")
        state = _unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True), path)
        backbone_src, head_src = self._split(state)
        if not backbone_src:
            raise ConfigError(
                f"{path}: no tensors matched a {self.backbone_name} deeplabv3 backbone (keys like {list(state)[:3]})"
            )

        target = self.backbone.state_dict()
        first = _FIRST_CONV[self.backbone_name] + ".weight"
        if first in backbone_src and backbone_src[first].shape != target[first].shape:
            src = backbone_src[first]
            if src.ndim == 4 and src.shape[0] == target[first].shape[0] and src.shape[2:] == target[first].shape[2:]:
                backbone_src[first] = src.mean(dim=1, keepdim=True).repeat(1, self.in_channels, 1, 1)
                logger.info(
                    "%s: first convolution adapted from %d to %d input channels (RGB mean)",
                    path,
                    src.shape[1],
                    self.in_channels,
                )
        unexpected = sorted(set(backbone_src) - set(target))
        missing = sorted(k for k in set(target) - set(backbone_src) if not k.endswith("num_batches_tracked"))
        mismatched = [
            f"{k}: {tuple(v.shape)} vs {tuple(target[k].shape)}"
            for k, v in backbone_src.items()
            if k in target and v.shape != target[k].shape
        ]
        if unexpected or missing or mismatched:
            raise ConfigError(
                f"{path}: weights do not fit a {self.backbone_name} backbone; "
                f"shape mismatches {mismatched[:3]}, unexpected {unexpected[:3]} ({len(unexpected)}), "
                f"missing {missing[:3]} ({len(missing)})"
            )
        self.backbone.load_state_dict(backbone_src, strict=False)

        head = self.model.classifier.state_dict()
        fitting = {k: v for k, v in head_src.items() if k in head and v.shape == head[k].shape}
        skipped = sorted(set(head_src) - set(fitting))
        if fitting:
            self.model.classifier.load_state_dict(fitting, strict=False)
        if skipped:
            logger.info("%s: skipped %d head tensors that do not fit (%s)", path, len(skipped), ", ".join(skipped[:4]))
        logger.info("%s: loaded %d backbone and %d head tensors", path, len(backbone_src), len(fitting))

    def _split(self, state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Backbone and head tensors of a state dict, keyed as in ``self.backbone``/``self.model.classifier``."""
        state = {_strip(k, ("module.", "model.")): v for k, v in state.items()}
        backbone: dict[str, torch.Tensor] = {}
        head: dict[str, torch.Tensor] = {}
        if any(k.startswith("backbone.") for k in state):  # full DeepLabV3 state dict
            for key, value in state.items():
                if key.startswith("backbone."):
                    backbone[key[len("backbone.") :]] = value
                elif key.startswith("classifier."):
                    head[key[len("classifier.") :]] = value
            return backbone, head
        prefix = _CLASSIFICATION_PREFIX[self.backbone_name]
        for key, value in state.items():
            if key.startswith(_CLASSIFICATION_HEAD):
                continue
            if key.startswith(prefix):
                backbone[key[len(prefix) :]] = value
        return backbone, head


def _strip(key: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensor mapping of a loaded file (a state dict or a checkpoint dict holding one)."""
    for _ in range(2):
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is not None:
                obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise ConfigError(
            f"{path}: expected a state dict (or a dict with 'state_dict'/'model'/'network'); got {type(obj).__name__}"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ConfigError(f"{path}: the state dict holds no tensors")
    return tensors


@register_network("deeplabv3")
def build_deeplabv3(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    backbone: str = "resnet50",
    pretrained: str | Path | None = None,
    bn_momentum: float = 0.1,
) -> DeepLabV3Wrapper:
    """DeepLabV3 for 2D images: ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` logits.

    Args:
        spatial_dims: must be 2.
        in_channels: input channels (any; the first convolution is rebuilt when not 3).
        out_channels: output channels (classes).
        backbone: ``"resnet50"`` (default), ``"resnet101"`` or ``"mobilenet_v3_large"``.
        pretrained: optional local state-dict file for the backbone (see
            :meth:`DeepLabV3Wrapper.load_pretrained`); weights are never downloaded.
        bn_momentum: momentum of every batch norm's running statistics (see :class:`DeepLabV3Wrapper`).
    """
    if spatial_dims != 2:
        raise ConfigError(
            f"deeplabv3 is 2D only; got spatial_dims={spatial_dims!r}. Use 'unet' or 'unetpp' for 3D images."
        )
    model = DeepLabV3Wrapper(in_channels, out_channels, backbone=backbone, bn_momentum=bn_momentum)
    if pretrained is not None:
        model.load_pretrained(pretrained)
    return model
