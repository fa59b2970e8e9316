"""One image in, one mask out: the :class:`Predictor`, its sliding window that stitches a slab at a time,
the way back to the source grid, and the probability and uncertainty maps."""

from medseg_monai.inference.maps import MapRequest, PredictionMaps
from medseg_monai.inference.predictor import InferSettings, Predictor, PreparedImage

__all__ = ["InferSettings", "MapRequest", "PredictionMaps", "PreparedImage", "Predictor"]
