"""Waiting for the workers a Ray job needs, for a bounded time, and saying which resource is missing.

On a cluster the job driver starts as soon as the head is up; worker pods may still be scheduled, or
never be (no node with a GPU, a memory request no node offers), and an autoscaling group may start with
no workers at all. Ray itself would wait forever (Ray Train retries its worker-group start, Tune keeps
trials pending). Before a search or a training starts, `wait_for` asks the autoscaler for the bundles
(a no-op on a fixed-size cluster) and waits until the nodes could hold them, or fails naming them.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

Bundle = Mapping[str, float]


class ClusterResourcesError(RuntimeError):
    """The cluster never offered what the job needs; the message names the resource and the fix."""


def fits(bundles: Sequence[Bundle], nodes: Sequence[Mapping[str, float]]) -> bool:
    """Whether every bundle can be placed on some node (first fit, largest bundles first), as a
    placement group with the SPREAD/PACK strategies would at best."""
    free = [dict(n) for n in nodes]
    for bundle in sorted(bundles, key=lambda b: sorted(b.items()), reverse=True):
        for node in free:
            if all(node.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items()):
                for k, v in bundle.items():
                    node[k] = node.get(k, 0.0) - v
                break
        else:
            return False
    return True


def describe(bundles: Sequence[Bundle]) -> str:
    total: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            total[k] = total.get(k, 0.0) + v
    each = ", ".join(f"{v:g} {k}" for k, v in sorted(bundles[0].items())) if bundles else "nothing"
    return f"{len(bundles)} x ({each}) = " + ", ".join(f"{v:g} {k}" for k, v in sorted(total.items()))


def _offer(node: Mapping[str, float]) -> str:
    """One node's CPUs, GPUs and memory as a person reads them: "0 CPU, 0 GPU, 2.0 GiB memory"."""
    return f"{node.get('CPU', 0):g} CPU, {node.get('GPU', 0):g} GPU, {node.get('memory', 0) / 2**30:.1f} GiB memory"


def alive_nodes() -> list[dict[str, float]]:
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def wait_for(
    bundles: Sequence[Bundle],
    timeout_s: float,
    what: str,
    where: str,
    *,
    nodes: Callable[[], list[dict[str, float]]] = alive_nodes,
    poll_s: float = 0.5,
) -> float:
    """Block until the cluster's nodes could hold `bundles`; return the seconds waited.

    Raises ClusterResourcesError after `timeout_s` naming what is missing (and what the nodes offer).
    """
    from ray.autoscaler.sdk import request_resources

    start = time.monotonic()
    if fits(bundles, nodes()):
        return 0.0
    request_resources(bundles=[dict(b) for b in bundles])  # the autoscaler's demand; nothing on a fixed cluster
    try:
        while True:
            current = nodes()
            if fits(bundles, current):
                return time.monotonic() - start
            if time.monotonic() - start >= timeout_s:
                offered_text = "; ".join(_offer(n) for n in current)
                names = sorted({k for b in bundles for k in b})
                short = [k for k in names if not fits([{k: b.get(k, 0.0)} for b in bundles], current)]
                raise ClusterResourcesError(
                    f"{what} needs {describe(bundles)}, and after {timeout_s:g} s the Ray cluster offers only "
                    f"[{offered_text}] ({len(current)} node(s), the head included). Missing: "
                    + (", ".join(short) if short else "no node holds a whole bundle")
                    + f". Its worker pods may not be schedulable (no node with the GPUs or memory {where} asks for: "
                    f"kubectl describe pod), or the autoscaler cannot add nodes; ask for less, or raise "
                    f"{where}.startup_timeout_s if the nodes are merely slow to come."
                )
            time.sleep(poll_s)
    finally:
        request_resources(bundles=[])  # let the autoscaler size the cluster by the job's own demand again
