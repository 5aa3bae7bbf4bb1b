"""Connecting to Ray for data and batch work (``--ray-address``).

``clinical-llm data deid --ray-address ADDRESS`` runs on Ray Data instead of
local processes. ``ADDRESS`` is what ``ray.init`` takes:

* ``local``: start a Ray on this machine for this run alone, with as many CPUs
  as ``--workers`` (what CI uses), and stop it afterwards;
* ``auto``: join the cluster this machine belongs to (``ray start --head`` /
  ``ray start --address ...`` ran here before);
* ``ray://host:10001``: a remote cluster through Ray Client.

Ray's usage statistics are switched off and no dashboard is started for a
local Ray. Nothing is downloaded: workers import this project as installed on
each node. Ray is an optional dependency: ``pip install 'clinical-llm[ray]'``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llm.errors import BadInputError

RAY_INSTALL_HINT = "pip install 'clinical-llm[ray]' (Ray Data 2.60)"
RAY_ADDRESS_HELP = (
    "Run on Ray Data: 'local' (a Ray on this machine with --workers CPUs, for this run), "
    "'auto' (the cluster this machine joined) or 'ray://HOST:PORT' (Ray Client). "
    "Needs the ray extra."
)


def check_ray_address(address: str) -> None:
    """Refuse an address ``ray.init`` would not understand, before anything starts.

    Raises:
        BadInputError: not ``local``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``.
    """
    if address in ("local", "auto") or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if sep and host and "/" not in host and port.isdigit():
        return
    raise BadInputError(
        f"--ray-address must be 'local', 'auto', 'ray://HOST:PORT' or 'HOST:PORT', got {address!r}"
    )


def import_ray() -> Any:
    """Import Ray with its usage statistics off.

    Raises:
        BadInputError: Ray (or Ray Data) is not installed; says how to install it.
    """
    # read when a Ray starts (and by `ray start`): this process never reports usage
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        import ray
        import ray.data  # the data extra (pyarrow, pandas): missing, it fails here
    except ImportError as exc:
        raise BadInputError(
            f"--ray-address needs Ray Data, which is not installed ({exc.name or exc}): "
            f"{RAY_INSTALL_HINT}"
        ) from None
    # Ray Data's INFO lines (plans, timings, where its logs are) stay in its log file:
    # the commands print their own progress and summary
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    return ray


@contextmanager
def ray_session(address: str, *, num_cpus: int) -> Iterator[Any]:
    """Connect to Ray for the length of a ``with`` block; yields the ``ray`` module.

    A Ray already connected in this process (a library user's ``ray.init``) is used as
    it is and left connected. Otherwise this connects (or, for ``local``, starts a Ray
    with ``num_cpus`` CPUs, no dashboard, worker output kept out of this process's
    stderr) and disconnects at the end.

    Args:
        address: ``local``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``.
        num_cpus: CPUs of a ``local`` Ray (ignored for a cluster).

    Raises:
        BadInputError: a bad address, or Ray not installed.
    """
    check_ray_address(address)
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": "WARNING"}
    if address == "local":
        ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
    else:
        ray.init(address=address, **options)
    try:
        yield ray
    finally:
        ray.shutdown()
