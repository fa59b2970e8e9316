"""Data: pair discovery and splits, cases of several channel files, the data-dependent settings of a run
(:func:`resolve_data_config`), synthetic data. The MONAI transforms are in :mod:`medseg_monai.transforms`."""

from medseg_monai.data.channels import ChannelCase
from medseg_monai.data.datalist import discover_pairs, load_datalist
from medseg_monai.data.inputs import collect_inputs
from medseg_monai.data.properties import check_pairs, resolve_data_config
from medseg_monai.data.splits import split_pairs
from medseg_monai.data.synthetic import generate_dataset
from medseg_monai.data.synthetic_2d import make_synthetic_2d
from medseg_monai.data.synthetic_3d import make_synthetic_3d
from medseg_monai.data.synthetic_channels import make_synthetic_two_channel

__all__ = [
    "ChannelCase",
    "check_pairs",
    "collect_inputs",
    "discover_pairs",
    "generate_dataset",
    "load_datalist",
    "make_synthetic_2d",
    "make_synthetic_3d",
    "make_synthetic_two_channel",
    "resolve_data_config",
    "split_pairs",
]
