"""Where the study's independent runs are computed: one after another in this process (``serial``, the default,
exactly as before) or as Ray tasks (``ray``) on a local instance, a Ray cluster or a Slurm allocation.

A stage of a chapter (every seed's embedding tuning, a learning-rate grid, the arms' branches, their scoring)
hands its configs to :func:`current`'s ``map``, which returns the results in the configs' order. A Ray task
computes one run through the same owner that computes it serially (``tuning.tune``, ``evaluate.evaluate``,
``transfer.transfer``): the run's lock and manifest (:mod:`kslottery.method.runs`) keep two workers from
writing one run, and a task Ray retries after a worker died resumes from the run's ``.partial`` folder. Ray
schedules; nothing here does. The next stage starts when ``map`` returns.

The choice reaches a notebook kernel through the environment (``kslottery run --executor ray`` sets it, and starts
the one local instance the kernels join when no cluster is named): ``KSL_EXECUTOR`` (serial or ray),
``KSL_RAY_ADDRESS`` (the instance or cluster to join; none: the kernel starts a local one),
``KSL_WORKERS`` (local: CPUs of the instance; a cluster: tasks in flight at most) and ``KSL_RESOURCES`` (the
profile's ``resources:`` block as JSON: CPUs, which are also torch threads, and GPUs per run kind). Every value is
parsed and checked, never evaluated.

    >>> ex = current({})
    >>> ex.name, ex.map(abs, [-2, 3])
    ('serial', [2, 3])
    >>> parse_resources({"tune": {"cpus": 2, "gpus": 1}})["tune"]
    {'cpus': 2, 'gpus': 1}
    >>> current({"KSL_EXECUTOR": "dask"})
    Traceback (most recent call last):
    ...
    kslottery.method.errors.KSLError: KSL_EXECUTOR is 'dask'; use serial or ray (kslottery run --executor ray)
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from ..method import runs
from ..method.errors import KSLError

EXECUTORS = ("serial", "ray")
KINDS = ("tune", "eval", "transfer")   # discovery (a KS test over the changed rows) stays in the calling process
DEFAULT = {"cpus": 1, "gpus": 0}
# A task whose worker died (killed, out of memory, a lost node) runs again: its run resumes from its .partial folder.
RETRIES = 3
# Forwarded to every worker: a worker on another node does not inherit the driver's environment.
# (The runs folder goes with each task: see _task.)
FORWARD = ("KSL_DATA_DIR", "KSL_CACHE", "SACREBLEU", "HF_HUB_OFFLINE")


def parse_resources(block) -> dict[str, dict]:
    """The profile's ``resources:`` block, checked: {kind: {"cpus": int >= 1, "gpus": number >= 0}} for the run
    kinds in KINDS, each filled with DEFAULT."""
    if block is None:
        block = {}
    if not isinstance(block, dict):
        raise KSLError(f"resources is {type(block).__name__}, not a mapping", "write resources: {tune: {cpus: 1, gpus: 0}}")
    out = {}
    for kind in KINDS:
        spec = block.get(kind) or {}
        if not isinstance(spec, dict) or set(spec) - set(DEFAULT):
            raise KSLError(f"resources.{kind} is {spec!r}", f"give it cpus: N and gpus: N ({', '.join(DEFAULT)} only)")
        cpus, gpus = spec.get("cpus", DEFAULT["cpus"]), spec.get("gpus", DEFAULT["gpus"])
        if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
            raise KSLError(f"resources.{kind}.cpus is {cpus!r}", "give a whole number of CPUs, at least 1")
        if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus < 0:
            raise KSLError(f"resources.{kind}.gpus is {gpus!r}", "give a number of GPUs, 0 or more (0.5: two runs share one)")
        out[kind] = {"cpus": cpus, "gpus": gpus}
    unknown = sorted(set(block) - set(KINDS))
    if unknown:
        raise KSLError(f"resources names unknown run kinds {unknown}", f"use {', '.join(KINDS)}")
    return out


class Serial:
    """Today's behaviour: every item in this process, in order."""
    name = "serial"

    def map(self, fn: Callable, items, kind: str = "tune") -> list:
        return [fn(item) for item in items]


def _task(fn: Callable, item, threads: int, root: str) -> tuple:
    """In a Ray worker: compute one item with ``threads`` torch threads into the runs folder ``root`` (the
    driver's, which a worker reused across notebooks or tests must not take from its own start), its output in a
    log under ``root/.logs``. Returns (result or None, the runs it named, None or a one-line error): an exception
    never crosses back unpickled, and the driver records the runs for the notebook's provenance as if it had named
    them."""
    import torch

    torch.set_num_threads(threads)
    os.environ["KSL_RUNS"] = root
    logs = Path(root) / ".logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"task-{uuid.uuid4().hex[:12]}.log"
    with tempfile.NamedTemporaryFile("r", suffix=".runs") as named:
        runs.record_runs_to(named.name)
        try:
            with open(log, "a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                result, error = fn(item), None
        except Exception as e:   # reported to the driver in one line, with the log
            result, error = None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        finally:
            runs.record_runs_to(None)
        names = list(dict.fromkeys(named.read().split()))
    if names:   # the log takes the name of the run the task computed last (the one a failure is about)
        log = log.replace(log.with_name(f"{names[-1]}.log"))
    if error:
        error = f"run {names[-1] if names else '(none named yet)'} failed in a Ray worker ({error}); its log: {log}"
    return result, names, error


class Ray:
    """Each item a Ray task declaring its run kind's resources; results in the items' order."""
    name = "ray"

    def __init__(self, address: str | None, workers: int | None, resources: dict, progress: bool = True):
        self.address, self.workers, self.resources, self.progress = address, workers, resources, progress

    def _connect(self):
        import ray

        if not ray.is_initialized():
            env = {k: os.environ[k] for k in FORWARD if k in os.environ}
            local = {} if self.address else {"num_cpus": self.workers, "object_store_memory": 256 * 2**20}
            ours = bool(local) and "RAY_worker_niceness" not in os.environ
            if ours:   # a serial study runs at its caller's priority; Ray would start its workers 15 nicer, and the
                # study would yield its cores to anything else on the machine (a tuning step 20-45 s beside the
                # tests on 2 cores, 8.5 s quiet). Whoever sets the variable keeps their choice; the raylet reads it
                # when ray.init starts it, so the caller's environment is left as it was.
                os.environ["RAY_worker_niceness"] = "0"
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": env}, **local)
            finally:
                if ours:
                    del os.environ["RAY_worker_niceness"]
        return ray

    def map(self, fn: Callable, items, kind: str = "tune") -> list:
        items = list(items)
        if not items:
            return []
        ray = self._connect()
        res = self.resources[kind]
        remote = ray.remote(_task).options(num_cpus=res["cpus"], num_gpus=res["gpus"], max_retries=RETRIES,
                                          retry_exceptions=False)
        root = str(runs.runs_root().resolve())
        # At once, Ray runs as many tasks as the free resources hold (or, on a cluster, --workers): the rest wait.
        total = ray.cluster_resources()
        slots = int(total.get("CPU", 1) // res["cpus"])
        if res["gpus"]:
            slots = min(slots, int(total.get("GPU", 0) // res["gpus"]))
        cap = self.workers if self.address and self.workers else len(items)
        slots = max(1, min(slots, cap))
        return self._gather(ray, remote, fn, items, kind, root, slots, cap)

    def _gather(self, ray, remote, fn, items, kind, root, slots, cap) -> list:
        from tqdm.auto import tqdm

        results, names, todo, pending = [None] * len(items), [[] for _ in items], list(range(len(items))), {}
        bar = tqdm(total=len(items), desc=f"{kind} runs ({self.name})", disable=not self.progress)
        while todo or pending:
            while todo and len(pending) < cap:
                i = todo.pop(0)
                pending[remote.remote(fn, items[i], self.resources[kind]["cpus"], root)] = i
            show(bar, slots, len(pending), len(todo))
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=10)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    results[i], names[i], error = ray.get(ref)
                except ray.exceptions.RayError as e:   # the worker died more often than Ray retries
                    error = (f"{kind} task {i + 1} of {len(items)} was lost ({type(e).__name__}) after "
                             f"{RETRIES} retries; worker logs: {root}/.logs")
                if error:
                    for other in pending:
                        ray.cancel(other)
                    bar.close()
                    raise KSLError(error, "fix the cause and run the same command again: finished runs are reused")
                bar.update(1)
                show(bar, slots, len(pending), len(todo))
        bar.close()
        runs.note_runs([n for ns in names for n in ns])   # in the items' order, as a serial map names them
        return results


def environment(name: str | None, address: str | None = None, workers: int | None = None,
                resources: dict | None = None) -> dict[str, str]:
    """The variables that pass a choice to a notebook kernel (``kslottery run --executor ...``), checked here so
    a bad choice is one line before any kernel starts. No choice: only the profile's resources (the caller's own
    KSL_EXECUTOR, if any, holds)."""
    if name is None:
        if address is not None or workers is not None:
            raise KSLError("--address and --workers choose how Ray runs", "add --executor ray")
        return {"KSL_RESOURCES": json.dumps(parse_resources(resources))}
    if name not in EXECUTORS:
        raise KSLError(f"unknown executor {name!r}", f"use one of {', '.join(EXECUTORS)}")
    if name == "serial" and (address is not None or workers is not None):
        raise KSLError("--address and --workers apply to the ray executor", "drop them, or pass --executor ray")
    if workers is not None and workers < 1:
        raise KSLError(f"--workers {workers}", "give at least 1")
    env = {"KSL_EXECUTOR": name, "KSL_RAY_ADDRESS": address or "", "KSL_WORKERS": str(workers or ""),
           "KSL_RESOURCES": json.dumps(parse_resources(resources))}
    if name == "ray":
        try:
            import ray  # noqa: F401 -- installed? (the ray extra)
        except ImportError:
            raise KSLError("the ray executor needs Ray", "pip install 'kslottery[ray]' (ray==2.60.0)") from None
    current(env)   # every value as the kernel will read it
    return env


@contextlib.contextmanager
def environ(env: dict[str, str]):
    """``env`` set in this process (and so in the kernels it starts) for the block, then as it was. A local Ray
    study starts its one Ray instance here, for every notebook's kernel to join (started once, not per notebook),
    and stops it after the last one."""
    env, local = dict(env), env.get("KSL_EXECUTOR") == "ray" and not env.get("KSL_RAY_ADDRESS")
    if local:
        import ray

        local = not ray.is_initialized()   # an instance this process had already is left running after the block
        Ray(None, int(env["KSL_WORKERS"]) if env.get("KSL_WORKERS") else None, {})._connect()
        env["KSL_RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if local:
            ray.shutdown()


def show(bar, slots: int, pending: int, todo: int) -> None:
    """finished / running / waiting on the bar: of the submitted tasks, Ray runs as many as the slots hold."""
    bar.set_postfix_str(f"finished {bar.n}, running {min(slots, pending)}, waiting {todo + max(0, pending - slots)}")


def current(env: dict | None = None, progress: bool = True):
    """The executor the environment asks for (``os.environ`` unless ``env`` is given), checked."""
    env = os.environ if env is None else env
    name = env.get("KSL_EXECUTOR", "serial") or "serial"
    if name not in EXECUTORS:
        raise KSLError(f"KSL_EXECUTOR is {name!r}", "use serial or ray (kslottery run --executor ray)")
    if name == "serial":
        return Serial()
    workers = env.get("KSL_WORKERS") or None
    if workers is not None and (not workers.isdigit() or int(workers) < 1):
        raise KSLError(f"KSL_WORKERS is {workers!r}", "give a whole number of workers, at least 1 (--workers 2)")
    try:
        resources = parse_resources(json.loads(env.get("KSL_RESOURCES") or "{}"))
    except ValueError:
        raise KSLError("KSL_RESOURCES is not JSON", "let kslottery run set it from the profile's resources: block") from None
    return _shared(env.get("KSL_RAY_ADDRESS") or None, int(workers) if workers else None, resources, progress)


_instances: dict = {}


def _shared(address, workers, resources, progress) -> Ray:
    """One Ray executor per setting in a process (a notebook kernel asks at every stage)."""
    key = (address, workers, json.dumps(resources, sort_keys=True), progress)
    if key not in _instances:
        _instances[key] = Ray(address, workers, resources, progress)
    return _instances[key]
