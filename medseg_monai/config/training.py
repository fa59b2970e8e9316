"""The ``model`` and ``train`` sections of a run: which network, and how it is optimised."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from medseg_monai.config.fields import check_choices, documented, setting
from medseg_monai.config.types import Compile, DistBackend, Optimizer, Scheduler
from medseg_monai.errors import ConfigError

__all__ = ["ModelConfig", "TrainConfig"]


@documented
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network to build (see :func:`medseg_monai.networks.create_network`)."""

    name: str = setting("unet", help="Registered network name: `unet`, `unetpp` or `deeplabv3`.", flag="--network")
    options: Mapping[str, Any] = setting(
        default_factory=dict,
        help='Extra keyword arguments of the network as a JSON object, e.g. `{"channels": [8, 16, 32]}`.',
        flag="--network-options",
        metavar="JSON",
    )
    deep_supervision: bool = setting(
        False, help="Train `unetpp` on all its decoder heads (inference always uses one head)."
    )
    pretrained: str | None = setting(
        None, help="Local weights file (state dict) for the DeepLabV3 backbone; nothing is ever downloaded."
    )


@documented
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule."""

    epochs: int = setting(50, help="Passes over the training set (an epoch is `iterations_per_epoch` steps when set).")
    iterations_per_epoch: int | None = setting(
        None, help="Fixed number of steps per epoch; `null` is one pass over the data."
    )
    batch_size: int = setting(4, help="Images per step (each contributes `samples_per_image` patches).")
    optimizer: Optimizer = setting("adamw", help="Optimiser.")
    learning_rate: float = setting(1e-3, help="Initial learning rate.", aliases=("--lr",))
    weight_decay: float = setting(1e-5, help="Weight decay of the optimiser.")
    scheduler: Scheduler = setting(
        "cosine",
        help="Learning-rate schedule: `cosine` (down to 1 % over `epochs`), `poly` (power 0.9), `step` (times "
        "`lr_gamma` "
        "every `step_size` epochs), `plateau` (times `lr_gamma` when the validation mean Dice has not improved for "
        "`plateau_patience` validations; `ReduceLROnPlateau`) or `none`.",
    )
    step_size: int = setting(30, help="Epochs between the drops of `scheduler=step`.")
    lr_gamma: float = setting(0.1, help="Factor of each learning-rate drop of `step` and `plateau`.")
    plateau_patience: int = setting(5, help="Validations without improvement before `plateau` drops the learning rate.")
    warmup_epochs: float = setting(
        0.0,
        help="Linear warm-up: the learning rate rises from 0 to the schedule's over this many epochs (per step; "
        "fractions "
        "allowed), then the schedule goes on as if there had been none.",
    )
    early_stop_patience: int | None = setting(
        None,
        help="Stop when the validation mean Dice has not improved by more than `early_stop_min_delta` for this many "
        "validations (ignite `EarlyStopping`); `null` never stops early.",
        metavar="N",
    )
    early_stop_min_delta: float = setting(
        0.0, help="Improvement of the validation mean Dice that resets `early_stop_patience`."
    )
    accumulate_steps: int = setting(
        1,
        help="Gradient accumulation: the optimiser steps once every N batches, so the effective batch is N x "
        "`batch_size` "
        "(logged at the start).",
        metavar="N",
    )
    grad_clip: float | None = setting(
        None,
        help="Clip the gradients' global L2 norm to this before every optimiser step; `null`: no clipping.",
        metavar="NORM",
    )
    tensorboard: bool = setting(
        True,
        help="Write TensorBoard events into `RUN/tensorboard/`: training loss and learning rate per step, validation "
        "metrics per epoch, image | truth | prediction of a fixed validation case every `tensorboard_images_every` "
        "validations.",
    )
    tensorboard_images_every: int = setting(
        5, help="Validations between the image grids written to TensorBoard (0: none).", metavar="N"
    )
    val_interval: int = setting(1, help="Validate every N epochs (and always after the last).")
    compile: Compile = setting(
        "auto",
        help="`torch.compile` the network for training (faster steps after a one-off compilation): `auto` compiles "
        "single-process runs of >= 400 steps or a time budget >= 10 min, where a 30-minute recipe run compiled "
        "reached more epochs at the same Dice than one not compiled (docs/performance.md).",
    )
    seed: int = setting(0, help="Seed for weights, sampling and augmentation.")
    time_budget_min: float | None = setting(
        None, help="Stop after the epoch that crosses this wall-clock budget in minutes."
    )
    schedule_by_time: bool = setting(
        False,
        help="With `time_budget_min`: the learning rate follows the elapsed share of the budget (cosine or poly of "
        "elapsed / budget) rather than the epoch count, so it anneals as the budget ends however fast the epochs "
        "run; `epochs` stays an upper bound.",
    )
    freeze_backbone_epochs: int = setting(
        0,
        help="DeepLabV3 two-stage schedule: epochs with a frozen backbone before all layers train at "
        "`learning_rate * finetune_lr_factor`.",
    )
    finetune_lr_factor: float = setting(0.1, help="Learning-rate factor of the second stage.")
    distributed: bool = setting(
        False,
        help="Require a multi-process `torchrun` launch and train with `DistributedDataParallel`; a launch with "
        "`WORLD_SIZE > 1` switches it on by itself.",
    )
    dist_backend: DistBackend = setting(
        "auto", help="Process-group backend: `auto` is `nccl` on CUDA and `gloo` on CPU."
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.val_interval < 1:
            raise ConfigError(f"val_interval must be >= 1, got {self.val_interval}")
        if self.iterations_per_epoch is not None and self.iterations_per_epoch < 1:
            raise ConfigError(f"iterations_per_epoch must be >= 1, got {self.iterations_per_epoch}")
        if self.step_size < 1:
            raise ConfigError(f"step_size must be >= 1, got {self.step_size}")
        if not 0.0 < self.lr_gamma < 1.0:
            raise ConfigError(f"lr_gamma must be in (0, 1), got {self.lr_gamma}")
        if self.plateau_patience < 0:
            raise ConfigError(f"plateau_patience must be >= 0, got {self.plateau_patience}")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs}")
        if self.early_stop_patience is not None and self.early_stop_patience < 1:
            raise ConfigError(f"early_stop_patience must be >= 1 (or null), got {self.early_stop_patience}")
        if self.early_stop_min_delta < 0:
            raise ConfigError(f"early_stop_min_delta must be >= 0, got {self.early_stop_min_delta}")
        if self.accumulate_steps < 1:
            raise ConfigError(f"accumulate_steps must be >= 1, got {self.accumulate_steps}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be positive (or null), got {self.grad_clip}")
        if self.tensorboard_images_every < 0:
            raise ConfigError(f"tensorboard_images_every must be >= 0, got {self.tensorboard_images_every}")
        if self.schedule_by_time and self.scheduler in ("step", "plateau"):
            raise ConfigError(
                f"schedule_by_time follows the budget with cosine, poly or none, not scheduler={self.scheduler!r}"
            )
