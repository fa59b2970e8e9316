"""Data: pair discovery and splits, MONAI transform chains, dataset properties, synthetic data."""

from medseg_monai.data.datalist import collect_inputs, discover_pairs, load_datalist, split_pairs
from medseg_monai.data.synthetic import generate_dataset, make_synthetic_2d, make_synthetic_3d

__all__ = [
    "collect_inputs",
    "discover_pairs",
    "generate_dataset",
    "load_datalist",
    "make_synthetic_2d",
    "make_synthetic_3d",
    "split_pairs",
]
