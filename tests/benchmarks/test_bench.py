"""The benchmark entry point (`python -m odn_lightning.bench`), in process at a tiny size."""

from __future__ import annotations

import json
import math

import pytest
import torch

from odn_lightning import bench, runs
from odn_lightning.config_checks import ConfigError

from ..helpers.configs import TINY_BENCH, compose_config


def _overrides(tmp_path, *extra: str) -> list[str]:
    return [
        *TINY_BENCH,
        f"data.root={tmp_path / 'faces'}",
        f"output_dir={tmp_path / 'bench'}",
        *extra,
    ]


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_bench_writes_every_section(tmp_path):
    cfg = compose_config("bench", _overrides(tmp_path), tmp_path / "run")
    threads = torch.get_num_threads()
    out = bench.bench(cfg)
    assert torch.get_num_threads() == threads  # restored
    device = bench.device_slug(runs.torch_device("cpu"))
    assert device.startswith("cpu-") and device.endswith("cores")
    assert out["json"] == tmp_path / "bench" / f"{device}.json"
    result = json.loads(out["json"].read_text())
    assert result["device"] == device
    assert result["environment"]["threads"] == 1
    assert result["settings"]["section_wall_s"].keys() == set(bench.SECTIONS)
    assert set(bench.SECTIONS) <= result.keys()

    train = result["train"]
    assert list(train["rows"]) == ["brnet", "odn", "resnet18_heatmap"]  # Table 4's, then the heatmap rows
    for row in train["rows"].values():
        assert _positive_finite(row["median_ms"]) and _positive_finite(row["images_per_s"])
        assert _positive_finite(row["ratio_to_baseline"]) and _positive_finite(row["max_rss_mib"])
        assert _positive_finite(row["parameters"]) and _positive_finite(row["gflops"])
    assert train["rows"]["brnet"]["ratio_to_baseline"] == 1.0
    assert train["rows"]["odn"]["weight_penalty"] == "decoupled"  # the paper recipe's
    heatmap = train["rows"]["resnet18_heatmap"]
    # Its own recipe (HRNet-Facial's), not eq. 3's: no weight penalty, and the deconvolutions cost more
    # than BRNet's head at the same crop.
    assert heatmap["experiment"] == "_hrnet" and heatmap["weight_penalty"] is None
    assert heatmap["variant"] == "ResNet-18 + deconv (SimpleBaseline)"
    assert heatmap["gflops"] > train["rows"]["brnet"]["gflops"]
    assert heatmap["parameters"] > train["rows"]["brnet"]["parameters"]
    terms = {"nuclear_M", "frobenius_M", "frobenius_conv", "frobenius_fc", "l1_P"}
    for mode in ("loss", "decoupled"):
        shares = train["term_shares"][mode]
        assert set(shares["terms"]) == terms
        assert all(math.isfinite(t["share"]) for t in shares["terms"].values())
        assert _positive_finite(shares["step_ms"]) and _positive_finite(shares["coord_l2_only_ms"])
    assert set(train["terms_alone"]["terms"]) == terms

    for d in ("8", "16"):
        methods = result["nuclear"]["dims"][d]
        for method in ("svd", "newton_schulz"):
            assert _positive_finite(methods[method]["median_ms"])
            assert methods[method]["value_rel_error"] < 1e-3
            assert methods[method]["grad_max_abs_error"] < 1e-2
        assert _positive_finite(methods["newton_schulz_over_svd"])

    data = result["data"]
    assert data["faces"] == 3 and "cache" in data["cache"]
    assert data["model_images_per_s"] == train["rows"]["odn"]["images_per_s"]
    for kind in ("train", "eval", "train_cached", "eval_cached"):
        assert _positive_finite(data[kind]["samples_per_s_per_worker"])
        assert _positive_finite(data[kind]["data_over_model"])
    for kind in ("train", "eval"):
        assert _positive_finite(data[kind]["cached_over_uncached"])

    odn = result["inference"]["networks"]["odn"]
    assert set(odn["runtimes"]) == {"eager", "torchscript", "onnx"}
    for by_batch in odn["runtimes"].values():
        assert set(by_batch) == {"1", "2"}
        assert all(_positive_finite(v["ms_per_face"]) for v in by_batch.values())
        assert all(v["peak_rss_mib"] > 0 and v["rss_increase_mib"] >= 0 for v in by_batch.values())
    assert set(odn["ratios_to_eager"]) == {"torchscript_batch1", "onnx_batch1"}
    assert all(_positive_finite(v) for v in odn["ratios_to_eager"].values())

    text = out["markdown"].read_text()
    assert out["markdown"] == tmp_path / "bench" / f"{device}.md"
    for heading in (
        "## Train step",
        "### ODN step by eq.-3 term",
        "## Nuclear norm",
        "## Data path",
        "## Inference",
    ):
        assert heading in text
    assert "| brnet | BRNet |" in text
    assert "| resnet18_heatmap | ResNet-18 + deconv (SimpleBaseline) | _hrnet | - |" in text


def test_a_section_switched_off_is_absent(tmp_path):
    cfg = compose_config("bench", _overrides(tmp_path, "sections=[nuclear]"), tmp_path / "run")
    result = json.loads(bench.bench(cfg)["json"].read_text())
    assert "nuclear" in result
    assert not {"train", "data", "inference"} & result.keys()
    text = (tmp_path / "bench" / f"{result['device']}.md").read_text()
    assert "## Nuclear norm" in text and "## Train step" not in text and "## Data path" not in text


@pytest.mark.parametrize(
    "override, words",
    [
        ("sections=[train,speed]", "unknown section 'speed'"),
        ("device=tpu", "device=tpu"),
        ("train.rows=[brnet,odn_plus]", "unknown model config 'odn_plus'"),
        ("train.heatmap_rows=[hrnet_w32]", "unknown model config 'hrnet_w32'"),
        ("train.heatmap_experiment=hrnet", "train.heatmap_experiment=hrnet"),
        ("repeats=0", "repeats=0"),
        ("threads=0", "threads=0"),
    ],
)
def test_a_bad_setting_fails_in_one_line(tmp_path, override, words):
    cfg = compose_config("bench", _overrides(tmp_path, override), tmp_path / "run")
    with pytest.raises(ConfigError) as info:
        bench.bench(cfg)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "bench").exists()


def test_bench_writes_into_its_run_directory_unless_told_otherwise(tmp_path):
    # A partial run (sections=[nuclear]) must never overwrite the committed experiments/bench record.
    from ..helpers.configs import compose_config

    cfg = compose_config("bench", ["sections=[nuclear]"], tmp_path / "run")
    assert cfg.output_dir == str(tmp_path / "run")
    assert "experiments" not in cfg.output_dir
