"""Training: MONAI ``SupervisedTrainer`` + ``SupervisedEvaluator`` built from one :class:`RunConfig`.

A run folder receives ``config.json`` (the resolved config), ``splits.json``, ``metrics.csv``,
``curves.png`` and ``checkpoints/{best,last,last.prev}.pt``. ``resume=True`` continues from ``last.pt`` (or
``last.prev.pt`` when ``last.pt`` is unusable) with every state an uninterrupted run would have had, random
states included: see :mod:`medseg_monai.training.resume`.

Launched by ``torchrun`` with ``WORLD_SIZE > 1`` (or with ``train.distributed``), every process trains
a ``DistributedDataParallel`` replica on its ``DistributedSampler`` share of the training cases
(``gloo`` on CPU, ``nccl`` on CUDA, one GPU per ``LOCAL_RANK``). Validation is split across the processes
(MONAI gathers the metrics); rank 0 alone writes the run folder, and checkpoints hold the unwrapped
network's weights.
"""

from __future__ import annotations

import dataclasses
import datetime
import gc
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from ignite.engine import Events
from monai.data import (
    CacheDataset,
    DataLoader,
    DistributedSampler,
    ThreadDataLoader,
    list_data_collate,
    partition_dataset,
)
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanDice, MeanIoUHandler, StatsHandler, ValidationHandler, from_engine
from monai.inferers import SimpleInferer, SlidingWindowInferer
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.transforms import AsDiscreted, Compose
from torch.utils.data import RandomSampler, Sampler

from medseg_monai.config import RunConfig, TrainConfig
from medseg_monai.data.datalist import discover_pairs, load_datalist, split_pairs
from medseg_monai.data.properties import check_pairs, resolve_data_config
from medseg_monai.errors import ConfigError
from medseg_monai.keys import IMAGE, LABEL, PRED
from medseg_monai.networks import SliceWindowNetwork, backbone_parameters, build_network
from medseg_monai.networks.precision import FastForward, resolve_memory_format, resolve_precision
from medseg_monai.training.compilation import compile_network, resolve_compile
from medseg_monai.training.handlers import (
    IOU_METRIC,
    KEY_METRIC,
    BackboneUnfreezer,
    RunLogger,
    TimeBudgetSchedule,
    training_loss,
)
from medseg_monai.training.resume import RngState, ScalerState, open_for_resume, restore_states
from medseg_monai.training.schedules import (
    GradientClipper,
    LinearWarmup,
    build_scheduler,
    early_stopping,
    schedule_handlers,
    stopped_early,
)
from medseg_monai.training.tensorboard import TensorBoardLogger
from medseg_monai.transforms.chains import build_train_transforms, build_val_transforms
from medseg_monai.utils import atomic_write_text, resolve_device, set_seed

__all__ = ["DistributedContext", "TrainResult", "make_splits", "setup_distributed", "train"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Where a finished run put its outputs, and how well it did."""

    run_dir: Path
    config: RunConfig
    best_metric: float
    best_epoch: int
    epochs_run: int
    history: list[dict]

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def metrics_csv(self) -> Path:
        return self.run_dir / "metrics.csv"


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a (possibly single-process) training job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(config: RunConfig) -> tuple[DistributedContext, torch.device]:
    """Join the ``torchrun`` process group when launched with ``WORLD_SIZE > 1`` or ``train.distributed``.

    Returns the context and this process's device (``cuda:LOCAL_RANK`` on GPUs). The process group is
    created here unless the caller already did (then ``owns_group`` is False and it is left open).

    Raises:
        ValueError: ``train.distributed`` without a ``torchrun`` launch, or ``nccl`` without CUDA.
    """
    cfg = config.train
    world_env = os.environ.get("WORLD_SIZE")
    if not cfg.distributed and int(world_env or 1) <= 1 and not dist.is_initialized():
        return DistributedContext(), resolve_device(cfg.device)
    if world_env is None and not dist.is_initialized():
        raise ConfigError(
            "train.distributed is set but WORLD_SIZE/RANK are not: launch with "
            "'torchrun --nproc_per_node N ...' or set train.distributed to false"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = cfg.dist_backend if cfg.dist_backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError(f"train.dist_backend 'nccl' needs CUDA but training runs on {device}; use 'gloo' or 'auto'")
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=60))
    context = DistributedContext(dist.get_rank(), local_rank, dist.get_world_size(), True, owns_group)
    logger.info(
        "distributed training: rank %d of %d on %s (%s)", context.rank, context.world_size, device, dist.get_backend()
    )
    return context, device


def make_splits(config: RunConfig) -> tuple[list[dict], list[dict]]:
    """Training and validation cases: from a datalist JSON, an explicit validation set, or a seeded split."""
    data_cfg = config.data
    if data_cfg.datalist:
        train_items = load_datalist(data_cfg.datalist, key="training")
        try:
            val_items = load_datalist(data_cfg.datalist, key="validation")
        except (KeyError, ValueError):
            val_items = []
        if val_items:
            return train_items, val_items
        return split_pairs(train_items, data_cfg.val_fraction, data_cfg.seed)
    if not data_cfg.data_dir:
        raise ConfigError("data.data_dir (or data.datalist) must name the training data")
    pairs = discover_pairs(data_cfg.data_dir)
    if data_cfg.val_dir:
        return pairs, discover_pairs(data_cfg.val_dir)
    return split_pairs(pairs, data_cfg.val_fraction, data_cfg.seed)


def _optimizer(config: RunConfig, network: torch.nn.Module) -> torch.optim.Optimizer:
    cfg = config.train
    params = network.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.learning_rate, momentum=0.99, nesterov=True, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def _save_splits(run_dir: Path, train_items: Sequence[dict], val_items: Sequence[dict]) -> None:
    def names(items: Sequence[dict]) -> list[dict]:
        def image(value: object) -> str | list[str]:  # a case of several channel files keeps its list
            return [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value)

        return [
            {"name": item.get("name", Path(str(item[IMAGE])).name), IMAGE: image(item[IMAGE]), LABEL: str(item[LABEL])}
            for item in items
        ]

    atomic_write_text(
        run_dir / "splits.json", json.dumps({"training": names(train_items), "validation": names(val_items)}, indent=2)
    )


def train(config: RunConfig, run_dir: str | Path, *, resume: bool = False) -> TrainResult:
    """Train a network as described by ``config`` into ``run_dir``.

    Args:
        config: run configuration; ``None`` data fields are resolved from the training data.
        run_dir: output folder (created). With ``resume=True`` it must hold ``checkpoints/last.pt``.
        resume: continue from the last completed epoch (network, optimiser, scheduler, history, best metric,
            time budget spent, random states); ``config.train.epochs`` may extend the run.

    Under ``torchrun`` (see the module docstring) every process calls this with the same arguments
    and gets the same result back.

    Returns:
        A :class:`TrainResult` with the best validation mean Dice (foreground classes) and its epoch.
    """
    context, device = setup_distributed(config)
    try:
        return _train(config, Path(run_dir), resume, context, device)
    finally:
        if context.owns_group and dist.is_initialized():
            # The engines hold the DDP model in reference cycles; free them (and the gloo work they keep) while the
            # process group is alive, else they are freed at interpreter exit and gloo's threads abort the process.
            gc.collect()
            dist.destroy_process_group()


def _train(
    config: RunConfig, run_dir: Path, resume: bool, context: DistributedContext, device: torch.device
) -> TrainResult:
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = None
    if resume:
        checkpoint = open_for_resume(run_dir, context.is_main)
        saved = RunConfig.from_dict(checkpoint["config"])
        config = dataclasses.replace(saved, train=dataclasses.replace(saved.train, epochs=config.train.epochs))
    set_seed(config.train.seed)

    train_items, val_items = make_splits(config)
    if not val_items:
        raise ConfigError("no validation cases: set data.val_fraction > 0 or data.val_dir")
    check_pairs(list(train_items) + list(val_items))
    config = dataclasses.replace(config, data=resolve_data_config(config.data, train_items))
    if context.is_main:
        config.save(run_dir / "config.json")
        _save_splits(run_dir, train_items, val_items)
        logger.info(
            "%d training and %d validation cases; classes %s", len(train_items), len(val_items), config.data.label_names
        )

    data_cfg, train_cfg = config.data, config.train
    train_ds = CacheDataset(
        train_items,
        build_train_transforms(data_cfg),
        cache_rate=data_cfg.cache_rate,
        num_workers=data_cfg.num_workers or None,
        progress=False,
    )
    # each process draws its own augmentations; the sampler's shuffling is shared (same seed)
    generator = torch.Generator().manual_seed(train_cfg.seed + context.rank)
    sampler = _train_sampler(train_ds, train_cfg, context, generator)
    planned_steps = train_cfg.epochs * (train_cfg.iterations_per_epoch or -(-len(train_ds) // train_cfg.batch_size))
    compiled = resolve_compile(
        train_cfg.compile,
        device,
        planned_steps,
        train_cfg.time_budget_min,
        context.enabled,
        recompiles=train_cfg.freeze_backbone_epochs > 0,
    )
    # a compiled network sees one batch shape only: a short last batch would compile it again
    loader_options = dict(
        batch_size=train_cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=list_data_collate,
        generator=generator,
        drop_last=compiled and len(train_ds) > train_cfg.batch_size,
    )
    if data_cfg.num_workers == 0:  # the next batch is prepared in a thread while the network trains on this one
        train_loader = ThreadDataLoader(train_ds, num_workers=0, buffer_size=1, **loader_options)
    else:
        train_loader = DataLoader(train_ds, num_workers=data_cfg.num_workers, **loader_options)

    network = build_network(config).to(device)
    memory_format = resolve_memory_format(train_cfg.memory_format, data_cfg.spatial_dims, config.model.name)
    network = network.to(memory_format=memory_format)
    optimizer = _optimizer(config, network)
    by_time = train_cfg.schedule_by_time and train_cfg.time_budget_min is not None
    scheduler = None if by_time else build_scheduler(train_cfg, optimizer)
    model: torch.nn.Module = network
    if context.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            network,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=train_cfg.freeze_backbone_epochs > 0,
        )
    loss: torch.nn.Module = DiceCELoss(to_onehot_y=True, softmax=True)
    if config.model.deep_supervision:
        loss = DeepSupervisionLoss(loss)
    dtype = resolve_precision(train_cfg.precision, device)
    amp = dtype is not None and device.type == "cuda"  # MONAI's engines autocast (with a grad scaler) on CUDA only
    forward_net = network
    if compiled:
        model = compile_network(model)
    if (dtype is not None and not amp) or memory_format is not torch.contiguous_format:
        model = FastForward(model, device, None if amp else dtype, memory_format)
        forward_net = FastForward(network, device, None if amp else dtype, memory_format)

    handlers, evaluator_handlers = schedule_handlers(scheduler, KEY_METRIC)
    evaluator = _build_evaluator(config, forward_net, _validation_share(val_items, context), device, amp, dtype)
    handlers.append(ValidationHandler(validator=evaluator, interval=train_cfg.val_interval, epoch_level=True))
    if logger.isEnabledFor(logging.INFO):  # `medseg -q`: no per-epoch lines
        handlers.append(_epoch_stats())
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=train_cfg.epochs,
        train_data_loader=train_loader,
        network=model,
        optimizer=optimizer,
        loss_function=loss,
        epoch_length=train_cfg.iterations_per_epoch,
        inferer=SimpleInferer(),
        train_handlers=handlers,
        amp=amp,
        amp_kwargs={"dtype": dtype} if amp else None,
        accumulation_steps=train_cfg.accumulate_steps,
        decollate=False,  # nothing per item runs on the training output; splitting 4 x 96^3 batches cost ~7 % of a CPU step
    )

    rng = RngState([train_ds, evaluator.data_loader.dataset], generator, context.rank, context.world_size)
    state_objects = {"network": network, "optimizer": optimizer, "scaler": ScalerState(trainer), "rng": rng}
    if scheduler is not None:
        state_objects["scheduler"] = scheduler
    state_objects["scaler"].attach()
    for handler in evaluator_handlers:
        handler.attach(evaluator)
    stopper = early_stopping(train_cfg, trainer, KEY_METRIC)
    if stopper is not None:
        evaluator.add_event_handler(Events.COMPLETED, stopper)
        state_objects["early_stopping"] = stopper
    if train_cfg.grad_clip is not None:
        GradientClipper(network.parameters(), train_cfg.grad_clip).attach(trainer)
    steps_per_epoch = train_cfg.iterations_per_epoch or len(train_loader)
    if context.is_main:
        patches = train_cfg.batch_size * data_cfg.samples_per_image
        logger.info(
            "effective batch: %d patches per optimiser step (batch %d x %d patches x %d accumulated x %d processes); "
            "%d steps per epoch",
            patches * train_cfg.accumulate_steps * context.world_size,
            train_cfg.batch_size,
            data_cfg.samples_per_image,
            train_cfg.accumulate_steps,
            context.world_size,
            steps_per_epoch,
        )

    history, best_metric, best_epoch, elapsed_s = [], -1.0, 0, None
    if checkpoint is not None:
        history = list(checkpoint.get("history", []))
        best_metric = float(checkpoint.get("best_metric", -1.0))
        best_epoch = int(checkpoint.get("best_epoch", 0))
        done = int(checkpoint["trainer"]["epoch"])
        elapsed_s = checkpoint["trainer"].get("elapsed_s")
        trainer.state.epoch = done
        trainer.state.iteration = int(checkpoint["trainer"]["iteration"])
        logger.info("resuming %s after epoch %d", run_dir, done)

    run_logger = None
    if context.is_main:
        # under DDP the time budget is decided by _DistributedEpochEnd so that all processes agree
        budget = None if context.enabled else train_cfg.time_budget_min
        run_logger = RunLogger(
            run_dir,
            evaluator,
            config.data.label_names,
            state_objects,
            config.to_dict(),
            budget,
            history,
            best_metric,
            best_epoch,
            elapsed_s,
        )
    time_schedule = None
    if by_time:
        time_schedule = TimeBudgetSchedule(
            optimizer, train_cfg.scheduler, run_logger, 60.0 * train_cfg.time_budget_min, device, context.enabled
        )
        state_objects["time_schedule"] = time_schedule
        time_schedule.attach(trainer)
    if (
        train_cfg.freeze_backbone_epochs > 0
    ):  # before the RunLogger, so a checkpoint of the last frozen epoch resumes unfrozen
        frozen = backbone_parameters(network)
        if not frozen:
            raise ConfigError(f"train.freeze_backbone_epochs is set but network {config.model.name!r} has no backbone")
        BackboneUnfreezer(
            frozen,
            optimizer,
            time_schedule or scheduler,
            train_cfg.freeze_backbone_epochs,
            train_cfg.finetune_lr_factor,
        ).attach(trainer)
    if context.enabled:
        _DistributedEpochEnd(evaluator, run_logger, train_cfg.time_budget_min, device, rng).attach(trainer)
    if run_logger is not None:
        run_logger.attach(trainer)
    if train_cfg.warmup_epochs > 0:
        LinearWarmup(optimizer, train_cfg.warmup_epochs, steps_per_epoch, train_cfg.accumulate_steps).attach(trainer)
    tensorboard = None
    if context.is_main and train_cfg.tensorboard:  # after the warm-up: it logs the rate each step uses
        tensorboard = TensorBoardLogger(run_dir, config.data.label_names, train_cfg.tensorboard_images_every)
        tensorboard.attach(trainer, evaluator, optimizer)
    if context.is_main and logger.isEnabledFor(logging.INFO):  # `medseg -q`: warnings only, no bar
        _attach_progress_bar(trainer)

    if checkpoint is not None:
        restore_states(checkpoint, state_objects)  # last: building the loaders and the network drew random numbers
        if run_logger is not None:
            run_logger.write_outputs()  # a crash may have come between last.pt and metrics.csv
    try:
        if (
            trainer.state.epoch < train_cfg.epochs
            and not _budget_spent(checkpoint, train_cfg)
            and not _stopped_early(checkpoint, train_cfg)
        ):
            trainer.run()
    finally:
        if tensorboard is not None:
            tensorboard.close()
    outcome = [(run_logger.best_metric, run_logger.best_epoch, run_logger.history) if run_logger is not None else None]
    if context.enabled:
        dist.broadcast_object_list(outcome, src=0)
    best_metric, best_epoch, history = outcome[0]
    return TrainResult(
        run_dir=run_dir,
        config=config,
        best_metric=best_metric,
        best_epoch=best_epoch,
        epochs_run=len(history),
        history=history,
    )


def _budget_spent(checkpoint: dict | None, train_cfg: TrainConfig) -> bool:
    """Whether the resumed run had already stopped on its time budget (no further epoch is due)."""
    if checkpoint is None or train_cfg.time_budget_min is None:
        return False
    elapsed = checkpoint["trainer"].get("elapsed_s")
    spent = elapsed is not None and float(elapsed) >= 60.0 * train_cfg.time_budget_min
    if spent:
        logger.info(
            "time budget of %.1f min was spent by epoch %d; nothing left to train",
            train_cfg.time_budget_min,
            int(checkpoint["trainer"]["epoch"]),
        )
    return spent


def _stopped_early(checkpoint: dict | None, train_cfg: TrainConfig) -> bool:
    """Whether the resumed run had already stopped early (no further epoch is due)."""
    stopped = checkpoint is not None and stopped_early(checkpoint.get("early_stopping"), train_cfg.early_stop_patience)
    if stopped:
        logger.info("the run stopped early after epoch %d; nothing left to train", int(checkpoint["trainer"]["epoch"]))
    return stopped


def _build_evaluator(
    config: RunConfig,
    network: torch.nn.Module,
    val_items: Sequence[dict],
    device: torch.device,
    amp: bool,
    dtype: torch.dtype | None,
) -> SupervisedEvaluator:
    """Sliding-window validation with mean Dice (key metric, per-class details) and mean IoU."""
    data_cfg = config.data
    val_ds = CacheDataset(
        val_items,
        build_val_transforms(data_cfg),
        cache_rate=data_cfg.cache_rate,
        num_workers=data_cfg.num_workers or None,
        progress=False,
    )
    val_loader = DataLoader(val_ds, batch_size=1, num_workers=data_cfg.num_workers)
    num_classes = data_cfg.num_classes
    inferer = SlidingWindowInferer(
        roi_size=config.window_size(),
        sw_batch_size=config.infer.sw_batch_size,
        overlap=config.window_overlap,
        mode=config.infer.blend_mode,
    )
    if data_cfg.slice_axis is not None:  # a 2D network validated on whole volumes, slice by slice
        network = SliceWindowNetwork(network, data_cfg.slice_axis)
    return SupervisedEvaluator(
        device=device,
        val_data_loader=val_loader,
        network=network,
        inferer=inferer,
        postprocessing=Compose(
            [AsDiscreted(keys=PRED, argmax=True, to_onehot=num_classes), AsDiscreted(keys=LABEL, to_onehot=num_classes)]
        ),
        key_val_metric={
            KEY_METRIC: MeanDice(
                include_background=False, output_transform=from_engine([PRED, LABEL]), save_details=True
            )
        },
        additional_metrics={
            IOU_METRIC: MeanIoUHandler(include_background=False, output_transform=from_engine([PRED, LABEL]))
        },
        amp=amp,
        amp_kwargs={"dtype": dtype} if amp else None,
    )


def _validation_share(val_items: Sequence[dict], context: DistributedContext) -> Sequence[dict]:
    """This process's validation cases: a shard under DDP (metrics are gathered across processes by
    MONAI), all of them when there are fewer cases than processes (duplicates leave the means unchanged)."""
    if not context.enabled or len(val_items) < context.world_size:
        return val_items
    return partition_dataset(list(val_items), num_partitions=context.world_size, shuffle=False, even_divisible=False)[
        context.rank
    ]


def _train_sampler(
    dataset: CacheDataset, train_cfg: TrainConfig, context: DistributedContext, generator: torch.Generator
) -> Sampler | None:
    """The order of training cases: ``None`` shuffles one pass per epoch.

    With ``iterations_per_epoch`` set, one sampler pass is one epoch (reshuffled every
    ``len(dataset)`` draws), so the loader's background thread keeps the next batch ready across
    passes; a loader that ended every few steps on a small training set restarted cold each time.
    """
    if context.enabled:
        return DistributedSampler(
            dataset,
            shuffle=True,
            even_divisible=True,
            num_replicas=context.world_size,
            rank=context.rank,
            seed=train_cfg.seed,
        )
    if train_cfg.iterations_per_epoch is None:
        return None
    return RandomSampler(
        dataset,
        replacement=False,
        num_samples=train_cfg.iterations_per_epoch * train_cfg.batch_size,
        generator=generator,
    )


class _DistributedEpochEnd:
    """Keep the processes of a DDP run in step at each epoch end.

    Validation is collective (every process evaluates its shard and MONAI gathers the metrics), so the
    extra validation of the final epoch and the time-budget stop are decided once, on rank 0, and
    broadcast, before rank 0's :class:`RunLogger` writes the epoch with every process's random states.
    """

    def __init__(
        self,
        evaluator: SupervisedEvaluator,
        run_logger: RunLogger | None,
        time_budget_min: float | None,
        device: torch.device,
        rng: RngState,
    ):
        self.evaluator = evaluator
        self.rng = rng
        self.run_logger = run_logger
        self.budget_s = None if time_budget_min is None else 60.0 * time_budget_min
        self.device = device

    def attach(self, trainer: SupervisedTrainer) -> None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: SupervisedTrainer) -> None:
        spent = self.run_logger is not None and self.budget_s is not None and self.run_logger.elapsed_s >= self.budget_s
        flag = torch.tensor([int(spent)], device=self.device)
        dist.broadcast(flag, src=0)
        spent = bool(flag.item())
        epoch = engine.state.epoch
        if (spent or epoch >= engine.state.max_epochs) and self.evaluator.state.epoch != epoch:
            self.evaluator.run(epoch)
        self.rng.gather()
        if spent and epoch < engine.state.max_epochs:
            logger.info("time budget of %.1f min spent after epoch %d; stopping", self.budget_s / 60, epoch)
            engine.terminate()


def _epoch_stats() -> StatsHandler:
    """MONAI's per-epoch loss line, logged through this package's logger (MONAI's ``get_logger`` gives the logger
    its own stdout handler and level, which would print every line twice and ignore ``-q``)."""
    name = f"{__name__}.stats"
    stats = StatsHandler(
        name=name, tag_name="train_loss", output_transform=from_engine(["loss"], first=True), iteration_log=False
    )
    stats_logger = logging.getLogger(name)
    for handler in list(stats_logger.handlers):
        stats_logger.removeHandler(handler)
    stats_logger.setLevel(logging.NOTSET)
    return stats


def _attach_progress_bar(trainer: SupervisedTrainer) -> None:
    from ignite.handlers import ProgressBar

    ProgressBar(persist=False, desc="train").attach(trainer, output_transform=_loss_of)


def _loss_of(output: dict) -> dict[str, float]:
    return {"loss": training_loss(output)}
