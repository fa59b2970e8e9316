"""Network registry, the single :func:`create_network` factory, and :func:`build_network` for a run configuration."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from medseg_monai.config import RunConfig
from medseg_monai.errors import ConfigError

__all__ = ["available_networks", "backbone_parameters", "build_network", "create_network", "register_network"]

logger = logging.getLogger(__name__)

NetworkBuilder = Callable[..., torch.nn.Module]
_B = TypeVar("_B", bound=NetworkBuilder)

_REGISTRY: dict[str, NetworkBuilder] = {}
_FACTORY_ARGS = ("spatial_dims", "in_channels", "out_channels")
# options the training config may pass to any network; dropped when they ask for nothing
_NEUTRAL_DEFAULTS: dict[str, Any] = {"deep_supervision": False, "pretrained": None}


def register_network(name: str) -> Callable[[_B], _B]:
    """Decorator adding a builder to the factory under ``name``.

    The builder (a function or a ``torch.nn.Module`` class) is called as
    ``builder(spatial_dims, in_channels, out_channels, **options)`` and must return a module mapping
    ``(B, in_channels, *spatial)`` to logits ``(B, out_channels, *spatial)`` in ``eval()`` mode.
    """
    if not isinstance(name, str) or not name or name != name.strip().lower():
        raise ValueError(f"network names must be non-empty lower-case strings; got {name!r}")

    def decorator(builder: _B) -> _B:
        if name in _REGISTRY:
            raise ValueError(f"network {name!r} is already registered (by {_REGISTRY[name]!r})")
        _REGISTRY[name] = builder
        return builder

    return decorator


def available_networks() -> tuple[str, ...]:
    """Names accepted by :func:`create_network`, sorted."""
    return tuple(sorted(_REGISTRY))


def _options(builder: NetworkBuilder) -> tuple[str, ...] | None:
    """Keyword options a builder takes besides the factory arguments; ``None`` when it takes ``**kwargs``."""
    params = inspect.signature(builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return tuple(
        p.name for p in params if p.name not in _FACTORY_ARGS and p.kind is not inspect.Parameter.VAR_POSITIONAL
    )


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def create_network(name: str, spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any) -> torch.nn.Module:
    """Build a registered segmentation network.

    Args:
        name: one of :func:`available_networks` (``"unet"``, ``"unetpp"``, ``"deeplabv3"``).
        spatial_dims: 2 for ``(B, C, H, W)`` inputs, 3 for ``(B, C, H, W, D)``.
        in_channels: input channels ``C``.
        out_channels: output channels (classes, background included).
        kwargs: network options, see :func:`~medseg_monai.networks.unet.build_unet`,
            :class:`~medseg_monai.networks.unetpp.UNetPlusPlus` and
            :func:`~medseg_monai.networks.deeplab.build_deeplabv3`. ``deep_supervision=False`` and
            ``pretrained=None`` are accepted (and ignored) by every network.

    Returns:
        A module that, in ``eval()`` mode, maps ``(B, in_channels, *spatial)`` to one logits tensor
        ``(B, out_channels, *spatial)``.

    Raises:
        ValueError: unknown ``name``, invalid dims/channels, or options the network does not take.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise ConfigError(f"unknown network {name!r}; available networks: {', '.join(available_networks())}")
    if isinstance(spatial_dims, bool) or spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3; got {spatial_dims!r}")
    _check_positive_int("in_channels", in_channels)
    _check_positive_int("out_channels", out_channels)

    builder = _REGISTRY[key]
    accepted = _options(builder)
    if accepted is not None:
        for option, neutral in _NEUTRAL_DEFAULTS.items():
            if option not in accepted and option in kwargs and kwargs[option] == neutral:
                kwargs.pop(option)
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            supporting = [n for n in available_networks() if set(unknown) <= set(_options(_REGISTRY[n]) or unknown)]
            hint = f" (supported by: {', '.join(supporting)})" if supporting else ""
            raise ConfigError(
                f"network {key!r} does not take option(s) {unknown}{hint}; "
                f"its options are: {', '.join(accepted) or 'none'}"
            )
    logger.debug(
        "building %s (spatial_dims=%d, %d -> %d channels, options %s)",
        key,
        spatial_dims,
        in_channels,
        out_channels,
        kwargs,
    )
    return builder(spatial_dims, in_channels, out_channels, **kwargs)


def build_network(config: RunConfig, *, load_pretrained: bool = True) -> torch.nn.Module:
    """The network of a resolved config: ``(B, network_in_channels, *spatial) -> (B, num_classes, *spatial)``.

    Training and inference both build their network here. ``load_pretrained=False`` skips
    ``model.pretrained`` (a checkpoint's weights replace it anyway).
    """
    model_cfg, data_cfg = config.model, config.data
    options = dict(model_cfg.options)
    if model_cfg.deep_supervision:
        options["deep_supervision"] = True
    if model_cfg.pretrained and load_pretrained:
        options["pretrained"] = model_cfg.pretrained
    if data_cfg.in_channels is None or data_cfg.spatial_dims is None:
        raise ValueError("data.in_channels and data.spatial_dims must be resolved before building the network")
    return create_network(
        model_cfg.name, data_cfg.spatial_dims, data_cfg.network_in_channels, data_cfg.num_classes, **options
    )


def backbone_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters of the network's pretrainable ``backbone`` submodule (empty list when it has none).

    ``DataParallel``/``DistributedDataParallel`` wrappers are looked through. Used to freeze the
    backbone for the first epochs of a two-stage fine-tuning schedule.
    """
    inner = getattr(model, "module", model)
    backbone = getattr(inner, "backbone", None)
    if not isinstance(backbone, torch.nn.Module):
        return []
    return list(backbone.parameters())
