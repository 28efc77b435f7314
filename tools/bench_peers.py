#!/usr/bin/env python3
"""Benchmark (figures, never pass/fail; issue 10): DenseKit against PyTorch eager and ONNX Runtime on the
project's models, in one run, with the same weights, input and thread count.

Rows (`--rows`, default all):
  a  the shipped segmentation model (first Models/*.safetensors with densekit.architecture "polymax", or
     --polymax-model FILE) at its input size (preprocess.input_size, else CamVid's 360x480 frame padded to the
     file's size_multiple, i.e. 384x480); PyTorch: tools/polymax_torch.py's PolyMaX carrying the file's tensors;
     outputs mask_logits, class_logits, cluster_embeddings
  b  ese_vovnet39b backbone, 512x512 (tools/convert.py --timm ese_vovnet39b --random-bn; timm features_only)
  c  biformer_tiny with the dense settings, 512x512 (the official rayleizhu/BiFormer code from --biformer-ref,
     random weights via tools/bench_biformer.py, converted with tools/convert.py)
  d  ViT-S/16 at 512x512 (timm vit_small_patch16_224 random init, pos_embed resampled 14x14 -> 32x32 by
     tools/convert.py --img-size 512x512; PyTorch: timm VisionTransformer at img_size 512)
  e  the same ViT-S/16 with token clustering (alpha 4, 32x32 -> 16x16, window 5, 5 iterations, t 0.01;
     reconstruction after the final norm, k 20, t 0.03); PyTorch: tools/vit_torch.py, the reference's dense
     masked clustering and reconstruction written from spec token-clustering.md sections 2-4

For every row and peer, each in its own process: `--warmup` untimed runs, then the median of `--repeats`
timed runs, and the process's peak resident memory (ru_maxrss from wait4; the Python peers' figure includes
the interpreter and torch / onnxruntime). DenseKit runs through its CLI
(`densekit bench model FILE --size HxW --input X --threads T --json`, then once more with --save-outputs for
the comparison); PyTorch eager with torch.set_num_threads(T), inference_mode; ONNX Runtime on the PyTorch
module exported with torch.onnx.export(dynamo=False, opset 17), intra_op_num_threads T, inter_op 1. Reported:
the ratios DenseKit / PyTorch and DenseKit / ONNX Runtime (below 1 = DenseKit faster), and max |output -
PyTorch| for DenseKit and ONNX Runtime over the row's outputs. Also printed: the machine (CPU model, cores,
load average at start and end) and the machine's single-precision GEMM peak (OpenBLAS sgemm 2048^3 through
ctypes on libopenblas.so.0 with OPENBLAS_CORETYPE chosen as DenseKit chooses it, T threads).

Examples:
    tools/.venv/bin/python tools/bench_peers.py --densekit .build/release/densekit --biformer-ref ../BiFormer
    tools/.venv/bin/python tools/bench_peers.py --rows d,e --repeats 2 --warmup 1 --densekit .build-bench/release/densekit
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
import bench_vovnet as bv  # noqa: E402  (process measurement, OpenMP-free helpers)

PROG = "bench_peers.py"
ROWS = {
    "a": "shipped segmentation model (PolyMaX)",
    "b": "ese_vovnet39b backbone",
    "c": "biformer_tiny dense",
    "d": "ViT-S/16",
    "e": "ViT-S/16 + token clustering",
}
VIT_NAME = "vit_small_patch16_224"


class BenchError(Exception):
    """Expected failure: one line, exit 1."""


# --------------------------------------------------------------------------------------
# Workers (each in its own process)


def _config(path: str) -> dict:
    from safetensors import safe_open
    with safe_open(path, "np") as f:
        return json.loads(f.metadata()["densekit.config"])


def polymax_module(path: str):
    """tools/polymax_torch.py's PolyMaX carrying a polymax model file's tensors; forward -> 3 outputs."""
    import torch
    from safetensors.torch import load_file
    import polymax_torch as pt

    cfg = _config(path)
    bb = {k: v for k, v in cfg["backbone"].items() if k in ("stem_chs", "stage_conv_chs", "stage_out_chs",
                                                              "layer_per_block", "block_per_stage", "residual",
                                                              "depthwise", "attn")}
    names = [n for n, p in pt.VOVNET_PRESETS.items() if all(p.get(k) == v for k, v in bb.items())]
    if not names:
        raise RuntimeError("the file's backbone matches no tools/polymax_torch.py VoVNet preset")
    tensors = load_file(path)
    depth = any(k.startswith("readout.depth.") for k in tensors)
    m = pt.PolyMaX(names[0], cfg["head"], depth=depth)
    res = m.load_state_dict(tensors, strict=False)
    bad = [k for k in res.missing_keys if not k.endswith("num_batches_tracked") and not k.startswith("backbone.head.")]
    if bad or res.unexpected_keys:
        raise RuntimeError(f"PolyMaX does not take the file's tensors: missing {bad[:5]}, unexpected {res.unexpected_keys[:5]}")
    m.eval()

    class Wrap(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            o = self.inner(x)
            return o["mask_logits"], o["class_logits"], o["cluster_embeddings"]

    return Wrap(m).eval(), ["mask_logits", "class_logits", "cluster_embeddings"]


def build_module(a: argparse.Namespace):
    """(torch module, output names) of row a.row with the row's weights."""
    import torch
    from safetensors.torch import load_file

    if a.row == "a":
        return polymax_module(a.weights)
    if a.row == "b":
        import convert
        cfg = _config(a.weights)
        m = convert.build_timm_features_model(cfg, load_file(a.weights), "ese_vovnet39b")
        return m, [f"feat{bv.REDUCTION[i]}" for i in cfg["out_indices"]]
    if a.row == "c":
        import bench_biformer
        m = bench_biformer.official_dense_tiny(a.biformer_ref)
        m.load_state_dict(torch.load(a.source, map_location="cpu", weights_only=True), strict=True)
        return m.eval(), list(bench_biformer.OUTPUTS)
    if a.row in ("d", "e"):
        import vit_torch
        return vit_torch.DenseViT(_config(a.weights), load_file(a.weights)).eval(), ["y", "cls"]
    raise ValueError(f"unknown row {a.row}")


def worker_torch(a: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    m, names = build_module(a)
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
        np.savez(a.save_outputs, **{n: o.numpy() for n, o in zip(names, outs)})
    res = bv._stats(times)
    res.update(vm_hwm_before_mb=rss0, vm_hwm_mb=bv._vm_hwm_mb(),
               version=f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    return res


def worker_export(a: argparse.Namespace) -> dict:
    import warnings
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    m, names = build_module(a)
    x = torch.from_numpy(bv._load_input(a.input))
    # tools/polymax_torch.py's Fuse computes align_corners from a shape (`w % 2 == 1`), which the tracer turns into
    # a tensor that upsample_bilinear2d refuses; the input size is fixed here, so make it the Python bool it is.
    import torch.nn.functional as F
    interpolate = F.interpolate

    def interpolate_bool(*args, **kw):
        if isinstance(kw.get("align_corners"), torch.Tensor):
            kw["align_corners"] = bool(kw["align_corners"])
        return interpolate(*args, **kw)

    F.interpolate = interpolate_bool
    t0 = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(m, (x,), a.onnx, input_names=["x"], output_names=names, opset_version=17, dynamo=False)
    return {"export_s": time.perf_counter() - t0, "bytes": os.path.getsize(a.onnx)}


def worker_gemm(a: argparse.Namespace) -> dict:
    """sgemm 2048^3 through libopenblas.so.0 (the library DenseKit dlopens); env set by the parent."""
    import ctypes
    import numpy as np

    lib = None
    for name in ("libopenblas.so.0", "libopenblas.so"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise RuntimeError("libopenblas.so.0 not found")
    n = 2048
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    C = np.zeros((n, n), dtype=np.float32)
    f = lib.cblas_sgemm
    P = ctypes.POINTER(ctypes.c_float)
    f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_float,
                  P, ctypes.c_int, P, ctypes.c_int, ctypes.c_float, P, ctypes.c_int]
    args = (101, 111, 111, n, n, n, 1.0, A.ctypes.data_as(P), n, B.ctypes.data_as(P), n, 0.0, C.ctypes.data_as(P), n)
    f(*args)
    times = []
    for _ in range(max(3, a.repeats)):
        t0 = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t0)
    err = float(np.abs(C[:4, :4] - A[:4] @ B[:, :4]).max())
    cfg = ""
    try:
        lib.openblas_get_config.restype = ctypes.c_char_p
        cfg = lib.openblas_get_config().decode()
        lib.openblas_get_corename.restype = ctypes.c_char_p
        cfg += f"; core {lib.openblas_get_corename().decode()}"
        cfg += f"; threads {lib.openblas_get_num_threads()}"
    except AttributeError:
        pass
    flops = 2.0 * n ** 3
    return {"best_gflops": flops / min(times) / 1e9, "median_gflops": flops / sorted(times)[len(times) // 2] / 1e9,
            "runs": len(times), "check_abs": err, "openblas": cfg}


WORKERS = {"torch": worker_torch, "export": worker_export, "ort": bv.worker_ort, "gemm": worker_gemm}


# --------------------------------------------------------------------------------------
# Parent


def run_worker(kind: str, args: argparse.Namespace, env_extra: Optional[dict] = None, **kw) -> Tuple[Optional[dict], dict]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    if args.biformer_ref:
        cmd += ["--biformer-ref", args.biformer_ref]
    for k, v in kw.items():
        if v is not None:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(args.threads))
    env.update(env_extra or {})
    r = bv.run_measured(cmd, args.timeout, env)
    res = bv.last_json(r["stdout"]) if r["rc"] == 0 else None
    if r["rc"] != 0:
        r["error"] = "timed out" if r["timed_out"] else bv._err_line(r["stderr"])
    elif res is None:
        r["error"] = "no JSON result"
    return res, r


def preferred_coretype() -> Optional[str]:
    """DenseKit's rule (Kernels/BLAS/BLAS.swift)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(l.split(":", 1)[1].split()) for l in f if l.startswith("flags")), set())
    except OSError:
        return None
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def find_polymax_model() -> Optional[str]:
    from safetensors import safe_open
    for p in sorted(glob.glob(os.path.join(REPO, "Models", "*.safetensors"))):
        try:
            with safe_open(p, "np") as f:
                if (f.metadata() or {}).get("densekit.architecture") == "polymax":
                    return p
        except Exception:
            continue
    return None


def polymax_size(path: str) -> Tuple[int, int]:
    pre = _config(path).get("preprocess", {})
    if "input_size" in pre:
        h, w = pre["input_size"]
        return int(h), int(w)
    m = int(pre.get("size_multiple", 32))
    return int(math.ceil(360 / m) * m), int(math.ceil(480 / m) * m)


def convert(args: argparse.Namespace, argv: List[str]) -> Optional[str]:
    r = bv.run_measured([sys.executable, os.path.join(TOOLS, "convert.py")] + argv, args.timeout)
    return None if r["rc"] == 0 else f"convert.py failed: {bv._err_line(r['stderr'])}"


def prepare_row(row: str, args: argparse.Namespace, d: str) -> dict:
    """Writes the row's weights into d. Returns {weights, source?, size, label} or {error}."""
    s = str(args.seed)
    if row == "a":
        path = args.polymax_model or find_polymax_model()
        if not path:
            return {"error": "no shipped model: Models/ holds no polymax .safetensors (issue 9); pass --polymax-model FILE"}
        h, w = (int(v) for v in args.polymax_size.lower().split("x")) if args.polymax_size else polymax_size(path)
        return {"weights": os.path.abspath(path), "size": (h, w), "label": f"{os.path.basename(path)}"}
    if row == "b":
        f = os.path.join(d, "ese_vovnet39b.safetensors")
        e = convert(args, ["--timm", "ese_vovnet39b", "--seed", s, "--random-bn", "--features-only",
                           "--out-indices", "1,2,3,4", "-o", f])
        return {"error": e} if e else {"weights": f, "size": (512, 512), "label": "ese_vovnet39b features 4..32"}
    if row == "c":
        ref = args.biformer_ref
        if not ref or not os.path.isfile(os.path.join(ref, "models", "biformer.py")):
            return {"error": "--biformer-ref must name a checkout of rayleizhu/BiFormer (models/biformer.py)"}
        ck = os.path.join(d, "biformer_tiny_dense.pth")
        r = bv.run_measured([sys.executable, os.path.join(TOOLS, "bench_biformer.py"), "--worker", "make", "--ref", ref,
                             "--seed", s, "--checkpoint", ck], args.timeout)
        if r["rc"] != 0:
            return {"error": f"building the official BiFormer failed: {bv._err_line(r['stderr'])}"}
        f = os.path.join(d, "biformer_tiny_dense.safetensors")
        e = convert(args, ["--checkpoint", ck, "-o", f])
        return {"error": e} if e else {"weights": f, "source": ck, "size": (512, 512),
                                       "label": "biformer_tiny dense (n_win 8, auto_pad)"}
    if row in ("d", "e"):
        f = os.path.join(d, f"vit_s16_512{'_tc' if row == 'e' else ''}.safetensors")
        argv = ["--timm", VIT_NAME, "--seed", s, "--random-bn", "--img-size", "512x512", "-o", f]
        if row == "e":
            argv.insert(-2, "--token-clustering")
        e = convert(args, argv)
        label = "ViT-S/16 plain" if row == "d" else "ViT-S/16 + TC (a4, 16x16, w5, i5, k20)"
        return {"error": e} if e else {"weights": f, "size": (512, 512), "label": label}
    return {"error": f"unknown row {row}"}


def run_densekit(exe: str, prep: dict, args: argparse.Namespace, d: str, input_path: str) -> dict:
    h, w = prep["size"]
    base = [exe, "bench", "model", prep["weights"], "--size", f"{h}x{w}", "--threads", str(args.threads), "--json",
            "--input", input_path]
    r = bv.run_measured(base + ["--repeats", str(args.repeats), "--warmup", str(args.warmup)], args.timeout)
    res = bv.last_json(r["stdout"]) if r["rc"] == 0 else None
    if res is None or "median_ms" not in res:
        why = ("timed out" if r["timed_out"] else bv._err_line(r["stderr"] or r["stdout"])) if r["rc"] != 0 \
            else "no JSON object with median_ms"
        return {"error": why, "rss_mb": r["rss_mb"]}
    row = {k: res.get(k) for k in ("median_ms", "min_ms", "max_ms", "peak_rss_mb")}
    row["rss_mb"] = r["rss_mb"]
    out = os.path.join(d, "densekit_outputs.safetensors")
    r2 = bv.run_measured(base + ["--repeats", "1", "--warmup", "0", "--save-outputs", out], args.timeout)
    if r2["rc"] == 0 and os.path.isfile(out):
        row["outputs_file"] = out
    else:
        row["compare_error"] = f"--save-outputs failed: {bv._err_line(r2['stderr'] or r2['stdout'])}"
    return row


def max_diff(got: Dict[str, "object"], ref_npz: str) -> Tuple[Optional[float], str]:
    import numpy as np
    ref = np.load(ref_npz)
    worst, parts = 0.0, []
    for n in ref.files:
        g = got.get(n)
        if g is None:
            parts.append(f"{n} missing")
            continue
        if tuple(g.shape) != ref[n].shape:
            parts.append(f"{n} shape {list(g.shape)} vs {list(ref[n].shape)}")
            continue
        dmax = float(np.abs(g.astype(np.float64) - ref[n].astype(np.float64)).max())
        parts.append(f"{n} {dmax:.1e} (max|ref| {float(np.abs(ref[n]).max()):.2g})")
        worst = max(worst, dmax)
    ok = not any(("missing" in p or "shape" in p) for p in parts)
    return (worst if ok else None), ", ".join(parts)


def machine_line(load_start: Tuple[float, float, float], load_end: Optional[Tuple[float, float, float]]) -> str:
    la = lambda t: "/".join(f"{v:.2f}" for v in t)  # noqa: E731
    s = f"machine: {bv._cpu_name()}, {os.cpu_count()} logical CPUs ({platform.machine()}, {platform.system()} " \
        f"{platform.release()}); load average (1/5/15 min) at start {la(load_start)}"
    if load_end:
        s += f", at end {la(load_end)}"
    return s


def fmt(v, nd=1) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def bench(args: argparse.Namespace) -> int:
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad or not rows:
        raise BenchError(f"unknown rows {bad}; choose from {','.join(ROWS)}")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise BenchError("--repeats >= 1, --warmup >= 0 and --threads >= 1 are required")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if not peers or any(p not in ("densekit", "torch", "ort") for p in peers):
        raise BenchError("--peers: a subset of densekit,torch,ort")
    load_start = os.getloadavg()
    exe, dk_why = (None, "not requested")
    if "densekit" in peers:
        exe, dk_why = bv.find_densekit(args)
    import numpy as np
    from safetensors.numpy import load_file, save_file

    header = [f"{PROG}: {args.threads} threads per peer, warm-up {args.warmup}, median of {args.repeats} timed runs, "
              f"seed {args.seed}, each peer in its own process"]
    if args.omp_passive:
        header.append("PyTorch peer run with OMP_WAIT_POLICY=PASSIVE (--omp-passive)")
    if args.repeats < 10:
        header.append(f"NOTE: only {args.repeats} timed runs (issue 10 asks for >= 10): a smoke run, not a result")
    if load_start[0] > (os.cpu_count() or 1) * 0.75:
        header.append(f"WARNING: load average {load_start[0]:.1f} on {os.cpu_count()} CPUs at start: other processes "
                      "compete, timings are unreliable (PyTorch's OpenMP threads most)")
    if exe:
        r = bv.run_measured([exe, "--version"], 60)
        blas = [l for l in r["stdout"].splitlines() if l.startswith("blas:")]
        header.append(f"densekit: {exe}" + (f" ({blas[0]})" if blas else ""))
    else:
        header.append(f"densekit: unavailable ({dk_why})")

    # GEMM peak first (quietest moment of the run).
    core = os.environ.get("OPENBLAS_CORETYPE") or preferred_coretype()
    genv = {"OPENBLAS_NUM_THREADS": str(args.threads)}
    if core:
        genv["OPENBLAS_CORETYPE"] = core
    gemm, gr = (None, {"error": "skipped (--no-gemm)"}) if args.no_gemm else run_worker("gemm", args, genv)
    results: Dict[str, dict] = {}
    tmp = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="densekit-peers-")
    os.makedirs(tmp, exist_ok=True)
    try:
        for row in rows:
            d = os.path.join(tmp, f"row_{row}")
            os.makedirs(d, exist_ok=True)
            res: dict = {"name": ROWS[row], "notes": []}
            results[row] = res
            print(f"[{row}] preparing {ROWS[row]} ...", file=sys.stderr, flush=True)
            prep = prepare_row(row, args, d)
            if "error" in prep:
                res["error"] = prep["error"]
                continue
            h, w = prep["size"]
            res.update(label=prep["label"], size=f"{h}x{w}")
            x = np.random.default_rng(args.seed).standard_normal((1, 3, h, w)).astype(np.float32)
            xin = os.path.join(d, "input.safetensors")
            save_file({"x": x}, xin)
            kw = dict(row=row, weights=prep["weights"], source=prep.get("source"), input=xin)
            torch_out = os.path.join(d, "torch.npz")
            if "torch" in peers:
                print(f"[{row}] PyTorch eager ...", file=sys.stderr, flush=True)
                t, r = run_worker("torch", args, {"OMP_WAIT_POLICY": "PASSIVE"} if args.omp_passive else None,
                                  save_outputs=torch_out, **kw)
                res["torch"] = dict(t or {}, rss_mb=r["rss_mb"], **({"error": r["error"]} if "error" in r else {}))
            if "ort" in peers:
                print(f"[{row}] ONNX export + ONNX Runtime ...", file=sys.stderr, flush=True)
                onnx = os.path.join(d, "model.onnx")
                t, r = run_worker("export", args, onnx=onnx, **kw)
                if t is None:
                    res["ort"] = {"error": f"ONNX export failed: {r.get('error')}"}
                else:
                    ort_out = os.path.join(d, "ort.npz")
                    t, r = run_worker("ort", args, onnx=onnx, input=xin, save_outputs=ort_out)
                    res["ort"] = dict(t or {}, rss_mb=r["rss_mb"], **({"error": r["error"]} if "error" in r else {}))
                    if t is not None and os.path.isfile(torch_out):
                        got = dict(np.load(ort_out))
                        res["ort"]["max_abs"], res["ort"]["diff_text"] = max_diff(got, torch_out)
            if "densekit" in peers:
                print(f"[{row}] DenseKit ...", file=sys.stderr, flush=True)
                if not exe:
                    res["densekit"] = {"error": dk_why}
                else:
                    dk = run_densekit(exe, prep, args, d, xin)
                    res["densekit"] = dk
                    if "outputs_file" in dk and os.path.isfile(torch_out):
                        got = load_file(dk.pop("outputs_file"))
                        dk["max_abs"], dk["diff_text"] = max_diff(got, torch_out)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    load_end = os.getloadavg()

    print("\n".join(header))
    print(machine_line(load_start, load_end))
    if gemm:
        print(f"GEMM peak: OpenBLAS sgemm 2048^3, {args.threads} threads, OPENBLAS_CORETYPE={core}: "
              f"best {gemm['best_gflops']:.1f} GFLOP/s, median {gemm['median_gflops']:.1f} GFLOP/s "
              f"({gemm['runs']} runs; {gemm.get('openblas', '')})")
    else:
        print(f"GEMM peak: unavailable ({gr.get('error')})")
    print()
    print(table(results))
    print()
    for row, res in results.items():
        if "error" in res:
            print(f"- ({row}) {res['name']}: not run: {res['error']}")
            continue
        for peer, name in (("densekit", "DenseKit"), ("torch", "PyTorch eager"), ("ort", "ONNX Runtime")):
            p = res.get(peer)
            if p is None:
                continue
            if "error" in p:
                print(f"- ({row}) {name} unavailable: {p['error']}")
            if p.get("compare_error"):
                print(f"- ({row}) {name}: {p['compare_error']}")
            if p.get("diff_text"):
                print(f"- ({row}) {name} vs PyTorch: {p['diff_text']}")
        t = res.get("torch", {})
        if t.get("vm_hwm_before_mb"):
            print(f"- ({row}) PyTorch VmHWM before inference {t['vm_hwm_before_mb']:.0f} MB, after {t['vm_hwm_mb']:.0f} MB")
    print("- ratios: DenseKit median / peer median (below 1.00: DenseKit faster; issue 10 targets <= 0.70 vs "
          "PyTorch and <= 1.00 vs ONNX Runtime); RSS: ru_maxrss of each peer's process (wait4)")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"header": header, "machine": machine_line(load_start, load_end), "gemm": gemm,
                       "results": results}, f, indent=1, default=str)
    return 0


def table(results: Dict[str, dict]) -> str:
    lines = ["| row | model | input | DenseKit ms | PyTorch ms | ORT ms | DK / PyTorch | DK / ORT | "
             "DK RSS MB | PyTorch RSS MB | ORT RSS MB | max abs DK - PyTorch | max abs ORT - PyTorch |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row, res in results.items():
        if "error" in res:
            lines.append(f"| {row} | {res['name']} | | not run | | | | | | | | | |")
            continue
        dk, pt, ort = (res.get(k) or {} for k in ("densekit", "torch", "ort"))

        def med(p):
            return None if "error" in p else p.get("median_ms")

        def ratio(a, b):
            return f"{a / b:.2f}" if a and b else "n/a"

        def diff(p):
            return "n/a" if p.get("max_abs") is None else f"{p['max_abs']:.1e}"

        lines.append(f"| {row} | {res.get('label', res['name'])} | {res.get('size', '')} | {fmt(med(dk))} | "
                     f"{fmt(med(pt))} | {fmt(med(ort))} | {ratio(med(dk), med(pt))} | {ratio(med(dk), med(ort))} | "
                     f"{fmt(dk.get('rss_mb'), 0)} | {fmt(pt.get('rss_mb'), 0)} | {fmt(ort.get('rss_mb'), 0)} | "
                     f"{diff(dk)} | {diff(ort)} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="rows: " + "; ".join(f"{k} = {v}" for k, v in ROWS.items()))
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)} (default all)")
    p.add_argument("--peers", default="densekit,torch,ort", help="subset of densekit,torch,ort (default all)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per peer, median reported (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--threads", type=int, default=2, help="threads per peer (default 2)")
    p.add_argument("--densekit", metavar="PATH", help="densekit executable (default: the release build of this checkout)")
    p.add_argument("--biformer-ref", metavar="DIR", default=os.environ.get("REF_BIFORMER"),
                   help="checkout of rayleizhu/BiFormer for row c ($REF_BIFORMER)")
    p.add_argument("--polymax-model", metavar="FILE", help="row a: this polymax model file instead of Models/*.safetensors")
    p.add_argument("--polymax-size", metavar="HxW", help="row a: input size (default: from the file's preprocess)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the input (default 0)")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per process (default 1200)")
    p.add_argument("--omp-passive", action="store_true",
                   help="OMP_WAIT_POLICY=PASSIVE for the PyTorch peer (only on a loaded machine, where spinning OpenMP "
                        "threads lose whole time slices); said in the header")
    p.add_argument("--no-gemm", action="store_true", help="skip the GEMM peak measurement")
    p.add_argument("--keep", metavar="DIR", help="keep weights, ONNX files and outputs in DIR")
    p.add_argument("--json-out", metavar="FILE", help="also write all results as JSON")
    p.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    for k in ("row", "weights", "source", "input", "onnx", "save-outputs"):
        p.add_argument(f"--{k}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0
    try:
        return bench(args)
    except BenchError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
