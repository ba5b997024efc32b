"""What every peer benchmark shares: the workload and the output format.

The MAML paper's sinusoid configuration, as theta's `benches/algorithms.rs`:
a 1-40-40-1 ReLU network, K = 10 support and 10 query points, 25 tasks per
meta-batch, alpha = 0.01, Adam 1e-3 on the outer loop, float32. One meta-step
is one full outer update, sampling its 25 tasks included.
"""

import json
import os
import sys
import time

SIZES = (1, 40, 40, 1)
K = 10
META_BATCH = 25
ALPHA = 0.01
BETA = 1e-3
LAMBDA = 2.0

# name -> (inner steps, description); the names are theta's benchmark ids.
ALGORITHMS = [
    "maml_1_step",
    "maml_5_steps",
    "fomaml_1_step",
    "reptile_5_steps",
    "imaml_5_gradient_steps_5_cg",
    "imaml_3_proximal_gauss_newton_5_cg",
    "pretrained",
]


def one_thread():
    """Pins the math libraries to one thread (before they are imported)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )


def measure(run_chunk, steps_per_chunk, seconds):
    """Meta-steps per second: the median over chunks run for about `seconds`,
    after one warm-up chunk (compilation)."""
    run_chunk()
    rates = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(rates) < 3:
        t = time.perf_counter()
        run_chunk()
        rates.append(steps_per_chunk / (time.perf_counter() - t))
    rates.sort()
    return rates[len(rates) // 2]


def report(framework, style, algorithm, rate):
    print(json.dumps({"framework": framework, "style": style, "algorithm": algorithm,
                      "meta_steps_per_s": rate}))
    sys.stdout.flush()


def parse_args():
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0, help="measurement time per algorithm")
    p.add_argument("--only", default="", help="comma-separated algorithm names")
    a = p.parse_args()
    a.algorithms = [x for x in ALGORITHMS if not a.only or x in a.only.split(",")]
    return a
