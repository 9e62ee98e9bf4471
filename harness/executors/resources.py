"""Slurm resources of a cell's job: a benchmark's ``slurm:`` mapping in the suite, then the command line's
``--slurm-*`` overrides. Checked twice before anything is submitted: types and ranges when the suite loads (with
the suite's file and line), and against the cluster itself with ``sbatch --test-only`` (a partition that does not
exist, more CPUs, memory or GPUs than a node has), so a bad request never leaves half a run queued.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

# key: (type, minimum or None, help). The sbatch flag each one becomes is in `sbatch_flags`.
RESOURCE_KEYS: dict[str, tuple[type | tuple[type, ...], float | None, str]] = {
    "partition": (str, None, "the partition (queue) to submit to"),
    "account": (str, None, "the account charged"),
    "qos": (str, None, "the quality of service"),
    "constraint": (str, None, "node features, e.g. a100"),
    "gpus_per_node": (int, 0, "GPUs of one cell; more than one runs the cell under torchrun"),
    "cpus_per_task": (int, 1, "CPU cores of one job"),
    "mem_gb": ((int, float), 0.001, "memory of one job in GB"),
    "timeout_min": (int, 1, "wall-clock limit of one job; a training stage past it is requeued and resumes"),
}
DEFAULTS: dict[str, Any] = {"gpus_per_node": 0, "cpus_per_task": 1, "timeout_min": 240}


def resource_problem(key: str, value: Any) -> str | None:
    """Why ``key: value`` is not a valid resource, or None."""
    if key not in RESOURCE_KEYS:
        return f"unknown slurm resource {key!r}; known: {', '.join(RESOURCE_KEYS)}."
    kind, minimum, _ = RESOURCE_KEYS[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        wanted = "a string" if kind is str else "an integer" if kind is int else "a number"
        return f"slurm resource {key} must be {wanted}, got {value!r}."
    if kind is str and not value.strip():
        return f"slurm resource {key} must not be empty."
    if minimum is not None and value < minimum:
        return f"slurm resource {key} must be at least {minimum}, got {value!r}."
    return None


def check_resources(resources: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``resources`` checked key by key (ConfigError naming ``where`` and the key)."""
    for key, value in resources.items():
        problem = resource_problem(key, value)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return dict(resources)


def merged(benchmark: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A benchmark's resources: defaults, then its suite entry, then the command line."""
    return {**DEFAULTS, **benchmark, **{k: v for k, v in overrides.items() if v is not None}}


def sbatch_flags(resources: Mapping[str, Any]) -> list[str]:
    flags = [f"--cpus-per-task={resources['cpus_per_task']}", f"--time={resources['timeout_min']}"]
    for key in ("partition", "account", "qos", "constraint"):
        if resources.get(key):
            flags.append(f"--{key}={resources[key]}")
    if resources.get("mem_gb"):
        flags.append(f"--mem={max(1, round(resources['mem_gb'] * 1024))}M")
    if resources.get("gpus_per_node"):
        flags.append(f"--gpus-per-node={resources['gpus_per_node']}")
    return flags


def submitit_parameters(resources: Mapping[str, Any]) -> dict[str, Any]:
    """The same request as `sbatch_flags`, as submitit's SlurmExecutor parameters."""
    params: dict[str, Any] = {"cpus_per_task": resources["cpus_per_task"], "time": resources["timeout_min"],
                              "ntasks_per_node": 1, "nodes": 1}
    for key in ("partition", "account", "qos", "constraint"):
        if resources.get(key):
            params[key] = resources[key]
    if resources.get("mem_gb"):
        params["mem"] = f"{max(1, round(resources['mem_gb'] * 1024))}M"
    if resources.get("gpus_per_node"):
        params["gpus_per_node"] = resources["gpus_per_node"]
    return params


def check_against_cluster(resources: Mapping[str, Any], benchmarks: list[str]) -> None:
    """Ask Slurm whether it would accept this request (``sbatch --test-only``: nothing is queued)."""
    if shutil.which("sbatch") is None:
        raise ConfigError("--executor slurm: `sbatch` is not on PATH; run on a Slurm login node (or start the test "
                          "cluster: .ci/slurm.sh start).")
    command = ["sbatch", "--test-only", *sbatch_flags(resources), "--wrap", "true"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise ConfigError(f"Slurm refuses the resources of benchmark(s) {', '.join(benchmarks)} "
                          f"({' '.join(sbatch_flags(resources))}): {why[-1] if why else 'no reason given'}. "
                          f"Nothing was submitted; fix the suite's `slurm:` entry or the --slurm-* options.")
