#!/usr/bin/env python3
"""Benchmark (figures, never pass/fail): BiFormer-tiny with dense settings, DenseKit against the
official PyTorch implementation (rayleizhu/BiFormer, `models/biformer.py` + `ops/bra_legacy.py`).

The official model is built from a checkout given by --ref (or $REF_BIFORMER): the tiny preset with
the dense settings of the spec (n_win 8, auto_pad, `BiFormer_mm`: no norm/head, four LayerNorm2d
extra norms on the stage outputs). Random weights (fixed seed; BN statistics and norm affines
randomised so every parameter matters) are saved as an official state dict and converted with
tools/convert.py (names unchanged). Then, for each size, in separate processes with the same input
and thread count: PyTorch eager (torch.set_num_threads, inference_mode, warm-up then timed runs) and
`densekit bench model`. Reported: median/min latency, the peak resident memory of each process
(ru_maxrss; the PyTorch figure includes the interpreter and torch itself, about 0.7 GiB, so the table
also gives PyTorch's RSS growth during inference), and max |DenseKit - PyTorch| per output.

Example (a checkout of the official code, e.g. from `git clone https://github.com/rayleizhu/BiFormer`):
    tools/.venv/bin/python tools/bench_biformer.py --ref ../BiFormer --densekit .build/release/densekit
    tools/.venv/bin/python tools/bench_biformer.py --ref ../BiFormer --sizes 1024x1024 --repeats 2 --warmup 1
The official code needs einops (in tools/requirements.txt); fairscale is stubbed (only used for
activation checkpointing during training).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import types
from typing import List, Optional, Sequence

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import bench_vovnet as bv  # noqa: E402  (shared process/measurement helpers)

PROG = "bench_biformer.py"
OUTPUTS = ["out0", "out1", "out2", "out3"]


def official_dense_tiny(ref: str):
    """The official BiFormer class with the tiny preset and the dense settings (BiFormer_mm without mmseg)."""
    import torch
    import torch.nn as nn
    sys.path.insert(0, os.path.abspath(ref))
    if "fairscale" not in sys.modules:
        try:
            import fairscale  # noqa: F401
        except ImportError:
            fs = types.ModuleType("fairscale"); nn_ = types.ModuleType("fairscale.nn"); ck = types.ModuleType("fairscale.nn.checkpoint")
            ck.checkpoint_wrapper = lambda m, *a, **k: m
            sys.modules.update({"fairscale": fs, "fairscale.nn": nn_, "fairscale.nn.checkpoint": ck})
    from models.biformer import BiFormer
    from timm.layers import LayerNorm2d

    class DenseTiny(BiFormer):
        def __init__(self):
            super().__init__(depth=[2, 2, 8, 2], embed_dim=[64, 128, 256, 512], mlp_ratios=[3, 3, 3, 3], n_win=8,
                             kv_downsample_mode="identity", kv_per_wins=[-1, -1, -1, -1], topks=[1, 4, 16, -2],
                             side_dwconv=5, before_attn_dwconv=3, layer_scale_init_value=-1,
                             qk_dims=[64, 128, 256, 512], head_dim=32, param_routing=False, diff_routing=False,
                             soft_routing=False, pre_norm=True, pe=None, auto_pad=True)
            del self.head
            del self.norm
            self.extra_norms = nn.ModuleList([LayerNorm2d(c) for c in self.embed_dim])

        def forward(self, x):
            out = []
            for i in range(4):
                x = self.downsample_layers[i](x)
                x = self.stages[i](x)
                out.append(self.extra_norms[i](x))
            return tuple(out)

    return DenseTiny().eval()


def worker_make(a: argparse.Namespace) -> dict:
    import torch
    torch.manual_seed(a.seed)
    m = official_dense_tiny(a.ref)
    g = torch.Generator().manual_seed(a.seed + 1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            if hasattr(mod, "weight") and mod.weight is not None and mod.weight.dim() == 1:
                mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=g))
                if getattr(mod, "bias", None) is not None:
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
    torch.save(m.state_dict(), a.checkpoint)
    return {"parameters": sum(p.numel() for p in m.parameters())}


def worker_torch(a: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    m = official_dense_tiny(a.ref)
    m.load_state_dict(torch.load(a.checkpoint, map_location="cpu", weights_only=True), strict=True)
    x = torch.from_numpy(bv._load_input(a.input))
    rss0 = bv._vm_hwm_mb()
    times = []
    with torch.inference_mode():
        for _ in range(a.warmup):
            m(x)
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            outs = m(x)
            times.append((time.perf_counter() - t0) * 1e3)
    if a.save_outputs:
        np.savez(a.save_outputs, **{n: o.numpy() for n, o in zip(OUTPUTS, outs)})
    res = bv._stats(times)
    res.update(vm_hwm_before_mb=rss0, vm_hwm_mb=bv._vm_hwm_mb(), version=f"torch {torch.__version__}")
    return res


def worker_compare(a: argparse.Namespace) -> dict:
    import numpy as np
    from safetensors.numpy import load_file
    got, want = load_file(a.densekit_outputs), np.load(a.save_outputs)
    res = {}
    for n in OUTPUTS:
        d = got.get(n, got.get(f"output.{n}"))
        if d is None:
            res[n] = {"error": "missing in DenseKit outputs"}
        elif d.shape != want[n].shape:
            res[n] = {"error": f"shape {list(d.shape)} vs {list(want[n].shape)}"}
        else:
            res[n] = {"max_abs": float(np.abs(d.astype(np.float64) - want[n]).max()), "max_ref": float(np.abs(want[n]).max())}
    return {"diffs": res}


WORKERS = {"make": worker_make, "torch": worker_torch, "compare": worker_compare}


def run_worker(kind: str, args: argparse.Namespace, **kw):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--ref", args.ref, "--threads", str(args.threads),
           "--repeats", str(kw.pop("repeats", args.repeats)), "--warmup", str(kw.pop("warmup", args.warmup)),
           "--seed", str(args.seed)]
    for k, v in kw.items():
        if v is not None:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(args.threads))
    r = bv.run_measured(cmd, args.timeout, env)
    res = bv.last_json(r["stdout"]) if r["rc"] == 0 else None
    if r["rc"] != 0:
        r["error"] = "timed out" if r["timed_out"] else bv._err_line(r["stderr"])
    return res, r


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", default=os.environ.get("REF_BIFORMER"), help="checkout of rayleizhu/BiFormer ($REF_BIFORMER)")
    p.add_argument("--densekit", help="densekit executable (default: the release build of this checkout)")
    p.add_argument("--sizes", default="512x512,1024x1024", help="comma-separated HxW (default 512x512,1024x1024)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--big-repeats", type=int, default=2, help="repeats for sizes above 512x512 (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--checkpoint", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--save-outputs", help=argparse.SUPPRESS)
    p.add_argument("--densekit-outputs", help=argparse.SUPPRESS)
    p.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(WORKERS[a.worker](a)))
        return 0
    if not a.ref or not os.path.isfile(os.path.join(a.ref, "models", "biformer.py")):
        print(f"{PROG}: error: --ref must name a checkout of rayleizhu/BiFormer (models/biformer.py not found)", file=sys.stderr)
        return 1
    exe, why = bv.find_densekit(a)
    if exe is None:
        print(f"{PROG}: error: DenseKit: {why}", file=sys.stderr)
        return 1
    import numpy as np
    from safetensors.numpy import save_file
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_biformer.") as tmp:
        ck = os.path.join(tmp, "biformer_tiny_dense.pth")
        res, r = run_worker("make", a, checkpoint=ck)
        if res is None:
            print(f"{PROG}: error: building the official model failed: {r.get('error')}", file=sys.stderr)
            return 1
        model = os.path.join(tmp, "biformer_tiny_dense.safetensors")
        conv = bv.run_measured([sys.executable, os.path.join(TOOLS, "convert.py"), "--checkpoint", ck, "-o", model], a.timeout)
        if conv["rc"] != 0:
            print(f"{PROG}: error: convert.py: {bv._err_line(conv['stderr'])}", file=sys.stderr)
            return 1
        print(f"model: biformer_tiny dense (n_win 8, auto_pad), {res['parameters']} parameters, seed {a.seed}", file=sys.stderr)
        for size in a.sizes.split(","):
            h, w = (int(v) for v in size.lower().split("x"))
            big = h * w > 512 * 512
            reps, warm = (a.big_repeats, 1) if big else (a.repeats, a.warmup)
            x = np.random.default_rng(a.seed).standard_normal((1, 3, h, w)).astype(np.float32)
            xin = os.path.join(tmp, f"x_{h}x{w}.safetensors")
            save_file({"x": x}, xin)
            ref_out = os.path.join(tmp, f"torch_{h}x{w}.npz")
            tres, tr = run_worker("torch", a, repeats=reps, warmup=warm, checkpoint=ck, input=xin, save_outputs=ref_out)
            a.height, a.width, a.repeats_saved = h, w, a.repeats
            a_reps = a.repeats; a.repeats, a_warm, a.warmup = reps, a.warmup, warm
            drow, dcheck = bv.run_densekit(exe, model, a, tmp, xin)
            a.repeats, a.warmup = a_reps, a_warm
            diff = "n/a"
            if "outputs" in dcheck and tres is not None:
                cres, _ = run_worker("compare", a, densekit_outputs=dcheck["outputs"], save_outputs=ref_out)
                if cres:
                    diff = ", ".join(f"{n} {d['max_abs']:.1e}" if "max_abs" in d else f"{n} {d['error']}" for n, d in cres["diffs"].items())
            rows.append((size, tres, tr, drow, diff))
            print(f"{size}: done", file=sys.stderr, flush=True)
    print(f"machine: {bv._cpu_name()}, {a.threads} threads; DenseKit {exe}")
    print("| input | PyTorch official median ms (min) | DenseKit median ms (min) | DenseKit / PyTorch | PyTorch peak RSS MB (growth in inference) | DenseKit peak RSS MB | max abs diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for size, tres, tr, drow, diff in rows:
        if tres is None:
            t = f"unavailable ({tr.get('error')})"
            growth = ""
        else:
            t = f"{tres['median_ms']:.0f} ({tres['min_ms']:.0f})"
            growth = f" (+{tres['vm_hwm_mb'] - tres['vm_hwm_before_mb']:.0f})" if tres.get("vm_hwm_before_mb") else ""
        d = f"{drow['median_ms']:.0f} ({drow['min_ms']:.0f})" if drow.get("median_ms") else f"unavailable ({drow.get('error')})"
        ratio = f"{drow['median_ms'] / tres['median_ms']:.2f}" if tres and drow.get("median_ms") else "n/a"
        trss = f"{tr['rss_mb']:.0f}{growth}" if tr.get("rss_mb") else "n/a"
        drss = f"{drow['rss_mb']:.0f}" if drow.get("rss_mb") else "n/a"
        print(f"| {size} | {t} | {d} | {ratio} | {trss} | {drss} | {diff} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
