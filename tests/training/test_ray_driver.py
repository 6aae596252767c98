"""The Ray executor's driver loop against a stand-in for Ray: no cluster, no cores, no timing involved.

What the driver does with what Ray tells it: a cluster lost after connecting
(`RayError`, `ConnectionError` from ``ray.put``, ``ray.wait``, ``ray.get``)
is one line and exit 7; folds that finished are handed over before a stop
request is honoured and before a failed fold ends the run; what is left is
cancelled, even when cancelling fails too.  The real Ray is exercised in
test_ray_executor.py.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from pipeline.core.config import ExecutorConfig
from pipeline.core.errors import ClusterError
from pipeline.training.interrupt import StopRequest
from pipeline.training.ray_executor import RayExecutor


class RayError(Exception):
    pass


class RayTaskError(RayError):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class FakeRay:
    """Just enough of the ray module: each task's result is decided by the test, and `wait` follows a script."""

    def __init__(self, outcomes: dict[int, Any], script: list[list[int]] | None = None) -> None:
        self.exceptions = types.SimpleNamespace(RayError=RayError, RayTaskError=RayTaskError)
        self.outcomes = outcomes  # fold index -> result, or an exception ray.get raises
        self.script = list(script or [])  # the fold indices each ray.wait(num_returns=1) reports ready
        self.cancelled: list[int] = []
        self.fail_on: dict[str, BaseException] = {}

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail_on:
            raise self.fail_on[name]

    def remote(self, **options: Any) -> Any:
        ray = self

        class Remote:
            def __init__(self, fn: Any) -> None:
                self.fn = fn

            def remote(self, task: Any, data_ref: Any) -> int:
                ray._maybe_fail("remote")
                return task.index

        return Remote

    def put(self, value: Any) -> str:
        self._maybe_fail("put")
        return "data"

    def wait(self, refs: list[int], num_returns: int = 1, timeout: float | None = None) -> tuple[list, list]:
        self._maybe_fail("wait")
        if num_returns == 1:
            ready = [r for r in (self.script.pop(0) if self.script else []) if r in refs]
        else:  # a sweep for whatever finished meanwhile: the folds whose outcome is known and not scripted later
            later = {r for step in self.script for r in step}
            ready = [r for r in refs if r in self.outcomes and r not in later]
        return ready, [r for r in refs if r not in ready]

    def get(self, ref: int) -> Any:
        self._maybe_fail("get")
        outcome = self.outcomes[ref]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def cancel(self, ref: int, force: bool = False) -> None:
        self.cancelled.append(ref)
        self._maybe_fail("cancel")

    def shutdown(self) -> None:
        self._maybe_fail("shutdown")


def _executor(ray: FakeRay) -> RayExecutor:
    executor = RayExecutor.__new__(RayExecutor)
    executor.config, executor.ray, executor.address, executor.started_here = ExecutorConfig(), ray, None, True
    return executor


def _tasks(n: int) -> list[Any]:
    return [types.SimpleNamespace(index=k, run_id="20261101-233000") for k in range(n)]


def _run(executor: RayExecutor, tasks: list[Any], stop: StopRequest | None = None) -> list[int]:
    handed: list[int] = []
    executor.run(tasks, data=None, on_result=lambda task, result: handed.append(task.index), stop=stop or StopRequest())  # type: ignore[arg-type]
    return handed


@pytest.mark.parametrize("where", ["put", "remote", "wait", "get"])
@pytest.mark.parametrize("error", [RayError("the GCS went away"), ConnectionError("ray client lost")])
def test_a_cluster_lost_after_connecting_is_one_cluster_error(where, error):
    ray = FakeRay({0: "r0", 1: "r1"}, script=[[0], [1]])
    ray.fail_on[where] = error
    with pytest.raises(ClusterError) as e:
        _run(_executor(ray), _tasks(2))
    assert "\n" not in str(e.value) and ("lost the Ray cluster" in str(e.value) or "failed on Ray" in str(e.value))
    assert e.value.exit_code == 7


def test_a_cancel_that_fails_on_a_lost_cluster_does_not_hide_the_first_error():
    ray = FakeRay({0: "r0", 1: "r1"}, script=[[0]])
    ray.fail_on["cancel"] = ConnectionError("gone")
    ray.fail_on["wait"] = RayError("gone")
    with pytest.raises(ClusterError, match="while waiting for the folds"):
        _run(_executor(ray), _tasks(2))
    assert ray.cancelled == [0, 1]


def test_closing_a_lost_cluster_raises_nothing():
    ray = FakeRay({})
    ray.fail_on["shutdown"] = ConnectionError("gone")
    _executor(ray).close()


def test_a_fold_that_finished_as_the_stop_came_is_handed_over_not_cancelled():
    ray = FakeRay({0: "r0", 1: "r1", 2: "r2"}, script=[[0]])
    stop = StopRequest()
    stop.set("SIGTERM")  # already asked when fold 0 turns out finished
    handed: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        _executor(ray).run(_tasks(3), None, lambda task, result: handed.append(task.index), stop)  # type: ignore[arg-type]
    assert handed == [0, 1, 2] and ray.cancelled == []  # 1 and 2 had finished too: nothing was lost


def test_a_stop_cancels_only_what_has_not_finished():
    ray = FakeRay({0: "r0"}, script=[[], [9]])  # fold 0 finished; folds 1 and 2 still training (no outcome yet)
    stop = StopRequest()
    stop.set("SIGINT")
    handed: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        _executor(ray).run(_tasks(3), None, lambda task, result: handed.append(task.index), stop)  # type: ignore[arg-type]
    assert handed == [0] and sorted(ray.cancelled) == [1, 2]


def test_a_failed_fold_ends_the_run_after_the_finished_ones_are_handed_over():
    ray = FakeRay({0: RayTaskError(RuntimeError("boom")), 1: "r1"}, script=[[0]])  # fold 1 done, fold 2 training
    handed: list[int] = []
    with pytest.raises(ClusterError, match="fold 0 of run 20261101-233000 failed on Ray: RuntimeError: boom") as e:
        _executor(ray).run(_tasks(3), None, lambda task, result: handed.append(task.index), StopRequest())  # type: ignore[arg-type]
    assert e.value.exit_code == 7 and handed == [1] and ray.cancelled == [2]


@pytest.mark.parametrize(
    "given, environment, expected",
    [(None, None, "local"), ("auto", None, "auto"), (None, "10.0.0.1:6379", "10.0.0.1:6379")],
)
def test_without_an_address_ray_starts_its_own_never_attaches_to_a_running_cluster(
    monkeypatch, given, environment, expected
):
    ray = FakeRay({})
    seen: dict[str, Any] = {}
    ray.is_initialized = lambda: False  # type: ignore[attr-defined]
    ray.init = lambda **kwargs: seen.update(kwargs)  # type: ignore[attr-defined]
    monkeypatch.setattr("pipeline.training.ray_executor._import_ray", lambda: ray)
    monkeypatch.setattr("pipeline.training.ray_executor.probe", lambda address, timeout: None)
    if environment is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", environment)
    RayExecutor(ExecutorConfig(kind="ray", address=given))
    assert seen["address"] == expected
