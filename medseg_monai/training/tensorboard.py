"""TensorBoard events of a training run, in ``RUN/tensorboard/`` (``tensorboard --logdir runs/``).

Written through MONAI's ``TensorBoardStatsHandler`` (the training loss per step, every validation
metric per epoch) on one ``torch.utils.tensorboard.SummaryWriter``, plus the learning rate of every
step, the validation Dice per class, and every ``tensorboard_images_every`` validations an
``image | truth | prediction`` picture of the first validation case (the slice through the middle of
its labelled region for volumes). Only rank 0 of a DDP run writes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.handlers import TensorBoardStatsHandler

from medseg_monai.keys import IMAGE, LABEL, PRED
from medseg_monai.reporting import colour_table, overlay, window
from medseg_monai.training.handlers import KEY_METRIC, training_loss

__all__ = ["TENSORBOARD_DIR", "TensorBoardLogger", "validation_picture"]

logger = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
MIN_PICTURE_HEIGHT = 192  # pixels


def _classes(tensor: torch.Tensor) -> np.ndarray:
    """``(K, *spatial)`` one-hot or ``(1, *spatial)`` indices -> ``(*spatial)`` class indices."""
    array = tensor.detach().cpu()
    if array.shape[0] > 1:
        array = array.argmax(dim=0, keepdim=True)
    return array[0].numpy().astype(np.int64)


def validation_picture(
    image: torch.Tensor, truth: torch.Tensor, pred: torch.Tensor, num_classes: int, depth_index: int | None = None
) -> tuple[np.ndarray, int | None]:
    """``uint8`` RGB ``(H, 3 * W, 3)`` picture, enlarged by a whole factor to at least 192 pixels high: the image's
    first channel | with the truth | with the prediction.

    ``image`` is ``(C, *spatial)``, ``truth``/``pred`` one-hot ``(K, *spatial)`` or indices ``(1, *spatial)``.
    Volumes are cut across their last axis at ``depth_index`` (``None``: the middle of the truth's
    labelled slices; returned so later pictures show the same slice) and shown as in the QA figures.
    """
    gray = image[0].detach().float().cpu().numpy()
    labels, preds = _classes(truth), _classes(pred)
    if gray.ndim == 3:
        if depth_index is None:
            hit = np.flatnonzero(labels.any(axis=(0, 1)))
            depth_index = int(hit[len(hit) // 2]) if hit.size else gray.shape[2] // 2
        cut = lambda a: a[:, :, depth_index].T[::-1, ::-1]  # RAS: anterior up, patient's right on the left
        gray, labels, preds = cut(gray), cut(labels), cut(preds)
    else:
        gray, labels, preds = gray.T, labels.T, preds.T  # stored (W, H) like MONAI's PIL reader
    shown = window(np.ascontiguousarray(gray))
    colours = colour_table(list(range(num_classes)))
    panels = [np.repeat(shown[..., None], 3, axis=-1), overlay(shown, labels, colours), overlay(shown, preds, colours)]
    picture = np.concatenate(panels, axis=1)
    zoom = max(
        1, -(-MIN_PICTURE_HEIGHT // picture.shape[0])
    )  # small images (hippocampus crops) enlarged, pixels kept sharp
    return picture.repeat(zoom, axis=0).repeat(zoom, axis=1), depth_index


class TensorBoardLogger:
    """The TensorBoard handlers of one run (see the module docstring).

    ``attach(trainer)`` hooks the trainer and the ``evaluator``. Attach after any warm-up handler: the learning rate
    is read at ``ITERATION_STARTED``, as the step uses it.
    """

    def __init__(
        self,
        run_dir: Path,
        class_names: Sequence[str],
        images_every: int,
        evaluator: Engine,
        optimizer: torch.optim.Optimizer,
    ):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package (a dependency)

        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer = SummaryWriter(log_dir=str(self.log_dir))
        self.class_names = list(class_names)
        self.images_every = images_every
        self.evaluator = evaluator
        self.optimizer = optimizer
        self._trainer: Engine | None = None
        self._validations = 0
        self._last_epoch = -1
        self._case: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._depth: int | None = None

    def attach(self, trainer: Engine) -> None:
        """Log ``trainer``'s steps and the validations of the evaluator."""
        self._trainer = trainer
        evaluator, optimizer = self.evaluator, self.optimizer
        TensorBoardStatsHandler(
            summary_writer=self.writer,
            iteration_log=True,
            epoch_log=False,
            tag_name="train/loss",
            output_transform=training_loss,
        ).attach(trainer)
        trainer.add_event_handler(
            Events.ITERATION_STARTED,
            lambda engine: self.writer.add_scalar(
                "train/learning_rate", float(optimizer.param_groups[0]["lr"]), engine.state.iteration
            ),
        )
        TensorBoardStatsHandler(
            summary_writer=self.writer,
            iteration_log=False,
            epoch_log=True,
            global_epoch_transform=lambda _epoch: trainer.state.epoch,
        ).attach(evaluator)
        evaluator.add_event_handler(Events.ITERATION_COMPLETED(once=1), self._capture)
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, self._validation_completed)
        trainer.add_event_handler(Events.COMPLETED, lambda _engine: self.writer.flush())
        trainer.add_event_handler(Events.EXCEPTION_RAISED, lambda _engine, _err: self.writer.flush())

    def _capture(self, evaluator: Engine) -> None:
        """Keep the first validation case of this validation (image, truth, prediction) for the picture."""
        output = evaluator.state.output
        item = output[0] if isinstance(output, (list, tuple)) else output
        if not isinstance(item, dict) or PRED not in item:
            return
        self._case = (item[IMAGE], item[LABEL], item[PRED])

    def _validation_completed(self, evaluator: Engine) -> None:
        epoch = self._trainer.state.epoch if self._trainer is not None else evaluator.state.epoch
        if epoch == self._last_epoch:  # the final epoch may be validated twice
            return
        self._last_epoch = epoch
        self._validations += 1
        details = getattr(evaluator.state, "metric_details", {}).get(KEY_METRIC)
        if details is not None:
            per_class = torch.nanmean(torch.as_tensor(details, dtype=torch.float32), dim=0)
            for name, value in zip(self.class_names[1:], per_class.tolist()):
                self.writer.add_scalar(f"val_dice/{name}", value, epoch)
        last = self._trainer is not None and epoch >= self._trainer.state.max_epochs
        if (
            self._case is not None
            and self.images_every
            and (self._validations % self.images_every == 1 % self.images_every or last)
        ):
            picture, self._depth = validation_picture(
                *self._case, num_classes=len(self.class_names), depth_index=self._depth
            )
            self.writer.add_image("val/image_truth_prediction", picture, epoch, dataformats="HWC")
        self._case = None
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
