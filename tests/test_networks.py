"""Network factory: output contract of every network, errors, pretrained loading, deep supervision."""

from __future__ import annotations

import logging

import pytest
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss

from medseg_monai.networks import (
    DeepLabV3Wrapper,
    UNetPlusPlus,
    available_networks,
    backbone_parameters,
    create_network,
    register_network,
)
from tests.helpers import TINY_NETWORKS

TINY_UNET = TINY_NETWORKS["unet"]
TINY_UNETPP = TINY_NETWORKS["unetpp"]
SPATIAL = {2: (64, 48), 3: (16, 32, 16)}

# every valid (network, spatial_dims) combination, with small options
CASES = [
    ("unet", 2, TINY_UNET),
    ("unet", 3, TINY_UNET),
    ("unetpp", 2, TINY_UNETPP),
    ("unetpp", 3, TINY_UNETPP),
    ("unetpp", 2, {**TINY_UNETPP, "deep_supervision": True}),
    ("unetpp", 3, {**TINY_UNETPP, "deep_supervision": True}),
    ("deeplabv3", 2, {}),  # resnet50
    ("deeplabv3", 2, {"backbone": "mobilenet_v3_large"}),
]


def _ids(case: tuple) -> str:
    name, dims, options = case
    extra = "-ds" if options.get("deep_supervision") else f"-{options['backbone']}" if "backbone" in options else ""
    return f"{name}{extra}-{dims}d"


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_network_contract(case: tuple, in_channels: int) -> None:
    name, dims, options = case
    torch.manual_seed(0)
    out_channels = 3
    model = create_network(name, dims, in_channels, out_channels, **options)
    x = torch.randn(2, in_channels, *SPATIAL[dims])

    model.eval()
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor)
    assert y.shape == (2, out_channels, *SPATIAL[dims])

    model.train()
    out = model(x)
    heads = out if isinstance(out, list) else [out]
    assert all(h.shape == (2, out_channels, *SPATIAL[dims]) for h in heads)
    sum(h.float().pow(2).mean() for h in heads).backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params
    for param_name, param in params:
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name


def test_registry() -> None:
    assert {"unet", "unetpp", "deeplabv3"} <= set(available_networks())
    with pytest.raises(ValueError, match="already registered"):
        register_network("unet")(lambda *a, **k: torch.nn.Identity())


def test_unknown_network_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"'segformer'.*deeplabv3, unet, unetpp"):
        create_network("segformer", 2, 1, 2)


@pytest.mark.parametrize(
    "args, match",
    [
        ((4, 1, 2), "spatial_dims must be 2 or 3; got 4"),
        ((2, 0, 2), "in_channels must be a positive integer; got 0"),
        ((2, 1, 2.0), "out_channels must be a positive integer; got 2.0"),
    ],
)
def test_bad_dims_and_channels(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_network("unet", *args)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['deep_supervision'\] \(supported by: unetpp\)"):
        create_network("unet", 2, 1, 2, deep_supervision=True)
    with pytest.raises(ValueError, match=r"strides needs len\(channels\) - 1 = 2 entries; got \(2,\)"):
        create_network("unet", 2, 1, 2, channels=(4, 8, 16), strides=(2,))
    # neutral config values are accepted by every network
    assert isinstance(
        create_network("unet", 2, 1, 2, deep_supervision=False, pretrained=None, **TINY_UNET), torch.nn.Module
    )


def test_deeplab_is_2d_only() -> None:
    with pytest.raises(ValueError, match=r"deeplabv3 is 2D only; got spatial_dims=3.*unet.*unetpp"):
        create_network("deeplabv3", 3, 1, 2)


def test_deeplab_bad_backbone() -> None:
    with pytest.raises(ValueError, match=r"'vgg16'.*resnet50, resnet101, mobilenet_v3_large"):
        create_network("deeplabv3", 2, 1, 2, backbone="vgg16")


def test_deeplab_mobilenet_single_channel() -> None:
    model = create_network("deeplabv3", 2, 1, 4, backbone="mobilenet_v3_large")
    assert isinstance(model, DeepLabV3Wrapper)
    assert model.backbone["0"][0].in_channels == 1
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 40, 56)).shape == (1, 4, 40, 56)


def test_deeplab_train_batch_of_one_is_a_clear_error() -> None:
    model = create_network("deeplabv3", 2, 1, 2, backbone="mobilenet_v3_large").train()
    with pytest.raises(ValueError, match="batch of at least 2"):
        model(torch.randn(1, 1, 32, 32))


def test_pretrained_resnet_backbone_round_trip(tmp_path, caplog) -> None:
    from torchvision.models import resnet50

    torch.manual_seed(1)
    source = resnet50(weights=None)
    with torch.no_grad():
        for param in source.parameters():
            param.normal_()
    state = source.state_dict()
    path = tmp_path / "resnet50.pt"
    torch.save(state, path)

    with caplog.at_level(logging.INFO, logger="medseg_monai.networks.deeplab"):
        model = create_network("deeplabv3", 2, 1, 2, pretrained=path)
    assert "adapted from 3 to 1" in caplog.text
    backbone = model.backbone
    assert backbone.conv1.weight.shape == (64, 1, 7, 7)
    torch.testing.assert_close(backbone.conv1.weight, state["conv1.weight"].mean(dim=1, keepdim=True))
    assert torch.equal(backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(backbone.layer4[2].bn3.running_mean, state["layer4.2.bn3.running_mean"])

    # a full DeepLab checkpoint under "state_dict": backbone loaded, a head of another class count skipped
    full = tmp_path / "deeplab.pt"
    torch.save({"state_dict": model.model.state_dict()}, full)
    other = create_network("deeplabv3", 2, 1, 5, pretrained=full)
    assert torch.equal(other.backbone.conv1.weight, backbone.conv1.weight)
    assert torch.equal(other.model.classifier[0].convs[0][0].weight, model.model.classifier[0].convs[0][0].weight)
    assert other.model.classifier[4].weight.shape[0] == 5


def test_pretrained_mobilenet_classification_weights(tmp_path) -> None:
    from torchvision.models import mobilenet_v3_large

    state = mobilenet_v3_large(weights=None, num_classes=10).state_dict()
    path = tmp_path / "mnv3.pth"
    torch.save({"model": state}, path)
    model = create_network("deeplabv3", 2, 3, 2, backbone="mobilenet_v3_large", pretrained=str(path))
    assert torch.equal(model.backbone["0"][0].weight, state["features.0.0.weight"])
    assert torch.equal(model.backbone["16"][0].weight, state["features.16.0.weight"])


def test_pretrained_errors(tmp_path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        create_network("deeplabv3", 2, 1, 2, backbone="mobilenet_v3_large", pretrained=missing)

    unrelated = tmp_path / "unrelated.pt"
    torch.save({"foo.weight": torch.zeros(3)}, unrelated)
    with pytest.raises(ValueError, match="unrelated.pt: no tensors matched"):
        create_network("deeplabv3", 2, 1, 2, backbone="mobilenet_v3_large", pretrained=unrelated)

    from torchvision.models import mobilenet_v3_large

    state = mobilenet_v3_large(weights=None).state_dict()
    state["features.1.block.0.0.weight"] = torch.zeros(7, 7, 3, 3)
    bad = tmp_path / "bad_shape.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"bad_shape.pt: weights do not fit.*1\.block\.0\.0\.weight"):
        create_network("deeplabv3", 2, 1, 2, backbone="mobilenet_v3_large", pretrained=bad)


def test_unetpp_deep_supervision_outputs_and_loss() -> None:
    torch.manual_seed(0)
    model = create_network("unetpp", 2, 1, 3, deep_supervision=True, **TINY_UNETPP)
    assert isinstance(model, UNetPlusPlus) and model.deep_supervision
    x = torch.randn(2, 1, 32, 32)
    label = torch.randint(0, 3, (2, 1, 32, 32))

    model.train()
    heads = model(x)
    assert isinstance(heads, list) and len(heads) == 4
    assert all(h.shape == (2, 3, 32, 32) for h in heads)
    # final (deepest-decoded) head first: it is the one returned at inference
    model.eval()
    with torch.no_grad():
        final = model(x)
    assert isinstance(final, torch.Tensor)
    torch.testing.assert_close(heads[0].detach(), final)  # instance norm, no dropout: same in both modes

    model.train()
    loss = DeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))(model(x), label)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()

    plain = create_network("unetpp", 2, 1, 3, **TINY_UNETPP).train()
    assert not plain.deep_supervision
    assert isinstance(plain(x), torch.Tensor)


def test_backbone_parameters() -> None:
    deeplab = create_network("deeplabv3", 2, 1, 2, backbone="mobilenet_v3_large")
    params = backbone_parameters(deeplab)
    assert params and all(isinstance(p, torch.nn.Parameter) for p in params)
    assert {id(p) for p in params} == {id(p) for p in deeplab.backbone.parameters()}
    assert len(params) < len(list(deeplab.parameters()))
    assert backbone_parameters(torch.nn.DataParallel(deeplab)) == params
    assert backbone_parameters(create_network("unet", 2, 1, 2, **TINY_UNET)) == []
    assert backbone_parameters(create_network("unetpp", 3, 1, 2, **TINY_UNETPP)) == []


def test_deeplab_mobilenet_eval_mode_matches_training_after_a_short_run() -> None:
    """Batch-norm running statistics must follow a short CPU-scale run: eval() may not collapse to background."""
    torch.manual_seed(0)
    model = create_network(
        "deeplabv3", 2, 1, 2, backbone="mobilenet_v3_large"
    )  # torchvision's 0.01 gives Dice ~0.4 here
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    generator = torch.Generator().manual_seed(0)

    def batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.zeros(n, 64, 64, dtype=torch.long)
        for i in range(n):
            r, c = torch.randint(0, 32, (2,), generator=generator).tolist()
            labels[i, r : r + 32, c : c + 32] = 1
        return labels[:, None].float() + 0.1 * torch.randn(n, 1, 64, 64, generator=generator), labels

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        x, y = batch()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y = batch(8)
    with torch.no_grad():
        predicted = model.eval()(x).argmax(1)
    dice = 2 * ((predicted == 1) & (y == 1)).sum() / ((predicted == 1).sum() + (y == 1).sum())
    assert dice > 0.7, f"eval-mode foreground Dice {dice:.3f}"
