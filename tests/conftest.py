"""Shared fixtures. Tests never touch the network: FLORES comes from ../shared/data (or $KSL_DATA_DIR),
models are either tiny random ones built from a preset's config or the real embedded presets."""

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config):
    import tempfile

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Tests (and the nbval notebooks they execute) write run directories into a fresh folder, never runs/. Under
    # pytest-xdist (`make test` runs two workers) the workers inherit the controller's folder, so a run both ask for
    # is computed once: its lock makes the second wait and reuse it.
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["KSL_RUNS"] = tempfile.mkdtemp(prefix="ksl-test-runs-")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Two workers on two cores: one torch thread each (their notebook kernels and command subprocesses too),
        # or their thread pools fight over the cores.
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
    if not os.environ.get("KSL_DATA_DIR") and (SHARED / "flores200").is_dir():
        os.environ["KSL_DATA_DIR"] = str(SHARED)


@pytest.fixture(scope="session")
def flores_dir() -> Path:
    root = os.environ.get("KSL_DATA_DIR")
    if not root or not (Path(root) / "flores200").is_dir():
        pytest.fail("FLORES data not found: set KSL_DATA_DIR to a folder containing flores200/")
    return Path(root)


@pytest.fixture(scope="session")
def tiny():
    """A 2-layer random LLaMA with the real SmolLM2 tokenizer (49,152 rows)."""
    from kslottery.method import models

    return models.load("tiny:smollm2-135m", progress=False)


@pytest.fixture
def varied_tiny():
    """A tiny random model of a preset with larger weights (std 0.5): greedy decoding then gives varied tokens and
    near ties in bfloat16, not one repeated id."""
    def load(preset: str):
        import torch

        from kslottery.method import models

        lm = models.load(f"tiny:{preset}", progress=False, untie_head=True)
        torch.manual_seed(0)
        for w in lm.model.parameters():
            if w.dim() > 1:
                w.data.normal_(0, 0.5)
        return lm
    return load


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


def pytest_collection_modifyitems(session, config, items):
    """nbval executes the smoke notebooks in the study's order, as `kslottery run` does: a later notebook (the
    claims page) recomputes numbers from the runs an earlier one (the significance chapter) makes, so the
    alphabetical order would send it looking for runs that do not exist yet."""
    from kslottery.report.profiles import ORDER

    slots = [i for i, item in enumerate(items) if item.path.suffix == ".ipynb" and item.path.stem in ORDER]
    ordered = sorted((items[i] for i in slots), key=lambda item: ORDER.index(item.path.stem))   # stable: cells keep order
    for i, item in zip(slots, ordered):
        items[i] = item
    # Under pytest-xdist the notebooks go first (the longest group; see pytest_xdist_make_scheduler).
    items.sort(key=lambda item: item.path.suffix != ".ipynb")   # stable: the orders above hold


# Test files that run after the notebooks, in their worker: test_fair checks the smoke profile's fair test, whose
# runs the fair-test notebook has just computed. On another worker it would ask for the same runs at the same time
# and wait on each one's lock, holding that worker idle for the notebook's two and a half minutes.
AFTER_NOTEBOOKS = {"tests/test_fair.py"}


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two pytest-xdist workers: the notebooks in one (in the study's order, one kernel each, one
    runs folder), every test file whole in one (its module fixtures, such as a built book, made once), handed out
    in collection order (--no-loadscope-reorder) as workers come free. xdist's own `xdist_group` mark cannot do this
    under pytest 9, which no longer reads the node id that mark rewrites."""
    from xdist.scheduler import LoadScopeScheduling

    class NotebooksTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return "notebooks" if file.endswith(".ipynb") or file in AFTER_NOTEBOOKS else file

    return NotebooksTogether(config, log)
