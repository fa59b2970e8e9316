"""The data stage of a training run: the training dataset, its sampler and loader, and the validation loader."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.data import CacheDataset, DataLoader, DistributedSampler, ThreadDataLoader, list_data_collate
from torch.utils.data import RandomSampler, Sampler

from medseg_monai.config import DataConfig, TrainConfig
from medseg_monai.training.compilation import resolve_compile
from medseg_monai.training.distributed import DistributedContext
from medseg_monai.training.parts import TrainingData, TrainingSetup
from medseg_monai.transforms.chains import build_train_transforms, build_val_transforms

__all__ = ["build_training_data", "validation_loader"]


def build_training_data(setup: TrainingSetup) -> TrainingData:
    """The cached training dataset, this process's sampler and loader, and whether the network is compiled."""
    data_cfg, train_cfg, context = setup.config.data, setup.config.train, setup.context
    dataset = CacheDataset(
        setup.train_items,
        build_train_transforms(data_cfg),
        cache_rate=data_cfg.cache_rate,
        num_workers=data_cfg.num_workers or None,
        progress=False,
    )
    # each process draws its own augmentations; the sampler's shuffling is shared (same seed)
    generator = torch.Generator().manual_seed(train_cfg.seed + context.rank)
    sampler = _train_sampler(dataset, train_cfg, context, generator)
    planned_steps = train_cfg.epochs * (train_cfg.iterations_per_epoch or -(-len(dataset) // train_cfg.batch_size))
    compiled = resolve_compile(
        train_cfg.compile,
        setup.device,
        planned_steps,
        train_cfg.time_budget_min,
        context.enabled,
        recompiles=train_cfg.freeze_backbone_epochs > 0,
    )
    # a compiled network sees one batch shape only: a short last batch would compile it again
    drop_last = compiled and len(dataset) > train_cfg.batch_size
    loader = _train_loader(dataset, data_cfg, train_cfg, sampler, generator, drop_last)
    return TrainingData(dataset, loader, generator, compiled, train_cfg.iterations_per_epoch or len(loader))


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


def _train_loader(
    dataset: CacheDataset,
    data_cfg: DataConfig,
    train_cfg: TrainConfig,
    sampler: Sampler | None,
    generator: torch.Generator,
    drop_last: bool,
) -> DataLoader:
    """The training loader: in a background thread without workers, else MONAI's multi-process loader."""
    options = dict(
        batch_size=train_cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        collate_fn=list_data_collate,
        generator=generator,
        drop_last=drop_last,
    )
    if data_cfg.num_workers == 0:  # the next batch is prepared in a thread while the network trains on this one
        return ThreadDataLoader(dataset, num_workers=0, buffer_size=1, **options)
    return DataLoader(dataset, num_workers=data_cfg.num_workers, **options)


def validation_loader(data_cfg: DataConfig, val_items: Sequence[dict]) -> DataLoader:
    """The cached validation cases, one whole case per batch."""
    dataset = CacheDataset(
        val_items,
        build_val_transforms(data_cfg),
        cache_rate=data_cfg.cache_rate,
        num_workers=data_cfg.num_workers or None,
        progress=False,
    )
    return DataLoader(dataset, batch_size=1, num_workers=data_cfg.num_workers)
