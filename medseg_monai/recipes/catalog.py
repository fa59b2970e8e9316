"""The real-data recipes: one entry per dataset of the shared data folder, with reasoned defaults.

Defaults are chosen for a 30-minute budget on 2 CPU cores (measured on such a machine: a 2D UNet step
on 8 patches of 256x256 takes ~0.75 s, UNet++ ~1 s on 8 patches of 128x128, DeepLabV3-MobileNetV3
~2 s on 8 patches of 256x256, a 3D UNet step on 8 patches of 40x56x40 ~0.7 s). ``epochs`` is only a
cap: the runner fits the number of epochs to the wall-clock budget so the cosine schedule anneals
just before the budget ends (see :func:`medseg_monai.recipes.schedule.fit_schedule`).
"""

from __future__ import annotations

import dataclasses

from medseg_monai.config import DataConfig, InferConfig, ModelConfig, RunConfig, TrainConfig
from medseg_monai.errors import ConfigError
from medseg_monai.recipes.spec import Recipe, SplitSpec

__all__ = ["EPOCH_CAP", "RECIPES", "get_recipe", "smoke_config"]

#: upper bound on epochs; the wall-clock budget (and the fitted schedule) ends runs long before
EPOCH_CAP = 1000

# Residual UNet, 4 down-samplings (patches divisible by 16); 1.6 M parameters.
UNET_2D = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2}
# UNet++ at the package default width; its full-resolution nested blocks make it ~10x the cost of the
# UNet per pixel on CPU, so it trains on 128x128 patches.
UNETPP_2D = {"features": (16, 16, 32, 64, 128, 16)}
# DeepLabV3 with the MobileNetV3 backbone: ResNet-50 costs ~12 s per step of 4 patches on 2 cores,
# too slow to train from scratch in 30 minutes. Pass model.options={"backbone": "resnet50"} (and
# --pretrained) where a GPU or local ImageNet weights make it worthwhile.
DEEPLAB_2D = {"backbone": "mobilenet_v3_large"}
# 3D UNet for hippocampus crops (~35x50x35 voxels): 3 down-samplings like nnU-Net's plan for this task.
UNET_3D = {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 2}


def _train(learning_rate: float, batch_size: int, iterations_per_epoch: int | None) -> TrainConfig:
    return TrainConfig(
        epochs=EPOCH_CAP,
        iterations_per_epoch=iterations_per_epoch,
        batch_size=batch_size,
        optimizer="adamw",
        learning_rate=learning_rate,
        weight_decay=1e-4,
        scheduler="cosine",
        val_interval=5,
    )


def _three_networks(
    data: DataConfig,
    *,
    batch_size: int,
    iterations_per_epoch: int | None,
    unetpp_data: dict | None = None,
    unetpp_batch_size: int | None = None,
    deeplab_data: dict | None = None,
    deeplab_batch_size: int | None = None,
    min_component_size: int = 0,
) -> dict[str, RunConfig]:
    """UNet, UNet++ (deep supervision) and DeepLabV3 on one 2D dataset.

    UNet++ trains on 128x128 patches but infers on 256x256 windows (its cost per pixel is ~4x lower
    there on CPU, and validation would otherwise eat the budget); ``*_data`` replace data fields for
    one network. The cheap UNet infers with half-overlapping windows, the others with a quarter. Every
    recipe scores with flip test-time augmentation (as nnU-Net does); training-time validation does not.
    ``min_component_size`` is the inference post-processing of all three.
    """
    infer = InferConfig(tta_flips=True, min_component_size=min_component_size)
    return {
        "unet": RunConfig(
            data=data,
            model=ModelConfig(name="unet", options=UNET_2D),
            train=_train(2e-3, batch_size, iterations_per_epoch),
            infer=dataclasses.replace(infer, overlap=0.5, sw_batch_size=4),
        ),
        "unetpp": RunConfig(
            data=dataclasses.replace(data, **{"patch_size": (128, 128), **(unetpp_data or {})}),
            model=ModelConfig(name="unetpp", options=UNETPP_2D, deep_supervision=True),
            train=_train(2e-3, unetpp_batch_size or batch_size, iterations_per_epoch),
            infer=dataclasses.replace(infer, roi_size=(256, 256), overlap=0.25, sw_batch_size=2),
        ),
        "deeplabv3": RunConfig(
            data=dataclasses.replace(data, **(deeplab_data or {})),
            model=ModelConfig(name="deeplabv3", options=DEEPLAB_2D),
            train=_train(1e-3, deeplab_batch_size or batch_size, iterations_per_epoch),
            infer=dataclasses.replace(infer, overlap=0.25, sw_batch_size=2),
        ),
    }


def smoke_config(config: RunConfig) -> RunConfig:
    """The same network and data settings on a seconds-long schedule (a wiring check, not a result)."""
    train = dataclasses.replace(config.train, epochs=2, iterations_per_epoch=2, val_interval=1)
    return dataclasses.replace(config, train=train)


def _smoke(configs: dict[str, RunConfig]) -> dict[str, RunConfig]:
    return {name: smoke_config(config) for name, config in configs.items()}


# ISBI 2012 EM: 30 serial sections 512x512 gray; mask 255 = cell interior, 0 = membrane. Membranes are
# 2-5 pixels wide, so 256x256 patches at full resolution; four patches per image and step, 24 images.
_ISBI_DATA = DataConfig(
    spatial_dims=2,
    in_channels=1,
    label_values=(0, 255),
    label_names=("membrane", "cell_interior"),
    intensity="minmax",
    patch_size=(256, 256),
    samples_per_image=4,
    foreground_ratio=0.5,
)
_ISBI = _three_networks(_ISBI_DATA, batch_size=2, iterations_per_epoch=40)

# DRIVE: 20 RGB fundus photos 565x584; vessels are 1-10 pixels wide and ~8 % of the image, so patches
# of 256x256 centred on vessels 80 % of the time (the rest samples background, mostly outside the FOV).
_DRIVE_DATA = DataConfig(
    spatial_dims=2,
    in_channels=3,
    label_values=(0, 255),
    label_names=("background", "vessel"),
    intensity="minmax",
    patch_size=(256, 256),
    samples_per_image=4,
    foreground_ratio=0.8,
)
_DRIVE = _three_networks(_DRIVE_DATA, batch_size=2, iterations_per_epoch=40)

# CHAOS MR liver: 500 training slices 256x256; the whole slice is one patch (the liver is large and
# its position matters), 8 slices per step, one pass over the slices per epoch. Axial slices share one
# anatomical layout (liver on the image's left, spine at the bottom): training mirrors left-right only,
# as the pre-augmented aug_* slices already do, and makes no quarter turns; flip test-time augmentation
# follows the same axis. UNet++ trains on two 128x128 patches per slice, centred on liver two times in
# three. DeepLabV3 takes two augmented copies of 4 slices per step, so no step holds a single patch (its
# ASPP batch norm needs two). Predicted components under 32 pixels (~1 cm^2) are removed: a speck on a
# slice without liver scores Dice 0.
_CHAOS_DATA = DataConfig(
    spatial_dims=2,
    in_channels=1,
    label_values=(0, 255),
    label_names=("background", "liver"),
    intensity="minmax",
    patch_size=(256, 256),
    samples_per_image=1,
    foreground_ratio=0.67,
    flip_axes=(1,),
    rotate90=False,
)
_CHAOS = _three_networks(
    _CHAOS_DATA,
    batch_size=8,
    iterations_per_epoch=None,
    unetpp_data={"samples_per_image": 2},
    unetpp_batch_size=4,
    deeplab_data={"samples_per_image": 2},
    deeplab_batch_size=4,
    min_component_size=32,
)

# MSD hippocampus: 1 mm MRI crops of ~35x50x35 voxels whose intensities range over four orders of
# magnitude between files: percentile clipping then z-score per image. A 40x56x40 patch holds almost
# the whole crop (padded where smaller); two patches per volume, four volumes per step.
_HIPPO_DATA = DataConfig(
    spatial_dims=3,
    in_channels=1,
    label_values=(0, 1, 2),
    label_names=("background", "anterior", "posterior"),
    intensity="percentile",
    orientation="RAS",
    patch_size=(40, 56, 40),
    samples_per_image=2,
    foreground_ratio=0.5,
)
_HIPPO = {
    "unet": RunConfig(
        data=_HIPPO_DATA,
        model=ModelConfig(name="unet", options=UNET_3D),
        train=_train(2e-3, 4, None),
        infer=InferConfig(overlap=0.5, sw_batch_size=2, tta_flips=True),
    ),
    # 2.5D: axial slices of the same reoriented volumes with two neighbours on each side as channels
    # (5 input channels); in-plane patches of 48x64 cover a whole crop's slice.
    "unet-2.5d": RunConfig(
        data=dataclasses.replace(
            _HIPPO_DATA, spatial_dims=2, slice_axis=2, context_slices=2, patch_size=(48, 64), samples_per_image=8
        ),
        model=ModelConfig(
            name="unet", options={"channels": (32, 64, 128, 256), "strides": (2, 2, 2), "num_res_units": 2}
        ),
        train=_train(2e-3, 4, None),
        infer=InferConfig(overlap=0.5, sw_batch_size=4, tta_flips=True),
    ),
    "deeplabv3-2.5d": RunConfig(
        data=dataclasses.replace(
            _HIPPO_DATA, spatial_dims=2, slice_axis=2, context_slices=2, patch_size=(48, 64), samples_per_image=8
        ),
        model=ModelConfig(name="deeplabv3", options=DEEPLAB_2D),
        train=_train(1e-3, 4, None),
        infer=InferConfig(overlap=0.5, sw_batch_size=4, tta_flips=True),
    ),
}

RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="isbi2012_em",
            dataset="isbi2012_em",
            description="ISBI 2012 EM serial sections (2D gray): cell interior vs membrane",
            spatial_dims=2,
            split=SplitSpec(mode="ratio", val_fraction=0.2, group_pattern=r"_(\d+)$", group_block=6),
            configs=_ISBI,
            smoke_configs=_smoke(_ISBI),
            eval_labels={255: "cell_interior", 0: "membrane"},
            primary_labels=(255,),
            headline="cell-interior Dice",
        ),
        Recipe(
            name="drive_retina",
            dataset="drive_retina",
            description="DRIVE retinal vessels (2D RGB), metrics inside the field of view",
            spatial_dims=2,
            split=SplitSpec(mode="ratio", val_fraction=0.2),
            configs=_DRIVE,
            smoke_configs=_smoke(_DRIVE),
            eval_labels={255: "vessel"},
            primary_labels=(255,),
            headline="vessel F1 in FOV",
            target=0.80,
            roi_dir="fov",
        ),
        Recipe(
            name="chaos_mr_liver2d",
            dataset="chaos_mr_liver2d",
            description="CHAOS MR T1 liver (2D slices): train on aug_*, validate on val_* and full_*",
            spatial_dims=2,
            split=SplitSpec(mode="prefix", train_prefixes=("aug_",), val_prefixes=("val_", "full_")),
            configs=_CHAOS,
            smoke_configs=_smoke(_CHAOS),
            eval_labels={255: "liver"},
            primary_labels=(255,),
            headline="liver Dice",
            target=0.92,
            group_pattern=r"_P(\d+)_",
        ),
        Recipe(
            name="msd_hippocampus",
            dataset="msd_hippocampus",
            description="MSD Task04 hippocampus (3D MRI): anterior and posterior",
            spatial_dims=3,
            split=SplitSpec(mode="ratio", val_fraction=0.2),
            configs=_HIPPO,
            smoke_configs=_smoke(_HIPPO),
            eval_labels={1: "anterior", 2: "posterior"},
            primary_labels=(1, 2),
            headline="mean Dice",
            target=0.87,
        ),
    )
}


def get_recipe(recipe: str | Recipe) -> Recipe:
    """A registered recipe by name (``ValueError`` naming the known ones), or the recipe itself."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[recipe]
