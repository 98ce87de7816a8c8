"""The executor option group shared by ``eval`` and ``infer``: --executor, --ray-address, resources.

Not a command itself (``graphkit.cli.main.COMMAND_MODULES`` does not list it).
"""

from __future__ import annotations

from graphkit.runtime.ray_executor import EXECUTORS

RAY_KEYS = ("address", "workers", "num_cpus_per_worker", "num_gpus_per_worker")


def add_executor_arguments(parser, key_prefix: str = "") -> None:
    """The executor option group (shared by eval and infer): --executor, --ray-address, resources."""

    def key(name: str) -> str:
        return f" ({key_prefix}{name})" if key_prefix else ""

    group = parser.add_argument_group("executor (where the work runs)")
    group.add_argument(
        "--executor",
        choices=EXECUTORS,
        help=f"local: this machine (default); ray: Ray worker actors, one session each{key('executor')}",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDR",
        help=f"join this Ray cluster (host:port, or 'auto'); default: start Ray locally{key('ray.address')}",
    )
    group.add_argument(
        "--ray-workers",
        type=int,
        metavar="N",
        help=f"Ray worker actors (default: as many as the cluster's resources fit){key('ray.workers')}",
    )
    group.add_argument(
        "--ray-num-cpus-per-worker",
        type=float,
        metavar="CPUS",
        help=f"CPUs per Ray worker, also its ort threads (default 1){key('ray.num_cpus_per_worker')}",
    )
    group.add_argument(
        "--ray-num-gpus-per-worker",
        type=float,
        metavar="GPUS",
        help=f"GPUs per Ray worker; > 0 uses ort's CUDA provider where present{key('ray.num_gpus_per_worker')}",
    )


def executor_mapping(args, base: dict | None = None, executor: str | None = None) -> dict:
    """The ``ray:`` mapping from the executor flags, over ``base`` (e.g. a spec file's).

    ``--ray-*`` flags with an executor other than ray are an error, not silently ignored.
    """
    given = [f"--ray-{k.replace('_', '-')}" for k in RAY_KEYS if getattr(args, f"ray_{k}") is not None]
    if given and (executor or args.executor or "local") != "ray":
        from graphkit.util.errors import SpecError

        raise SpecError(f"{given[0]} needs --executor ray")
    ray = dict(base or {})
    for key in RAY_KEYS:
        value = getattr(args, f"ray_{key}")
        if value is not None:
            ray[key] = value
    return ray


def ray_settings(args, base: dict | None = None):
    """:class:`~graphkit.runtime.ray_executor.RaySettings` from the flags (over ``base``), errors naming the flag."""
    from graphkit.runtime.ray_executor import RaySettings
    from graphkit.util.typed_config import from_mapping

    return from_mapping(RaySettings, executor_mapping(args, base), "ray")
