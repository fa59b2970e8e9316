"""Frozen configuration shared by the CLI, the Python API and the bundles.

:mod:`~medseg_monai.config.sections` holds :class:`RunConfig` with its ``data`` (:mod:`~medseg_monai.config.data`),
``model``/``train`` (:mod:`~medseg_monai.config.training`), ``infer`` (:mod:`~medseg_monai.config.inference`)
and ``runtime`` (:mod:`~medseg_monai.config.runtime`) sections, :mod:`~medseg_monai.config.batch` the
:class:`BatchOptions` of a batch of predictions, :mod:`~medseg_monai.config.checks` the :class:`InputChecks`
of images entering the package; :mod:`~medseg_monai.config.fields` the machinery that reads each field's
declaration back (help text, choices, flags) for the CLI, the validation and the documentation.
"""

from medseg_monai.config.batch import BatchOptions, ProbabilityDtype
from medseg_monai.config.checks import InputChecks
from medseg_monai.config.data import DataConfig
from medseg_monai.config.fields import FieldSpec, field_specs, parse_override, replace_fields, to_jsonable
from medseg_monai.config.inference import InferConfig
from medseg_monai.config.runtime import RuntimeConfig
from medseg_monai.config.sections import SECTIONS, RunConfig, dataset_fields
from medseg_monai.config.training import ModelConfig, TrainConfig
from medseg_monai.config.types import (
    CONFIG_VERSION,
    DEFAULT_PATCH_SIZE,
    INTENSITY_MODES,
    OUTPUT_FORMATS,
    SLICES_PER_WINDOW,
)

__all__ = [
    "CONFIG_VERSION",
    "DEFAULT_PATCH_SIZE",
    "SLICES_PER_WINDOW",
    "INTENSITY_MODES",
    "OUTPUT_FORMATS",
    "SECTIONS",
    "BatchOptions",
    "ProbabilityDtype",
    "DataConfig",
    "FieldSpec",
    "InputChecks",
    "InferConfig",
    "ModelConfig",
    "RunConfig",
    "RuntimeConfig",
    "TrainConfig",
    "dataset_fields",
    "field_specs",
    "parse_override",
    "replace_fields",
    "to_jsonable",
]
