import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# torch.compile's kernels in a folder of this process's own (each xdist worker has one): inductor's
# shared cache under /tmp does not key its C++ kernels on ATEN_CPU_CAPABILITY, and a kernel built for
# one instruction set, loaded by a process running with another, gave NaN terms (seen with avx2)
_INDUCTOR_CACHE = tempfile.mkdtemp(prefix="aekit-tests-inductor-")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = _INDUCTOR_CACHE
atexit.register(shutil.rmtree, _INDUCTOR_CACHE, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """The test models are tiny: one thread is faster, and immune to other jobs on the cores.

    ``AEKIT_TEST_THREADS=2`` runs the suite with two torch threads instead, to check that no
    numeric assertion depends on how the kernels split their sums between threads.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("AEKIT_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="session")
def digits01():
    """scikit-learn's digits scaled to [0, 1], float32 (n, 64)."""
    from sklearn.datasets import load_digits
    return (load_digits().data / 16.0).astype(np.float32)


# Tests that take seconds on 2 cores (subprocesses, two-process training, signals, browsers,
# builds), marked `slow` here in one place: `pytest -m "not slow"` is the quick loop, `make test`
# runs everything. Names are matched without their parameters; a name that is gone marks nothing.
SLOW = {
    "test_anomaly.py::test_scores_are_summed_squared_reconstruction_errors",
    "test_cli.py::test_sigint_checkpoints_and_resume_matches_uninterrupted_run",
    "test_cli.py::test_resume_from_cli_matches_straight_run",
    "test_cli.py::test_cli_values_are_stored_typed_and_resume_accepts_the_same_values",
    "test_cli_errors.py::test_a_double_ctrl_c_ends_like_one_with_a_resumable_checkpoint",
    "test_cli_errors.py::test_the_parsers_read_the_same_options_without_torch_as_the_registry_holds",
    "test_crash.py::test_sigkill_at_random_moments_then_resume_gives_identical_weights",
    "test_crash.py::test_sigterm_saves_a_checkpoint_exits_130_and_resume_gives_identical_weights",
    "test_denoising.py::test_denoise_api_and_cli",
    "test_export.py::test_the_dynamo_exporter_gives_the_same_graph_outputs",
    "test_distributed.py::test_two_processes_end_where_one_process_with_the_global_batch_ends",
    "test_distributed.py::test_an_interrupted_distributed_run_resumes_exactly",
    "test_distributed.py::test_only_rank_0_writes_the_run_directory",
    "test_io.py::test_fit_on_in_memory_array_and_resume",
    "test_linear_contractive.py::test_linear_autoencoder_spans_the_pca_subspace",
    "test_linear_contractive.py::test_deep_linear_autoencoder_spans_the_pca_subspace",
    "test_docs.py::test_site_renders_in_headless_chromium",
    "test_docs.py::test_site_search_finds_a_variant",
    "test_readme.py::test_cli_examples",
    "test_readme.py::test_docs_examples",
    "test_report.py::test_ae_report_is_self_contained_with_its_sections",
    "test_report.py::test_dsprites_run_gets_its_disentanglement",
    "test_report.py::test_report_renders_in_headless_chromium",
    "test_rundir.py::test_two_processes_training_into_one_folder",
    "test_rundir.py::test_two_identical_runs_write_identical_model_files",
    "test_sklearn.py::test_fitted_estimators_come_back_from_worker_processes",
    "test_vae.py::test_cli_generate_interpolate_traverse_and_figures",
    "test_vae.py::test_importance_weighted_estimate_approaches_the_exact_marginal_likelihood",
}


# `make test` runs `pytest -n 2 --dist loadscope`: each module's tests run on one worker, one after
# another, so a module's fixtures (two-process training, the runs behind the report, an uninterrupted
# reference run, the sdist and wheel, a build of the docs site) are built once. (`--dist loadgroup`
# with xdist_group marks did the same for a few modules until pytest 9 stopped honouring the node id
# suffix that xdist 3.8 sets for a group; loadscope needs no marks.) The heavy fixtures are
# session-scoped, so they are never rebuilt even where modules interleave.
def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.nodeid.rsplit("/", 1)[-1]
        if name.split("[", 1)[0] in SLOW:
            item.add_marker(pytest.mark.slow)


#: Debian's chromium (``make chromium``), which the report and docs tests open pages in, headless
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium; `make test` installs it)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
