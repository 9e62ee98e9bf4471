"""Issue 24's one-shot GPU check, runnable without nox: ``PYTHONPATH=. python -m harness.gpu_check [OUT]``
(``nox -s gpu-speed [-- OUT]`` runs the same). Installs nothing.

1. the CUDA tests and the no-sync test (60 s at most);
2. the speed suite's ``gpu-check`` profile, one benchmark at a time, each under its own time bound (290 s in
   all; one that runs over loses only its own cells; a re-run resumes): ViT-B/16 as published, random weights,
   every method, bf16 with CUDA graphs, the same eager, throughput at batch 32, fp32 (TF32), batch 8;
3. ``summary.md`` (`harness.speed_summary`: one row per record) and ``table.md`` (the paper's layout).

Everything goes under OUT (default ``results/speed-gpu-h200``), the whole output in ``gpu-speed.log``; the exit
code is 1 if any step failed (``failed-steps.txt`` names them), 2 without a GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

PROFILE, DEVICE = "gpu-check", "cuda"  # module constants: tests rehearse the flow on a CPU with a small profile
TESTS = ("tests/harness/test_cuda_speed.py", "tests/methods/test_no_host_sync.py")
TESTS_ARGS = ("-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *TESTS)
TESTS_S = 60
BENCHMARKS = (("vit-b16/*", 75), ("vit-b16-eager/*", 55), ("vit-b16-bs32/*", 65), ("vit-b16-fp32/*", 45),
              ("vit-b16-bs8/*", 50))  # (the cells of one benchmark of the profile, seconds at most): 290 s in all


def _step(name: str, command: list[str], log, timeout: float | None = None, stdout_to: Path | None = None) -> bool:
    log.write(f"\n$ {' '.join(command)}   [{time.strftime('%H:%M:%S', time.gmtime())} UTC]\n")
    log.flush()
    try:
        env = {**os.environ, "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        out, ok = done.stdout + done.stderr, done.returncode == 0
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        out, ok = out + f"\n{name}: stopped after {timeout:g} s\n", False
    if stdout_to is not None and ok:
        stdout_to.write_text(done.stdout)
    log.write(out)
    log.flush()
    print(out, end="")
    return ok


def main(argv: list[str] | None = None) -> int:
    import torch

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "results/speed-gpu-h200")
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print("gpu_check needs a CUDA GPU (torch.cuda.is_available() is False).", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    py = sys.executable
    with open(out / "gpu-speed.log", "a") as log:
        if DEVICE == "cuda":
            _step("nvidia-smi", ["nvidia-smi"], log, timeout=20)
        if not _step("cuda-tests", [py, *TESTS_ARGS], log, timeout=TESTS_S):
            failed.append("cuda-tests")
        for cells, seconds in BENCHMARKS:
            if not _step(cells, [py, "-m", "harness", "run", "suites/speed.yaml", "--profile", PROFILE, "--device",
                                 DEVICE, "--out", str(out), "--only", cells, "--no-progress"], log, timeout=seconds):
                failed.append(cells.split("/")[0])
        for name, command, target in (
                ("summary", [py, "-m", "harness.speed_summary", str(out)], out / "summary.md"),
                ("table", [py, "-m", "harness", "table", str(out), "--format", "md"], out / "table.md")):
            if not _step(name, command, log, timeout=60, stdout_to=target):
                failed.append(name)
    (out / "failed-steps.txt").unlink(missing_ok=True)
    if failed:
        (out / "failed-steps.txt").write_text("\n".join(failed) + "\n")
        print(f"failed steps: {', '.join(failed)} (see {out / 'gpu-speed.log'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
