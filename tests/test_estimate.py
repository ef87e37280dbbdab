"""epsilon-train estimate: the token cache's size from the model's real token shape, and
times that follow from the throughputs by the pipeline's arithmetic."""

from __future__ import annotations

import json

import pytest

from tests.test_train_cli import run_cli
from tests.tiny_datasets import make_corel
from trainer.estimate import Throughputs, estimate
from trainer.rates import device_name, write_rates

GIVEN = ["--decode-rate", "100", "--backbone-rate", "400", "--head-rate", "2000", "--disk-rate", "1e9"]


@pytest.mark.slow  # builds ViT-B/16 (86 M parameters) twice
@pytest.mark.parametrize("dataset, images, gigabytes", [("nus-wide", 269_648, 81), ("open-images", 1_868_478, 560)])
def test_the_paper_scale_cache_of_vit_b16(dataset, images, gigabytes):
    shown = run_cli("estimate", dataset, "--backbone", "vit_base_patch16_224", "--json", "--gpus", "8", *GIVEN)
    result = json.loads(shown.stdout)
    assert sum(result["images"].values()) == images and result["tokens"] == [196, 768]
    assert result["cache_bytes"] == images * 196 * 768 * 2
    assert result["cache_bytes"] / 1e9 == pytest.approx(gigabytes, rel=0.05)
    one, eight = result["per_gpus"]["1"], result["per_gpus"]["8"]
    assert eight["streaming_epoch_s"] < one["streaming_epoch_s"] and set(result["per_gpus"]) == {"1", "8"}


def test_times_follow_from_the_throughputs():
    rates = Throughputs(decode=10, backbone=100, head=400, disk=1e12)
    result = estimate("x", "b", {"train": 1000, "test": 200}, (49, 1280), rates, workers=4, gpus=2, epochs=3)
    one = result.per_gpus["1"]
    # Extraction: 1,200 images at min(4 workers x 10, 100) = 40 images/s.
    assert one["extract_s"] == pytest.approx(30.0)
    # Streaming: the backbone and the head share the device (1 / (1/100 + 1/400) = 80/s),
    # decoding gives 40/s; the test split runs the backbone only.
    assert one["streaming_epoch_s"] == pytest.approx(1000 / 40 + 200 / 40)
    assert one["cached_epoch_s"] == pytest.approx(1000 / 400 + 200 / 1600)
    assert one["cached_total_s"] == pytest.approx(30 + 3 * one["cached_epoch_s"])
    two = result.per_gpus["2"]
    assert two["extract_s"] == pytest.approx(1200 / 80)  # each device its own workers
    assert result.cache_bytes == 1200 * 49 * 1280 * 2


@pytest.mark.slow
def test_counts_a_data_folder_and_measures_this_machine(tmp_path):
    data = make_corel(tmp_path / "data")
    shown = run_cli("estimate", "corel5k", "--data", data, "--device", "cpu", "--json")
    result = json.loads(shown.stdout)
    assert result["images"] == {"train": 20, "test": 10} and result["tokens"] == [49, 1280]  # make_corel's tree
    assert all(v > 0 for v in result["throughputs"].values())
    # Where and how noisily: the CPU's name, the median of 3 repeats with their min-max.
    source = result["rates_from"]
    assert source["kind"] == "cpu" and source["origin"] == "measured here" and source["repeats"] == 3
    assert source["device"] == device_name("cpu") and "cores)" in source["device"]
    for rate, (low, high) in source["spread"].items():
        assert low <= result["throughputs"][rate] <= high, rate
    fast, slow = result["ranges"]["1"]["cached_total_s"]
    assert fast <= result["per_gpus"]["1"]["cached_total_s"] <= slow
    text = run_cli("estimate", "corel5k", "--data", data, "--device", "cpu").stdout
    assert f"rates: measured here on {device_name('cpu')} (CPU)" in text
    assert "median of 3, min-max" in text and f"1 x {device_name('cpu')}" in text and "over the spread" in text
    wrong = run_cli("estimate", "imagenet", check=False)
    assert wrong.returncode == 2 and "imagenet" in wrong.stderr and "nus-wide" in wrong.stderr


def test_cpu_rates_are_never_scaled_to_gpus():
    """--gpus 8 where the rates would be measured on this CPU: refused before any measuring."""
    shown = run_cli("estimate", "nus-wide", "--device", "cpu", "--gpus", "8", check=False)
    assert shown.returncode == 2 and "cannot scale CPU rates to 8 GPUs" in shown.stderr
    assert "bench/gpu_check" in shown.stderr and "--rates gpu-rates.json --gpus 8" in shown.stderr
    assert device_name("cpu") in shown.stderr and "Traceback" not in shown.stderr


@pytest.mark.slow  # measures Lite0's rates (a few seconds)
def test_a_rates_file_from_the_gpu_check_is_read_and_only_gpu_rates_scale(tmp_path):
    """The file bench/gpu_check.py writes (its writer, here on the CPU): estimate names the
    machine and the file, refuses to scale its CPU rates, and scales a GPU's."""
    rates = tmp_path / "gpu-rates.json"
    write_rates(rates, "cpu", ["efficientnet_lite0"], batch=2)
    shown = run_cli("estimate", "nus-wide", "--rates", rates, "--json")
    result = json.loads(shown.stdout)
    assert result["rates_from"]["origin"] == str(rates) and result["rates_from"]["device"] == device_name("cpu")
    samples = json.loads(rates.read_text())["backbones"]["efficientnet_lite0"]
    assert result["throughputs"]["backbone"] == sorted(samples["backbone"])[1]  # the median of 3
    assert result["workers"] == json.loads(rates.read_text())["cores"]  # that machine's cores
    refused = run_cli("estimate", "nus-wide", "--rates", rates, "--gpus", "8", check=False)
    assert refused.returncode == 2 and f"the rates in {rates} are a CPU's" in refused.stderr
    missing = run_cli("estimate", "nus-wide", "--rates", rates, "--recipe", "paper", check=False)
    assert missing.returncode == 2 and "not vit_base_patch16_224" in missing.stderr

    record = json.loads(rates.read_text())
    record.update(device="NVIDIA H100 80GB HBM3", kind="cuda")  # as the check writes it on a GPU
    rates.write_text(json.dumps(record))
    text = run_cli("estimate", "nus-wide", "--rates", rates, "--gpus", "8").stdout
    assert "NVIDIA H100 80GB HBM3 (CUDA)" in text and "8 x NVIDIA H100 80GB HBM3 (scaled: an estimate)" in text
    (tmp_path / "other.json").write_text("{}")
    wrong = run_cli("estimate", "nus-wide", "--rates", tmp_path / "other.json", check=False)
    assert wrong.returncode == 2 and "is not a rates file" in wrong.stderr


def test_it_says_whether_auto_would_cache_or_stream_where_it_caches():
    from trainer.estimate import format_estimate

    rates = Throughputs(decode=10, backbone=100, head=400, disk=1e12)
    result = estimate("x", "b", {"train": 1000, "test": 200}, (49, 1280), rates, workers=1, gpus=1, epochs=1)
    result.cache_folder = "/cache"
    need = result.cache_bytes
    result.cache_free_bytes = int(need / 0.8) + 1  # caching takes at most 80% of the free space
    assert "free in /cache: --cache auto caches there" in format_estimate(result)
    result.cache_free_bytes = need  # it would fit, but not within the share
    assert "only" in format_estimate(result) and "--cache auto would stream" in format_estimate(result)
