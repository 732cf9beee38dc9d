#!/usr/bin/env python3
# Times PyTorch's masked-dense conv2d training step (what pruning code runs today) for the
# benchmark: reads a JSON job on stdin, prints per-rep forward and forward+backward times as JSON.
"""
Job (stdin):
  {"threads": 2, "warmup": 2, "reps": 10,
   "layers": [{"spec": {"batch", "inChannels", "outChannels", "inHeight", "inWidth",
                        "kernel": [R, S], "stride": [sh, sw], "padding": [ph, pw],
                        "dilation": [dh, dw], "bias": bool},
               "density_out": 0.5, "density_in": 0.5, "seed": 1,
               "ko": [...], "ci": [...]}]}        # ko/ci optional: explicit kept indices
Output (stdout):
  {"available": true, "torch_version": "...", "threads": 2,
   "layers": [{"fwd_ms": [...], "step_ms": [...], "kept_out": k, "kept_in": c}]}
  or {"available": false, "reason": "..."} when torch cannot be imported (exit code 0).
"""
import json
import os
import sys
import time

SYSTEM_PYTHON = "/usr/bin/python3"


def unavailable(reason):
    print(json.dumps({"available": False, "reason": reason}))
    sys.exit(0)


try:
    import torch
    import torch.nn.functional as F
except Exception as e:  # ImportError, or a broken install raising something else
    # Debian's python3-torch lives in the system python; a pyenv/venv "python3" on PATH
    # cannot see it, so retry once there before giving up. stdin is still unread.
    here = os.path.realpath(sys.executable or "")
    if (os.path.exists(SYSTEM_PYTHON) and here != os.path.realpath(SYSTEM_PYTHON)
            and not os.environ.get("MASKACC_TORCH_REEXEC")):
        os.environ["MASKACC_TORCH_REEXEC"] = "1"
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
    unavailable(f"cannot import torch: {e!r} (install python3-torch: scripts/setup-system.sh --bench)")


def kept_mask(n, density, explicit, gen, name):
    """0/1 float mask of length n: explicit indices if given, else round(density*n) random ones."""
    if explicit is not None:
        idx = torch.tensor([int(i) for i in explicit], dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise ValueError(f"{name} has an index outside [0, {n})")
    else:
        if not 0.0 <= float(density) <= 1.0:
            raise ValueError(f"density for {name} must be in [0, 1]")
        idx = torch.randperm(n, generator=gen)[: round(float(density) * n)]
    m = torch.zeros(n)
    m[idx] = 1.0
    return m


def time_layer(layer, warmup, reps):
    s = layer["spec"]
    N, C, K = int(s["batch"]), int(s["inChannels"]), int(s["outChannels"])
    H, W = int(s["inHeight"]), int(s["inWidth"])
    R, S = (int(v) for v in s["kernel"])
    stride = tuple(int(v) for v in s["stride"])
    padding = tuple(int(v) for v in s["padding"])
    dilation = tuple(int(v) for v in s["dilation"])
    has_bias = bool(s["bias"])

    gen = torch.Generator().manual_seed(int(layer.get("seed", 0)))
    m_out = kept_mask(K, layer.get("density_out", 1.0), layer.get("ko"), gen, "ko")
    m_in = kept_mask(C, layer.get("density_in", 1.0), layer.get("ci"), gen, "ci")
    x = torch.randn(N, C, H, W, generator=gen).requires_grad_()
    w = torch.randn(K, C, R, S, generator=gen).requires_grad_()
    # The bias is a trainable parameter too, so its gradient is part of the step.
    b = torch.randn(K, generator=gen).requires_grad_() if has_bias else None
    P = (H + 2 * padding[0] - dilation[0] * (R - 1) - 1) // stride[0] + 1
    Q = (W + 2 * padding[1] - dilation[1] * (S - 1) - 1) // stride[1] + 1
    dy = torch.randn(N, K, P, Q, generator=gen)
    wmask = m_out[:, None, None, None] * m_in[None, :, None, None]

    def forward():
        # The masks are applied inside the timed region: that is what masked-dense training pays.
        return F.conv2d(x, w * wmask, b * m_out if has_bias else None, stride, padding, dilation)

    def step():
        x.grad = w.grad = None
        if b is not None:
            b.grad = None
        y = forward()
        y.backward(dy)
        return y

    for _ in range(warmup):
        step()
    fwd_ms, step_ms = [], []
    for _ in range(reps):
        t = time.perf_counter()
        y = forward()
        fwd_ms.append((time.perf_counter() - t) * 1e3)
        del y  # drop the graph before the next measurement
    for _ in range(reps):
        t = time.perf_counter()
        step()
        step_ms.append((time.perf_counter() - t) * 1e3)
    return {"fwd_ms": fwd_ms, "step_ms": step_ms,
            "kept_out": int(m_out.sum()), "kept_in": int(m_in.sum())}


def main():
    job = json.load(sys.stdin)
    threads = int(job.get("threads", 1))
    warmup, reps = int(job.get("warmup", 1)), int(job.get("reps", 5))
    torch.set_num_threads(threads)
    layers = [time_layer(layer, warmup, reps) for layer in job["layers"]]
    print(json.dumps({"available": True, "torch_version": torch.__version__,
                      "threads": torch.get_num_threads(), "layers": layers}))


if __name__ == "__main__":
    try:
        main()
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
        print(f"torch_step.py: bad job: {e!r}", file=sys.stderr)
        sys.exit(2)
