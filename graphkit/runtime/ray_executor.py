"""Work items on a Ray cluster: actors that each hold one inference session, results to the driver.

Used by ``graphkit eval --executor ray`` (one item = one image) and ``graphkit infer --executor
ray`` (one item = a shard of input files). The contract:

- the model file (and its ONNX external data files) is read once by the driver and put in
  Ray's object store once (``ray.put``); every worker actor fetches it from there, writes it to
  a private temporary folder on its node, opens one backend session on it and deletes the copy;
- :meth:`RayExecutor.imap_unordered` calls ``task(session, payload)`` on the workers, at most
  ``window`` items in flight per worker, and yields ``(index, result)`` on the driver as
  results arrive. Only the driver writes files, so what the caller records is exactly the set
  of results that arrived;
- a worker that dies (killed, out of memory, its node lost) costs only its in-flight items:
  Ray reports them failed (``RayActorError``), the driver resubmits them to the other workers
  and starts a replacement worker from the same object-store copy of the model (at most
  ``MAX_REPLACEMENTS`` per run), which gets items once it holds its session (a replacement
  that cannot be placed never holds work hostage). A task that raises a :class:`GraphkitError` is not retried:
  the error reaches the caller as that error (one line on the CLI).

Files: a private local instance (no ``address``) keeps every file of its own under one
temporary folder of this run, ``$TMPDIR/gk-ray-XXXXXXXX/``: Ray's session folder (logs,
sockets) in ``r/`` (``ray.init(_temp_dir=...)``), and the workers' temporary files (the model
copy, ``graphkit-ray-model-*``; infer's shards) in ``tmp/`` (their ``TMPDIR``). Ray's
authentication token is a random one held in ``RAY_AUTH_TOKEN`` for the instance's processes,
so nothing is written to ``~/.ray/auth_token`` (unless the user set ``RAY_AUTH_MODE``,
``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``: then Ray's own rules apply). :meth:`RayExecutor.close`
stops Ray and removes that folder on every exit path (an error, Ctrl-C, SIGTERM). A joined
cluster (``address``) is the cluster's own: its nodes keep their files where they are set up to.

The worker side (what is shipped, the actor body) is :mod:`graphkit.runtime.ray_worker`.
Ray is imported only when an executor is started: :func:`require_ray` raises one
clear line when it is not installed (``pip install 'graphkit-onnx[ray]'``).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphkit.runtime.ray_worker import SessionWorker, model_files
from graphkit.util.errors import GraphkitError, SpecError, one_line
from graphkit.util.extras import require
from graphkit.util.signals import SIGNALS

EXECUTORS = ("local", "ray")
MAX_ATTEMPTS = 3
"""How often the driver submits one item before giving up."""
MAX_REPLACEMENTS = 8
"""How many dead workers one run replaces before it carries on with the survivors."""
START_TIMEOUT_S = 600.0
"""How long the driver waits for the workers to be placed and to open their sessions."""
RAY_AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
_PROCESS_TOKEN = secrets.token_hex(32)
"""The token of the private instances this process starts (one per process: Ray's driver caches
the first token it reads)."""


@contextlib.contextmanager
def private_instance_environment(scratch: Path):
    """The environment a private local Ray instance is started in (its processes inherit it):
    ``TMPDIR`` under ``scratch``, and a token in ``RAY_AUTH_TOKEN`` unless the user configured
    Ray's authentication. The driver's own environment is restored afterwards."""
    tempfile.gettempdir()  # the driver keeps its own temporary folder (cached before TMPDIR changes)
    changes = {"TMPDIR": str(scratch / "tmp")}
    if not any(os.environ.get(name) for name in RAY_AUTH_VARIABLES):
        changes["RAY_AUTH_TOKEN"] = _PROCESS_TOKEN
    previous = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class RaySettings:
    """Where and how large the Ray workers are (the ``ray:`` mapping of a spec)."""

    address: str | None = None
    """A running cluster's address (``ray start --head`` prints it; ``auto`` finds a local one).
    None: start a private local Ray instance for this run and stop it afterwards."""
    workers: int | None = None
    """Worker actors. None: as many as the cluster's CPUs (or GPUs) allow at the per-worker
    request."""
    num_cpus_per_worker: float = 1.0
    """CPUs Ray reserves per worker; also the ort intra-op threads when ``threads`` is unset."""
    num_gpus_per_worker: float = 0.0
    """GPUs Ray reserves per worker; > 0 makes the ort backend use CUDAExecutionProvider when
    that node's onnxruntime has it."""

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise SpecError(f"ray.workers (--ray-workers): must be at least 1, got {self.workers}")
        if not (math.isfinite(self.num_cpus_per_worker) and self.num_cpus_per_worker > 0):
            raise SpecError(
                f"ray.num_cpus_per_worker (--ray-num-cpus-per-worker): must be a finite number > 0, got {self.num_cpus_per_worker}"
            )
        if not (math.isfinite(self.num_gpus_per_worker) and self.num_gpus_per_worker >= 0):
            raise SpecError(
                f"ray.num_gpus_per_worker (--ray-num-gpus-per-worker): must be a finite number >= 0, got {self.num_gpus_per_worker}"
            )
        if self.address is not None and (not self.address.strip() or any(ord(c) < 32 for c in self.address)):
            raise SpecError(f"ray.address (--ray-address): not an address: {self.address!r}")


def _signal_handlers() -> dict[int, Any]:
    """SIGINT/SIGTERM handlers now (main thread only: elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {number: signal.getsignal(number) for number in SIGNALS}


def _restore_signal_handlers(handlers: dict[int, Any]) -> None:
    """Put back graphkit's handlers after ``ray.init``, which installs its own in the driver
    (SIGTERM -> ``sys.exit(15)``: exit 15, or an abort inside Ray's C++ core: exit 134); with
    graphkit's, SIGTERM is ``Terminated``: the executor shuts Ray down, exit 143."""
    for number, handler in handlers.items():
        if handler is not None and signal.getsignal(number) is not handler:
            signal.signal(number, handler)


def require_ray():
    """The ``ray`` module, or one GraphkitError line saying how to install it."""
    return require("ray", "ray", "the Ray executor", alternative="use --executor local")


PROBE_TIMEOUT_S = 10.0


def probe_address(address: str) -> None:
    """Refuse, with one line, a ``host:port`` (or ``ray://host:port``) nobody listens on.

    ``auto`` (Ray's lookup of a cluster started on this machine) is left to Ray.
    """
    if address == "auto":
        return
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise GraphkitError(f"ray: address {address!r} is not host:port (or 'auto')")
    import socket

    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise GraphkitError(
            f"ray: cannot reach the cluster at {address} ({exc.strerror or exc}); is 'ray start --head' running there?"
        ) from None


@dataclass
class _Slot:
    """One worker position: its current actor (``generation`` counts replacements) and figures."""

    actor: Any
    info: dict
    in_flight: int = 0
    alive: bool = True
    generation: int = 0
    items: int = 0
    busy_seconds: float = 0.0
    lost: int = 0
    peak_rss_kib: int = 0
    starting: Any = None  # a replacement's readiness (ObjectRef) until it holds its session


class RayExecutor:
    """Start (or join) Ray, ship the model once, run items on session-holding worker actors.

    Use as a context manager; :meth:`start` must be called before :meth:`imap_unordered`.
    """

    def __init__(
        self, settings: RaySettings, model_path: str | os.PathLike, backend: str = "ort", options: dict | None = None
    ):
        self.settings = settings
        self.model_path = Path(model_path)
        self.backend = backend
        self.options = dict(options or {})
        self.slots: list[_Slot] = []
        self.started_ray = False
        self.startup_seconds = 0.0
        self.retried = 0
        self.replaced = 0
        self._model_ref = None
        self._remote = None
        self._worker_args: tuple = ()
        self._first_submit: float | None = None
        self._last_result: float | None = None
        self.scratch: Path | None = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- start -------------------------------------------------------------------------------

    def start(self, check: Callable | None = None, argument: Any = None) -> list[dict]:
        """Connect, ship the model, create the workers and wait until each holds its session.

        ``check(session, argument)`` runs on every worker (e.g. to validate the model's inputs
        against the settings); its result is under ``"check"`` in each returned info.
        """
        ray = require_ray()
        started = time.perf_counter()
        files = model_files(self.model_path)
        self._connect(ray)
        count = self._worker_count(ray)
        options = dict(self.options)
        if self.backend == "ort" and options.get("threads") is None:
            options["threads"] = max(1, int(self.settings.num_cpus_per_worker))
        self._model_ref = ray.put(files)  # once; every worker reads this one copy
        del files
        self._remote = ray.remote(
            num_cpus=self.settings.num_cpus_per_worker, num_gpus=self.settings.num_gpus_per_worker
        )(SessionWorker)
        self._worker_args = ([self._model_ref], self.model_path.name, self.backend, options)
        self.slots = [_Slot(self._new_actor(), {}) for _ in range(count)]  # close() stops them on any error
        refs = [slot.actor.describe.remote(check, argument) for slot in self.slots]
        ready, waiting = ray.wait(refs, num_returns=len(refs), timeout=START_TIMEOUT_S)
        if waiting:
            raise GraphkitError(
                f"ray: only {len(ready)} of {count} workers started within {START_TIMEOUT_S:.0f} s "
                f"(each asks for {self._request_text()}); lower --ray-workers or the per-worker resources"
            )
        infos = [self._get(ray, ref) for ref in refs]
        for slot, info in zip(self.slots, infos):
            slot.info = info
        self.startup_seconds = time.perf_counter() - started
        return infos

    def _new_actor(self):
        return self._remote.remote(*self._worker_args, self.settings.num_gpus_per_worker)

    def _connect(self, ray) -> None:
        if ray.is_initialized():
            return  # a caller (a test, a notebook) already connected this process
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        if self.settings.address or os.environ.get("RAY_ADDRESS"):  # Ray also reads RAY_ADDRESS
            probe_address(self.settings.address or os.environ["RAY_ADDRESS"])  # ray.init would retry forever
        handlers = _signal_handlers()
        try:
            if self.settings.address:
                ray.init(address=self.settings.address, **kwargs)
            else:
                self.scratch = Path(tempfile.mkdtemp(prefix="gk-ray-"))  # short: Ray's socket paths must fit 107 bytes
                (self.scratch / "tmp").mkdir()
                with private_instance_environment(self.scratch):
                    ray.init(_temp_dir=str(self.scratch / "r"), **kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError...
            where = f"the cluster at {self.settings.address}" if self.settings.address else "a local Ray instance"
            raise GraphkitError(f"ray: cannot start or join {where} ({one_line(exc, 200)})") from exc
        finally:
            _restore_signal_handlers(handlers)
        self.started_ray = True

    def _worker_count(self, ray) -> int:
        resources = ray.cluster_resources()
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        s = self.settings
        if s.num_gpus_per_worker > gpus or s.num_cpus_per_worker > cpus:
            raise GraphkitError(
                f"ray: a worker asks for {self._request_text()} but the cluster has {cpus:g} CPU and {gpus:g} GPU"
            )
        fit = int(cpus // s.num_cpus_per_worker)
        if s.num_gpus_per_worker > 0:
            fit = min(fit, int(gpus // s.num_gpus_per_worker))
        if s.workers is None:
            return max(1, fit)
        if s.workers > fit:
            raise GraphkitError(
                f"ray: {s.workers} workers of {self._request_text()} do not fit the cluster "
                f"({cpus:g} CPU, {gpus:g} GPU: {fit} fit)"
            )
        return s.workers

    def _request_text(self) -> str:
        return f"{self.settings.num_cpus_per_worker:g} CPU and {self.settings.num_gpus_per_worker:g} GPU"

    @staticmethod
    def _get(ray, ref):
        """``ray.get`` that turns a task's GraphkitError back into itself (one line on the CLI)."""
        from ray.exceptions import RayTaskError

        try:
            return ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause if hasattr(exc, "cause") else None
            if isinstance(cause, GraphkitError):
                raise cause from None
            raise GraphkitError(f"ray worker failed: {one_line(cause or exc, 300)}") from None

    # -- run ---------------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        return len(self.slots)

    def imap_unordered(self, task: Callable, payloads: Iterable[Any], window: int = 2) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, task(session, payload))`` as results arrive (index = position in
        ``payloads``, which is read lazily: at most ``window`` items per worker are held)."""
        ray = require_ray()
        from ray.exceptions import RayActorError

        source = enumerate(payloads)
        retry: deque[tuple[int, Any, int]] = deque()
        in_flight: dict[Any, tuple[int, Any, int, _Slot, int]] = {}
        exhausted = False

        def next_item():
            nonlocal exhausted
            if retry:
                return retry.popleft()
            if exhausted:
                return None
            try:
                index, payload = next(source)
            except StopIteration:
                exhausted = True
                return None
            return index, payload, 0

        while True:
            for slot in self.slots:
                while slot.alive and slot.starting is None and slot.in_flight < window:
                    item = next_item()
                    if item is None:
                        break
                    index, payload, attempts = item
                    if self._first_submit is None:
                        self._first_submit = time.perf_counter()
                    ref = slot.actor.run.remote(task, payload)
                    in_flight[ref] = (index, payload, attempts + 1, slot, slot.generation)
                    slot.in_flight += 1
            starting = {s.starting: s for s in self.slots if s.alive and s.starting is not None}
            if not in_flight and not (retry or not exhausted):
                return
            if not in_flight and not starting:
                raise GraphkitError("ray: every worker died; finished items are kept, rerun to do the rest")
            ready, _ = ray.wait([*in_flight, *starting], num_returns=1, timeout=None if in_flight else START_TIMEOUT_S)
            if not ready:
                raise GraphkitError(
                    f"ray: no replacement worker started within {START_TIMEOUT_S:.0f} s; finished items are kept"
                )
            ref = ready[0]
            if ref in starting:  # a replacement worker is ready (or failed to open the model)
                self._started(ray, starting[ref])
                continue
            index, payload, attempts, slot, generation = in_flight.pop(ref)
            slot.in_flight -= 1
            try:
                result, meta = self._get(ray, ref)
            except RayActorError as exc:  # the worker died: only its in-flight items are lost
                if generation == slot.generation:
                    self._replace(slot, exc)
                if attempts >= MAX_ATTEMPTS:
                    raise GraphkitError(
                        f"ray: item {index} failed on {attempts} workers, last: {one_line(exc, 200)}"
                    ) from None
                self.retried += 1
                slot.lost += 1
                retry.append((index, payload, attempts))
                continue
            slot.items += 1
            slot.busy_seconds += meta["seconds"]
            slot.peak_rss_kib = max(slot.peak_rss_kib, meta["peak_rss_kib"])
            self._last_result = time.perf_counter()
            yield index, result

    def _started(self, ray, slot: _Slot) -> None:
        ref, slot.starting = slot.starting, None
        try:
            info = self._get(ray, ref)
        except Exception:  # noqa: BLE001 - it could not start: carry on without it
            slot.alive = False
            return
        slot.info["pids"] = [*slot.info.get("pids", [slot.info["pid"]]), info["pid"]]
        slot.info["node"] = info["node"]

    def _replace(self, slot: _Slot, error: BaseException) -> None:
        """Start a new worker in a dead worker's place (it loads the model from the object store)."""
        ray = require_ray()
        with contextlib.suppress(Exception):
            ray.kill(slot.actor)
        slot.generation += 1
        if self.replaced >= MAX_REPLACEMENTS:
            slot.alive = False
            return
        self.replaced += 1
        slot.actor = self._new_actor()
        slot.starting = slot.actor.describe.remote(None, None)  # no items for it until it is ready
        slot.info.setdefault("deaths", []).append(one_line(error, 160))

    def stats(self, unit: str = "items", driver_seconds: float | None = None) -> dict:
        """Per-worker counts, rates and peak RSS, the start-up cost, retries (for metrics.json and
        summaries); ``driver_seconds``: the caller's own time on the items (reading, writing)."""
        wall = (self._last_result - self._first_submit) if self._first_submit and self._last_result else 0.0
        workers = []
        for k, slot in enumerate(self.slots):
            workers.append(
                {
                    "worker": k,
                    "node": slot.info["node"],
                    "pids": slot.info.get("pids", [slot.info["pid"]]),
                    "providers": slot.info.get("providers"),
                    unit: slot.items,
                    "busy_seconds": round(slot.busy_seconds, 4),
                    f"{unit}_per_second": round(slot.items / wall, 4) if wall > 0 else None,
                    f"{unit}_per_busy_second": round(slot.items / slot.busy_seconds, 4) if slot.busy_seconds else None,
                    "peak_rss_mib": round(slot.peak_rss_kib / 1024, 1),
                    "lost_in_flight": slot.lost,
                    "alive": slot.alive,
                }
            )
        return {
            "kind": "ray",
            "address": self.settings.address or "local",
            "workers": len(self.slots),
            "num_cpus_per_worker": self.settings.num_cpus_per_worker,
            "num_gpus_per_worker": self.settings.num_gpus_per_worker,
            "startup_seconds": round(self.startup_seconds, 3),
            "run_seconds": round(wall, 3),
            "retried": self.retried,
            "replaced_workers": self.replaced,
            f"driver_seconds_per_{unit[:-1] if unit.endswith('s') else unit}": (
                round(driver_seconds / max(1, sum(s.items for s in self.slots)), 5)
                if driver_seconds is not None
                else None
            ),
            "per_worker": workers,
        }

    def close(self) -> None:
        """Stop the workers; stop Ray when this executor started it, and remove its files."""
        try:
            self._stop()
        finally:
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)
                self.scratch = None

    def _stop(self) -> None:
        try:
            ray = require_ray()
        except GraphkitError:
            return
        if not ray.is_initialized():
            return
        for slot in self.slots:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(slot.actor)
        self.slots = []
        self._model_ref = None
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False
