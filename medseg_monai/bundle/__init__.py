"""The MONAI bundles under ``bundles/``: what their configs call, and the ``medseg bundle`` tooling.

- :mod:`~medseg_monai.bundle.targets`: the ``_target_`` functions of the configs (``run_config``,
  ``network_def``, ``train_bundle``, ``load_predictor``, ``predict_bundle``, ``evaluate_bundle``);
- :mod:`~medseg_monai.bundle.tooling`: finding bundles and running their configs with one-line errors;
- :mod:`~medseg_monai.bundle.verify`: the checks of ``medseg bundle verify``.

The configs name the targets by this package (``"_target_": "medseg_monai.bundle.train_bundle"``).
"""

from medseg_monai.bundle.targets import (
    BundleError,
    evaluate_bundle,
    load_predictor,
    network_def,
    predict_bundle,
    run_config,
    train_bundle,
)
from medseg_monai.bundle.tooling import (
    BASE_CONFIGS,
    bundle_root_dir,
    describe_error,
    find_bundles,
    resolve_bundle,
    run_bundle,
)
from medseg_monai.bundle.verify import BUNDLE_FILES, METADATA_REQUIRED, NETWORK_FIELDS, TENSOR_REQUIRED, verify_bundle

__all__ = [
    "BASE_CONFIGS",
    "BUNDLE_FILES",
    "METADATA_REQUIRED",
    "NETWORK_FIELDS",
    "TENSOR_REQUIRED",
    "BundleError",
    "bundle_root_dir",
    "describe_error",
    "evaluate_bundle",
    "find_bundles",
    "load_predictor",
    "network_def",
    "predict_bundle",
    "resolve_bundle",
    "run_bundle",
    "run_config",
    "train_bundle",
    "verify_bundle",
]
