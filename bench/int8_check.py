"""int8 post-training quantization through PT2E with the x86 Inductor quantizer: what it quantizes in our networks.

    pip install torchao      # not a dependency of the package
    python bench/int8_check.py

The 3D UNet of the benchmark and a 2D UNet of the 2D recipes (16-256 channels, 4 down-samplings) are exported
(``torch.export``), prepared with ``X86InductorQuantizer``'s default static config, calibrated on three inputs
and converted; the number of quantize nodes says what was quantized. Where anything was, the compiled int8 model
is timed against the float model eager in bf16 autocast and fp32 (fastest of 5 calls, 2 threads; random weights,
so the argmax agreement is only a sanity figure). Results: ``docs/results/int8_check.json``.
"""

import json
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.export import export

warnings.filterwarnings("ignore")
try:
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
except ImportError:
    sys.exit("bench/int8_check.py needs torchao (pip install torchao)")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from medseg_monai.networks import create_network  # noqa: E402

RESULT = Path(__file__).resolve().parents[1] / "docs" / "results" / "int8_check.json"
torch.set_num_threads(2)


UNET = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2}
CASES = {"unet_3d": (3, (1, 1, 96, 96, 96)), "unet_2d": (2, (4, 1, 256, 256))}


def quantize(net: torch.nn.Module, example: torch.Tensor, calibration: list[torch.Tensor]):
    """The int8 model, the number of its convolutions and of its quantize nodes."""
    module = export(net, (example,)).module()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(module, quantizer)
    with torch.no_grad():
        for x in calibration:
            prepared(x)
    converted = convert_pt2e(prepared)
    nodes = list(converted.graph.nodes)
    convolutions = sum("conv" in str(n.target) for n in nodes)
    return converted, convolutions, sum("quantize_per_tensor" in str(n.target) for n in nodes)


def fastest(run, calls: int = 5) -> float:
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return round(best, 4)


@torch.no_grad()
def speeds(net: torch.nn.Module, converted: torch.nn.Module, x: torch.Tensor) -> dict:
    reference = net(x).argmax(1)
    start = time.perf_counter()
    compiled = torch.compile(converted)
    compiled(x)
    row = {"compile_seconds": round(time.perf_counter() - start, 1), "int8_seconds": fastest(lambda: compiled(x))}
    with torch.autocast("cpu", torch.bfloat16):
        row["bf16_seconds"] = fastest(lambda: net(x))
    row["fp32_seconds"] = fastest(lambda: net(x))
    row["argmax_agreement"] = float((compiled(x).argmax(1) == reference).float().mean())
    return row


def main() -> None:
    import torchao

    out: dict = {}
    for name, (dims, shape) in CASES.items():
        torch.manual_seed(0)
        net = create_network("unet", dims, 1, 3, **UNET).eval()
        x = torch.randn(*shape)
        start = time.perf_counter()
        converted, convolutions, quantized = quantize(net, x, [torch.randn(*shape) for _ in range(3)])
        row = {"convolutions": convolutions, "quantize_nodes": quantized}
        row["prepare_seconds"] = round(time.perf_counter() - start, 1)
        if quantized:
            row.update(speeds(net, converted, x))
        out[name] = row
        print(name, row, flush=True)
    out["versions"] = {"torch": torch.__version__, "torchao": torchao.__version__}
    RESULT.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
