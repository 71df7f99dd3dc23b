"""The resumable sweep runner: inline, process pool and dask runs, resume, failures, errors.

The workers are top-level functions of this module. pytest (default ``prepend`` import mode, no
``tests/__init__.py``) imports it as ``test_validation_runner`` with ``tests/`` put first on
``sys.path``. Processes started by ``spawn`` (the pool's and dask's worker processes) get the
parent's ``sys.path``, and a ``processes=False`` dask worker shares this process, so each
unpickles the workers by that module name. The dask-processes test also puts ``tests/`` on
``PYTHONPATH``, in case a worker process is started some other way."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mftheory.errors import MFTheoryError
from mftheory.validation import runner
from mftheory.validation.runner import Cell, cell_path, load_result, run_cells

TESTS_DIR = str(Path(__file__).resolve().parent)


def square_worker(config: dict[str, Any]) -> dict[str, Any]:
    """``x**2`` and the process id; appends a line to ``config["log"]`` when given."""
    if "log" in config:
        with open(config["log"], "a", encoding="utf-8") as f:
            f.write(f"{config['x']}\n")
    return {"value": config["x"] ** 2, "pid": os.getpid()}


def failing_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Like :func:`square_worker`, but raises for ``x == 2``."""
    if config["x"] == 2:
        raise RuntimeError("boom at x=2")
    return square_worker(config)


def init_worker() -> None:
    """Mark the process as initialised (the ``worker_init`` of the tests)."""
    os.environ["MFTHEORY_TEST_RUNNER_INIT"] = "yes"


def init_worker_check(config: dict[str, Any]) -> dict[str, Any]:
    """Whether :func:`init_worker` ran in this process."""
    return {"init": os.environ.get("MFTHEORY_TEST_RUNNER_INIT"), "pid": os.getpid()}


def _cells(xs: list[int], log: Path | None = None) -> list[Cell]:
    extra = {} if log is None else {"log": str(log)}
    return [Cell(f"x={x}", {"x": x, **extra}) for x in xs]


def _calls(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def test_inline_writes_one_file_per_cell(tmp_path: Path) -> None:
    cells = _cells([1, 2, 3])
    results = run_cells(cells, square_worker, tmp_path / "out")
    assert [r["value"] for r in results] == [1, 4, 9]
    assert {r["pid"] for r in results} == {os.getpid()}  # inline: no subprocess
    for cell, result in zip(cells, results, strict=True):
        stored = json.loads(cell_path(tmp_path / "out", cell).read_text())
        assert stored == result
        assert stored["status"] == "done" and stored["key"] == cell.key
        assert stored["config"] == cell.config and "finished_at" in stored
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "x=1.json",
        "x=2.json",
        "x=3.json",
    ]


def test_resume_skips_done_cells_and_reports_them(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    run_cells(_cells([1, 2], log), square_worker, tmp_path)
    assert _calls(log) == [1, 2]
    seen: list[tuple[int, int, str, bool]] = []
    results = run_cells(
        _cells([1, 2, 3], log),
        square_worker,
        tmp_path,
        progress=lambda done, total, cell, r: seen.append((done, total, cell.key, r is None)),
    )
    assert _calls(log) == [1, 2, 3]  # only the new cell ran
    assert [r["value"] for r in results] == [1, 4, 9]
    assert seen == [(1, 3, "x=1", True), (2, 3, "x=2", True), (3, 3, "x=3", False)]
    run_cells(_cells([1, 2, 3], log), square_worker, tmp_path, resume=False)
    assert _calls(log) == [1, 2, 3, 1, 2, 3]


def test_changed_config_and_broken_files_rerun(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    cells = _cells([1, 2, 3, 4], log)
    run_cells(cells, square_worker, tmp_path)
    path = cell_path(tmp_path, cells[1])
    path.write_text(path.read_text()[:20])  # truncated
    cell_path(tmp_path, cells[2]).write_text('{"status": "failed"}')
    changed = Cell(cells[3].key, {**cells[3].config, "seed": 7})
    assert load_result(cell_path(tmp_path, changed), changed) is None
    assert load_result(cell_path(tmp_path, cells[0]), cells[0]) is not None
    results = run_cells([*cells[:3], changed], square_worker, tmp_path)
    assert _calls(log) == [1, 2, 3, 4, 2, 3, 4]
    assert results[3]["config"]["seed"] == 7
    assert load_result(cell_path(tmp_path, changed), changed) == results[3]


def test_failing_cell_recorded_not_written_and_retried(tmp_path: Path) -> None:
    results = run_cells(_cells([1, 2, 3]), failing_worker, tmp_path)
    assert [r["status"] for r in results] == ["done", "failed", "done"]
    assert results[1]["error"] == "RuntimeError: boom at x=2"
    assert results[1]["key"] == "x=2" and results[1]["config"] == {"x": 2}
    assert not cell_path(tmp_path, Cell("x=2", {})).exists()
    assert [r["value"] for r in run_cells(_cells([1, 2, 3]), square_worker, tmp_path)] == [1, 4, 9]
    assert not list(tmp_path.glob("*.tmp"))


def test_worker_output_is_strict_json_and_bad_output_fails(tmp_path: Path) -> None:
    results = run_cells([Cell("a", {})], lambda c: {"loss": float("nan")}, tmp_path)
    assert results[0]["loss"] is None
    results = run_cells([Cell("b", {}), Cell("c", {})], lambda c: {"status": 1}, tmp_path)
    assert results[0]["status"] == "failed" and "reserved" in results[0]["error"]
    results = run_cells([Cell("d", {})], lambda c: {"f": object()}, tmp_path)
    assert results[0]["error"].startswith("TypeError")
    assert not cell_path(tmp_path, Cell("d", {})).exists()


def test_keys_are_made_file_safe_and_duplicates_refused(tmp_path: Path) -> None:
    cell = Cell("depth=10 sigma/w2=1.5", {})
    assert cell_path(tmp_path, cell) == tmp_path / "depth=10_sigma_w2=1.5.json"
    with pytest.raises(MFTheoryError, match="share file"):
        run_cells([Cell("a/b", {}), Cell("a_b", {})], square_worker, tmp_path)
    with pytest.raises(MFTheoryError, match="non-empty"):
        run_cells([Cell("", {})], square_worker, tmp_path)
    with pytest.raises(MFTheoryError, match="not JSON"):
        run_cells([Cell("a", {"x": {1, 2}})], square_worker, tmp_path)


@pytest.mark.parametrize("jobs", [0, -1, 1.5])
def test_bad_jobs(tmp_path: Path, jobs: Any) -> None:
    with pytest.raises(MFTheoryError, match="jobs"):
        run_cells(_cells([1]), square_worker, tmp_path, jobs=jobs)


def test_jobs_and_scheduler_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(MFTheoryError, match="choose --jobs or --scheduler"):
        run_cells(_cells([1]), square_worker, tmp_path, jobs=2, scheduler="tcp://127.0.0.1:1")
    assert not list(tmp_path.iterdir())


def test_process_pool_gives_the_same_results(tmp_path: Path) -> None:
    seen: list[int] = []
    results = run_cells(
        _cells([1, 2, 3, 4]),
        failing_worker,
        tmp_path,
        jobs=2,
        progress=lambda done, total, cell, r: seen.append(done),
    )
    assert [r.get("value") for r in results] == [1, None, 9, 16]
    assert results[1]["error"] == "RuntimeError: boom at x=2"
    assert os.getpid() not in {r.get("pid") for r in results}
    assert seen == [1, 2, 3, 4]
    assert json.loads(cell_path(tmp_path, Cell("x=4", {})).read_text()) == results[3]


@pytest.mark.parametrize("jobs", [1, 2])
def test_worker_init_runs_in_each_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    monkeypatch.delenv("MFTHEORY_TEST_RUNNER_INIT", raising=False)
    results = run_cells(
        _cells([1, 2]), init_worker_check, tmp_path, jobs=jobs, worker_init=init_worker
    )
    assert [r["init"] for r in results] == ["yes", "yes"]
    monkeypatch.delenv("MFTHEORY_TEST_RUNNER_INIT", raising=False)  # inline set it here


def test_keyboard_interrupt_propagates(tmp_path: Path) -> None:
    def interrupted(config: dict[str, Any]) -> dict[str, Any]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cells(_cells([1, 2]), interrupted, tmp_path)

    def stop(done: int, total: int, cell: Cell, result: dict[str, Any] | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cells(_cells([1, 2, 3]), square_worker, tmp_path / "pool", jobs=2, progress=stop)
    assert len(list((tmp_path / "pool").glob("*.json"))) == 1


def test_unreachable_scheduler_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", 1.0)
    start = time.perf_counter()
    with pytest.raises(MFTheoryError, match=r"tcp://127\.0\.0\.1:1\b") as info:
        run_cells(_cells([1]), square_worker, tmp_path, scheduler="tcp://127.0.0.1:1")
    assert time.perf_counter() - start < 10
    assert "\n" not in str(info.value)


def test_missing_distributed_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import raises ImportError
    with pytest.raises(MFTheoryError, match=r'pip install "mftheory\[cluster\]"'):
        run_cells(_cells([1]), square_worker, tmp_path, scheduler="tcp://127.0.0.1:1")


def test_dask_threads_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    log = tmp_path / "calls.txt"
    cells = _cells([1, 2, 3], log)
    run_cells(cells[:1], square_worker, tmp_path / "out")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        results = run_cells(
            cells, square_worker, tmp_path / "out", scheduler=cluster.scheduler_address
        )
        assert [r["value"] for r in results] == [1, 4, 9]
        assert _calls(log) == [1, 2, 3]
        failed = run_cells(
            _cells([1, 2]), failing_worker, tmp_path / "fail", scheduler=cluster.scheduler_address
        )
    assert [r["status"] for r in failed] == ["done", "failed"]
    assert failed[1]["error"] == "RuntimeError: boom at x=2"


def test_dask_process_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("distributed")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", TESTS_DIR if not path else f"{TESTS_DIR}{os.pathsep}{path}")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        results = run_cells(
            _cells([1, 2]), square_worker, tmp_path, scheduler=cluster.scheduler_address
        )
    assert [r["value"] for r in results] == [1, 4]
    assert os.getpid() not in {r["pid"] for r in results}
