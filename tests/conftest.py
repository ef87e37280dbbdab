"""Shared fixtures: where the real data lives, and skips where it does not."""

from __future__ import annotations

import gc
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, require

# Under pytest-xdist the workers already take every core: torch's own thread pool on top
# (and in the processes tests start) only makes them fight over the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)

# A full collection walks the test process's whole heap (torch, timm, Textual: 550,000 to
# 850,000 objects), 0.3-0.5 s each time, and ran 15-23 times per worker in a full run; a
# tenth as often is plenty for tests (the young generations still collect every few
# thousand allocations).
gc.set_threshold(700, 10, 100)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The slow tests first (each kind in its own order), handed out one at a time
    # (--maxschedchunk 1 in pyproject.toml): the workers then end on quick tests, instead of
    # one idling while the other runs a last 20-second test.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # A worker's results are with the controller once its session has finished, and the
    # controller then waits for it to exit: pytest's last garbage collections (five passes
    # over a heap that holds torch) and tearing down the interpreter took 6-8 s at the end of
    # every run. Registered last, this runs first of the worker's clean-ups; its output is
    # flushed, and there is nothing else to do.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        config.add_cleanup(_exit_now)


def _exit_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@pytest.fixture
def corel() -> Path:
    return require(DATA / "corel5k")


@pytest.fixture(scope="session")
def candidates_model(tmp_path_factory) -> Path:
    """The shipped model with its threshold off: every stored candidate tag is shown.
    The generated test photos are colour blobs, of which the shipped rule (rightly) keeps no
    tag; tests of browsing and export need photos that show some."""
    from trainer.assets import asset_path
    from trainer.checkpoint import Bundle

    folder = tmp_path_factory.mktemp("models") / "candidates"
    shutil.copytree(asset_path("default"), folder)
    tagging = Bundle.load(folder).tagging
    Bundle.update_config(folder, tagging={**tagging, "threshold": None, "fallback": None})
    return folder


@pytest.fixture(scope="session")
def other_shape(tmp_path_factory) -> Path:
    """A small bundle on the shipped backbone whose S has 4 rows (the default's: 9): what
    `epsilon-train` gives with its defaults (no prior row), at toy size, random weights."""
    import torch

    from trainer.assets import asset_path
    from trainer.checkpoint import Bundle
    from trainer.model import Epsilon, EpsilonConfig

    shipped = Bundle.load(asset_path("default"))
    torch.manual_seed(0)
    cfg = EpsilonConfig(token_dim=1280, d_model=32, d_w=50, num_groups=4, depth=1, heads=4, normalize_rows=True)
    folder = tmp_path_factory.mktemp("models") / "four-rows"
    Bundle(
        Epsilon(cfg).eval(),
        shipped.backbone,
        shipped.embeddings,
        shipped.seen_labels[:20],
        seen_vectors=shipped.seen_vectors[:20],
    ).save(folder)
    return folder
