"""Steps as Ray tasks: on a Ray cluster (`--address`), or on a one-machine Ray that edgekit starts on loopback.

Each job is a task asking for one CPU; each benchmark device is a custom resource of capacity 1,
`edgekit-device:NAME`, held by the node the device is attached to, so Ray never runs two benchmarks on one
device at once. Tasks write into the step cache folder, which every node must see
at the same path (a shared file system): later steps on other nodes read the artifacts there, and an entry
appears there only once complete, so a node that dies mid-step leaves nothing half-written. Ray re-runs the
task of a dead worker or node elsewhere (max_retries); finished steps stay in the cache.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import Future
from typing import Any

from edgekit.errors import MissingDependencyError, UsageError
from edgekit.release import stepcache
from edgekit.release.steps import RETRIES, Job


def device_resource(device: str) -> str:
    """The Ray custom resource that stands for a benchmark device (declare it on the node it is attached to)."""
    return f"edgekit-device:{device}"


class RayExecutor:
    def __init__(self, address: str | None, jobs: int | None, timeout: float, devices: list[str]) -> None:
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # Ray reports usage unless told not to; edgekit never does
        if address is None:  # Ray's one-machine mode: every process binds to loopback, not the network's address
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        else:  # before importing Ray, which reads its settings once, when first imported
            _reachable(address, timeout)
        try:
            import ray
        except ImportError:
            raise MissingDependencyError("ray", "ray", "--executor ray") from None
        self._ray = ray
        if address is None:  # a Ray of this machine only, on loopback, holding every device of the pipeline
            context = ray.init(
                num_cpus=jobs or os.cpu_count() or 1,
                resources={device_resource(d): 1 for d in devices},
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            context = _join(ray, address, timeout)
        self.resources: dict[str, float] = ray.cluster_resources()
        missing = [d for d in devices if device_resource(d) not in self.resources]
        if missing:
            self.close()
            raise UsageError(
                f"No node of the Ray cluster at {address} holds the benchmark device(s) {', '.join(missing)}.",
                hint="Start the node each device is attached to with it as a resource, e.g. "
                f"ray start --address HEAD:6379 --resources '{{\"{device_resource(missing[0])}\": 1}}'.",
            )
        self.slots = jobs or max(1, int(self.resources.get("CPU", 1)))
        self.dashboard = getattr(context, "dashboard_url", None) or None
        self._build = ray.remote(max_retries=RETRIES)(stepcache.build)
        self._refs: list[Any] = []

    def submit(self, cache: str, job: Job, step: str) -> Future:
        resources = {device_resource(job.device): 1} if job.device is not None else {}
        lacking = [name for name in resources if name not in self.resources]
        if lacking:  # checked when the executor started; a node that left since is named, not waited for
            future: Future = Future()
            future.set_exception(UsageError(f"{step} needs {lacking[0]}, which no node of the cluster has."))
            return future
        task = self._build.options(num_cpus=1, resources=resources)
        ref = task.remote(cache, job.key, step, job.work)
        self._refs.append(ref)
        return ref.future()

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in self._refs:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # finished already, or its node is gone
                    pass
        self._ray.shutdown()


def _join(ray: Any, address: str, timeout: float) -> Any:
    """ray.init(address), given `timeout` seconds: something that accepts connections but never answers as a
    Ray head would keep it waiting for minutes, so it runs in a thread that is abandoned when time is up."""
    import threading

    outcome: dict[str, Any] = {}

    def join() -> None:
        try:
            outcome["context"] = ray.init(address=address, log_to_driver=False, configure_logging=False)
        except Exception as e:  # reported below, in the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=join, name="edgekit-ray-join", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise UsageError(f"The Ray cluster at {address} did not answer within {timeout:g} s.",
                         hint="Check the head's address and port (ray status on the head prints them).")  # fmt: skip
    if "error" in outcome:
        raise UsageError(f"Cannot join the Ray cluster at {address}: {outcome['error']}") from None
    return outcome["context"]


def _reachable(address: str, timeout: float) -> None:
    """Fail fast, naming the address, when nothing listens there (Ray itself would retry for minutes)."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address} is not auto, HOST:PORT or ray://HOST:PORT.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UsageError(f"No Ray cluster answers at {address} within {timeout:g} s: {e.strerror or e}.") from None
