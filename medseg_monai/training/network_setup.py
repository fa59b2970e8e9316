"""The network stage of a training run: the network on its device, its optimiser, schedule and loss, and the
model the trainer runs (a DDP replica, compiled, in the memory format and precision of the run)."""

from __future__ import annotations

import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from medseg_monai.config import RunConfig
from medseg_monai.networks import build_network
from medseg_monai.networks.precision import FastForward, resolve_memory_format, resolve_precision
from medseg_monai.training.compilation import compile_network
from medseg_monai.training.parts import NetworkParts, TrainingData, TrainingSetup
from medseg_monai.training.schedules import build_scheduler, schedules_by_time

__all__ = ["build_network_parts"]


def build_network_parts(setup: TrainingSetup, data: TrainingData) -> NetworkParts:
    """The network, its optimiser, schedule and loss, and the wrapped models the trainer and evaluator run."""
    config, device, train_cfg = setup.config, setup.device, setup.config.train
    network = build_network(config).to(device)
    memory_format = resolve_memory_format(config.runtime.memory_format, config.data.spatial_dims, config.model.name)
    network = network.to(memory_format=memory_format)
    optimizer = _optimizer(config, network)
    scheduler = None if schedules_by_time(train_cfg) else build_scheduler(train_cfg, optimizer)
    model = _replica(network, setup)
    loss = _loss(config)
    dtype = resolve_precision(config.runtime.precision, device)
    amp = dtype is not None and device.type == "cuda"  # MONAI's engines autocast (with a grad scaler) on CUDA only
    validation_network = network
    if data.compiled:
        model = compile_network(model)
    if (dtype is not None and not amp) or memory_format is not torch.contiguous_format:
        model = FastForward(model, device, None if amp else dtype, memory_format)
        validation_network = FastForward(network, device, None if amp else dtype, memory_format)
    return NetworkParts(network, model, validation_network, optimizer, scheduler, loss, amp, dtype)


def _optimizer(config: RunConfig, network: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimiser of ``train.optimizer`` over all of the network's parameters."""
    cfg = config.train
    params = network.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.learning_rate, momentum=0.99, nesterov=True, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def _replica(network: torch.nn.Module, setup: TrainingSetup) -> torch.nn.Module:
    """``network`` as this process trains it: a ``DistributedDataParallel`` replica under DDP, else itself."""
    if not setup.context.enabled:
        return network
    device = setup.device
    return torch.nn.parallel.DistributedDataParallel(
        network,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=setup.config.train.freeze_backbone_epochs > 0,
    )


def _loss(config: RunConfig) -> torch.nn.Module:
    """Dice + cross-entropy, over every output scale for a deeply supervised network."""
    loss: torch.nn.Module = DiceCELoss(to_onehot_y=True, softmax=True)
    if config.model.deep_supervision:
        loss = DeepSupervisionLoss(loss)
    return loss
