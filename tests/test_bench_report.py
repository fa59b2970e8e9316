"""The benchmark report: docs/performance.md carries every table marker and bench/report.py fills them."""

from __future__ import annotations

import importlib.util
import json
import sys

from tests.helpers import REPO


def _report_module(monkeypatch, summary_path, doc_path):
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module.common, "SUMMARY", summary_path)
    monkeypatch.setattr(module, "DOC", doc_path)
    return module


def test_report_fills_every_block_of_the_performance_page(tmp_path, monkeypatch):
    summary = {
        "predict": {"speedup_matched": 3.25, "dice_vs_recipe_matched": 0.991},
        "details": {
            "predict": {
                "depths": [150],
                "threads": 2,
                "pipelines": {
                    "monai_recipe": {
                        "seconds_per_case": 60.0,
                        "speedup": 1.0,
                        "peak_rss_gib": 4.4,
                        "rss_ratio": 1.0,
                        "network_fraction": 0.7,
                    },
                    "medseg_matched": {
                        "seconds_per_case": 18.5,
                        "speedup": 3.25,
                        "peak_rss_gib": 1.4,
                        "rss_ratio": 0.32,
                        "network_fraction": 0.8,
                        "dice_vs_recipe": 0.991,
                    },
                },
            },
            "train": {
                "steps": 10,
                "batch": 2,
                "samples_per_image": 2,
                "patch": 64,
                "threads": 2,
                "pipelines": {
                    "monai_loop": {"epoch_seconds": 7.0, "data_wait_seconds": 0.7},
                    "medseg_eager": {"epoch_seconds": 5.0, "data_wait_seconds": 0.1},
                    "medseg": {
                        "epoch_seconds": 3.5,
                        "data_wait_seconds": 0.1,
                        "first_epoch_seconds": 40.0,
                        "cpu_steal_fraction": 0.004,
                    },
                },
            },
        },
        "run": {"quick": True, "seconds": 300.0},
        "machine": {"cpu_count": 2, "torch": "2.14.1", "avx512_bf16": True},
    }
    summary_path, doc_path = tmp_path / "summary.json", tmp_path / "performance.md"
    summary_path.write_text(json.dumps(summary))
    doc_path.write_text((REPO / "docs" / "performance.md").read_text())
    report = _report_module(monkeypatch, summary_path, doc_path)
    assert report.main() == 0
    text = doc_path.read_text()
    assert "| `predict.speedup_matched` | predict at the recipe's windows, speed vs the recipe | 3.25 | >= 3 |" in text
    assert "| `medseg_matched` |" in text and "| 18.5 | 3.25 | 1.4 | 0.32 | 0.8 | 0.991 |" in text
    assert "| `monai_loop` | 7.00 | 1.00 | 10.0% | - | - |" in text
    assert "| `medseg_eager` | 5.00 | 1.40 | 2.0% | - | - |" in text
    assert "| `medseg` | 3.50 | 2.00 | 2.9% | 40.0 | 0.4% |" in text
    assert "no scale section in summary.json yet" in text
    assert report.main() == 0 and doc_path.read_text() == text  # rewriting is stable
    sys.modules.pop("bench_report", None)


def test_summary_stores_paths_relative_to_the_repository(tmp_path, monkeypatch):
    report = _report_module(monkeypatch, tmp_path / "summary.json", tmp_path / "performance.md")
    common = report.common
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "machine", lambda: {"cpu_count": 2})
    run = str(REPO / "runs" / "msd_hippocampus" / "unet")
    common.update_summary(
        "predict",
        {"speedup": 2.0},
        {"model": str(REPO / "runs" / "bench" / "spleen_model"), "runs": {run: {"cases": 3}}, "other": ["/data/x"]},
    )
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["details"]["predict"] == {
        "model": "runs/bench/spleen_model",
        "runs": {"runs/msd_hippocampus/unet": {"cases": 3}},
        "other": ["/data/x"],
    }
    assert stored["predict"] == {"speedup": 2.0}
    sys.modules.pop("bench_report", None)
