"""One image in, one mask out: the :class:`Predictor` on its :class:`InferencePlan` (every inference setting
resolved once), the preparation into the network grid, the network over windows with flip TTA, the two
stitching strategies, the mergers that take the prediction back to the source grid with its maps, and the
standard MONAI bundle config of the same plan."""

from medseg_monai.inference.maps import MapRequest, PredictionMaps
from medseg_monai.inference.plan import InferencePlan, InferSettings, RuntimeSettings, resolve_plan
from medseg_monai.inference.predictor import Predictor
from medseg_monai.inference.preparation import PreparedImage
from medseg_monai.inference.standard_config import STANDARD_IDS, standard_inference_config, write_standard_config

__all__ = [
    "STANDARD_IDS",
    "InferSettings",
    "InferencePlan",
    "MapRequest",
    "PredictionMaps",
    "PreparedImage",
    "Predictor",
    "RuntimeSettings",
    "resolve_plan",
    "standard_inference_config",
    "write_standard_config",
]
