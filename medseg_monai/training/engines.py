"""The engine stage of a training run: MONAI's ``SupervisedEvaluator`` (sliding-window validation) and
``SupervisedTrainer``; their handlers are attached afterwards, from one table (:mod:`.handler_table`)."""

from __future__ import annotations

from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanDice, MeanIoUHandler, from_engine
from monai.inferers import SimpleInferer, SlidingWindowInferer
from monai.transforms import AsDiscreted, Compose

from medseg_monai.config import RunConfig
from medseg_monai.inference.plan import sliding_window
from medseg_monai.keys import LABEL, PRED
from medseg_monai.networks import SliceWindowNetwork
from medseg_monai.training.distributed import validation_share
from medseg_monai.training.handlers import IOU_METRIC, KEY_METRIC
from medseg_monai.training.loaders import validation_loader
from medseg_monai.training.parts import NetworkParts, TrainingData, TrainingEngines, TrainingSetup

__all__ = ["build_engines", "build_evaluator", "validation_inferer"]


def build_engines(setup: TrainingSetup, data: TrainingData, parts: NetworkParts) -> TrainingEngines:
    """The evaluator, then the trainer of ``parts.model`` on the training loader (both without handlers yet)."""
    train_cfg = setup.config.train
    evaluator = build_evaluator(setup, parts)
    trainer = SupervisedTrainer(
        device=setup.device,
        max_epochs=train_cfg.epochs,
        train_data_loader=data.loader,
        network=parts.model,
        optimizer=parts.optimizer,
        loss_function=parts.loss,
        epoch_length=train_cfg.iterations_per_epoch,
        inferer=SimpleInferer(),
        amp=parts.amp,
        amp_kwargs=parts.amp_kwargs,
        accumulation_steps=train_cfg.accumulate_steps,
        # nothing per item runs on the training output; splitting 4 x 96^3 batches cost ~7 % of a CPU step
        decollate=False,
    )
    return TrainingEngines(trainer, evaluator)


def build_evaluator(setup: TrainingSetup, parts: NetworkParts) -> SupervisedEvaluator:
    """Sliding-window validation of this process's cases with mean Dice (key metric, per class) and mean IoU."""
    data_cfg = setup.config.data
    loader = validation_loader(data_cfg, validation_share(setup.val_items, setup.context))
    num_classes = data_cfg.num_classes
    inferer = validation_inferer(setup.config)
    network = parts.validation_network
    if data_cfg.slice_axis is not None:  # a 2D network validated on whole volumes, slice by slice
        network = SliceWindowNetwork(network, data_cfg.slice_axis)
    return SupervisedEvaluator(
        device=setup.device,
        val_data_loader=loader,
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
        amp=parts.amp,
        amp_kwargs=parts.amp_kwargs,
    )


def validation_inferer(config: RunConfig) -> SlidingWindowInferer:
    """The sliding-window inferer of validation: the run's own windows, as prediction uses them."""
    window = sliding_window(config)
    return SlidingWindowInferer(
        roi_size=window.window_size(),
        sw_batch_size=window.sw_batch_size,
        overlap=window.overlap,
        mode=window.blend_mode,
    )
