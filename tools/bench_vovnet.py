#!/usr/bin/env python3
"""Benchmark (figures, never pass/fail): VoVNet backbones, DenseKit against PyTorch eager and ONNX Runtime.

For each model (default ese_vovnet19b_dw and ese_vovnet39b), features_only with the four
stride 4..32 outputs, input 1x3x512x512, 2 threads per peer:

1. random weights (timm init, BN statistics randomised, fixed seed) are converted with
   tools/convert.py into a temporary folder; every peer runs those same weights on the
   same N(0,1) input;
2. each peer runs in its own process: warm-up, then the median/min/max latency over the
   timed repeats, and the peak resident memory of that process (ru_maxrss from wait4,
   which includes the interpreter and libraries for the Python peers);
   - DenseKit through its CLI: `densekit bench model FILE --size HxW --repeats R --warmup W
     --threads T --json` (one JSON object: median_ms, min_ms, max_ms, peak_rss_mb, outputs);
   - PyTorch eager: timm features_only model, torch.set_num_threads(T), inference_mode;
   - ONNX Runtime: the same model exported with torch.onnx.export(dynamo=False, opset 17),
     intra_op_num_threads=T, inter_op_num_threads=1, CPU provider;
3. outputs are compared: ONNX Runtime vs PyTorch, and DenseKit vs PyTorch when the CLI can
   write its outputs (`--save-outputs FILE`; the script offers its input with `--input FILE`,
   tensor `x`, and otherwise uses an input tensor found in the saved file).

A peer that is missing or fails (e.g. the DenseKit command not built yet) is reported as
unavailable; the other rows are still measured. Prints a Markdown table.

Examples:
    tools/.venv/bin/python tools/bench_vovnet.py
    tools/.venv/bin/python tools/bench_vovnet.py --models ese_vovnet19b_dw --peers torch,ort
    tools/.venv/bin/python tools/bench_vovnet.py --densekit .build/release/densekit --repeats 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

PROG = "bench_vovnet.py"
TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
DEFAULT_MODELS = ("ese_vovnet19b_dw", "ese_vovnet39b")
OUT_INDICES = (1, 2, 3, 4)
REDUCTION = {0: 2, 1: 4, 2: 8, 3: 16, 4: 32}
PEERS = ("densekit", "torch", "ort")
PEER_NAMES = {"densekit": "DenseKit", "torch": "PyTorch eager", "ort": "ONNX Runtime"}


class BenchError(Exception):
    """Expected failure: one line, exit 1."""


def _err_line(text: str, limit: int = 240) -> str:
    lines = [l.strip() for l in (text or "").strip().splitlines() if l.strip()]
    # Prefer the last line of a Python traceback (the exception), else the first line.
    if any(l.startswith("Traceback") for l in lines):
        return lines[-1][:limit]
    return (lines[0] if lines else "no message")[:limit]


def _vm_hwm_mb() -> Optional[float]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _stats(times_ms: List[float]) -> dict:
    return {"median_ms": statistics.median(times_ms), "min_ms": min(times_ms), "max_ms": max(times_ms),
            "runs": len(times_ms)}


# --------------------------------------------------------------------------------------
# Workers (each in its own process)


def _load_input(path: str):
    from safetensors.numpy import load_file
    return load_file(path)["x"]


def worker_torch(a: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    sys.path.insert(0, TOOLS)
    import convert
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(a.weights, "pt") as f:
        cfg = json.loads(f.metadata()["densekit.config"])
    model = convert.build_timm_features_model(cfg, load_file(a.weights), a.model)
    x = torch.from_numpy(_load_input(a.input))
    times = []
    with torch.inference_mode():
        for _ in range(a.warmup):
            model(x)
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            outs = model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    names = [f"feat{REDUCTION[i]}" for i in cfg["out_indices"]]
    if a.save_outputs:
        np.savez(a.save_outputs, **{n: o.numpy() for n, o in zip(names, outs)})
    res = _stats(times)
    res.update(outputs={n: list(o.shape) for n, o in zip(names, outs)}, vm_hwm_mb=_vm_hwm_mb(),
               version=f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    return res


def worker_export(a: argparse.Namespace) -> dict:
    import warnings
    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(a.threads)
    sys.path.insert(0, TOOLS)
    import convert
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(a.weights, "pt") as f:
        cfg = json.loads(f.metadata()["densekit.config"])
    model = convert.build_timm_features_model(cfg, load_file(a.weights), a.model)
    x = torch.from_numpy(_load_input(a.input))
    names = [f"feat{REDUCTION[i]}" for i in cfg["out_indices"]]
    t0 = time.perf_counter()
    torch.onnx.export(model, (x,), a.onnx, input_names=["x"], output_names=names, opset_version=17,
                      dynamo=False)
    return {"export_s": time.perf_counter() - t0, "bytes": os.path.getsize(a.onnx)}


def worker_ort(a: argparse.Namespace) -> dict:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    x = _load_input(a.input)
    names = [o.name for o in sess.get_outputs()]
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(a.warmup):
        sess.run(None, feed)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        outs = sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    if a.save_outputs:
        np.savez(a.save_outputs, **dict(zip(names, outs)))
    res = _stats(times)
    res.update(outputs={n: list(o.shape) for n, o in zip(names, outs)}, vm_hwm_mb=_vm_hwm_mb(),
               version=f"onnxruntime {ort.__version__}, intra {a.threads} / inter 1")
    return res


def worker_compare(a: argparse.Namespace) -> dict:
    """DenseKit's saved outputs vs PyTorch on the input DenseKit used."""
    import numpy as np
    import torch

    torch.set_num_threads(a.threads)
    sys.path.insert(0, TOOLS)
    import convert
    from safetensors import safe_open
    from safetensors.numpy import load_file as np_load
    from safetensors.torch import load_file

    got = np_load(a.densekit_outputs)
    x = None
    for k in ("input.x", "input", "x"):
        if k in got:
            x = got[k]
            break
    if x is None:
        x = _load_input(a.input) if a.input else None
    if x is None:
        return {"skipped": "the saved outputs hold no input tensor and --input was not accepted"}
    with safe_open(a.weights, "pt") as f:
        cfg = json.loads(f.metadata()["densekit.config"])
    model = convert.build_timm_features_model(cfg, load_file(a.weights), a.model)
    with torch.inference_mode():
        outs = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    res = {}
    for i, o in zip(cfg["out_indices"], outs):
        n = f"feat{REDUCTION[i]}"
        d = got.get(n, got.get(f"output.{n}"))
        want = o.numpy()
        if d is None:
            res[n] = {"error": "missing in DenseKit outputs"}
        elif tuple(d.shape) != want.shape:
            res[n] = {"error": f"shape {list(d.shape)} vs torch {list(want.shape)}"}
        else:
            diff = np.abs(d.astype(np.float64) - want.astype(np.float64))
            res[n] = {"max_abs": float(diff.max()), "max_ref": float(np.abs(want).max())}
    return {"diffs": res}


WORKERS = {"torch": worker_torch, "ort": worker_ort, "export": worker_export, "compare": worker_compare}


# --------------------------------------------------------------------------------------
# Parent


def run_measured(cmd: Sequence[str], timeout: float, env: Optional[dict] = None) -> dict:
    """Runs `cmd`, returning rc, stdout, stderr, peak RSS (MB, ru_maxrss from wait4) and wall time."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(list(cmd), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=REPO)
        except OSError as e:
            return {"rc": 127, "stdout": "", "stderr": f"cannot run {cmd[0]}: {e.strerror}", "rss_mb": None,
                    "wall_s": 0.0, "timed_out": False}
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            p.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return {"rc": p.returncode, "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace"), "rss_mb": ru.ru_maxrss / 1024.0,
                "wall_s": wall, "timed_out": timed_out.is_set()}


def last_json(text: str) -> Optional[dict]:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                v = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(v, dict):
                return v
    try:  # a pretty-printed object
        v = json.loads(text)
        return v if isinstance(v, dict) else None
    except json.JSONDecodeError:
        return None


def run_worker(kind: str, args: argparse.Namespace, timeout: float, **kw) -> Tuple[Optional[dict], dict]:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--threads", str(args.threads),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    for k, v in kw.items():
        if v is not None:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.omp_passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    r = run_measured(cmd, timeout, env)
    res = last_json(r["stdout"]) if r["rc"] == 0 else None
    if r["rc"] != 0:
        r["error"] = "timed out" if r["timed_out"] else _err_line(r["stderr"])
    elif res is None:
        r["error"] = "no JSON result"
    return res, r


def find_densekit(args: argparse.Namespace) -> Tuple[Optional[str], str]:
    if args.densekit:
        p = os.path.abspath(args.densekit)
        return (p, "") if os.path.isfile(p) and os.access(p, os.X_OK) else (None, f"not an executable: {p}")
    if shutil.which("swift") is None:
        return None, "swift not found (pass --densekit PATH)"
    if args.build:
        print("building densekit (swift build -c release --product densekit) ...", file=sys.stderr, flush=True)
        r = subprocess.run(["swift", "build", "-c", "release", "--product", "densekit"], cwd=REPO,
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"swift build failed: {_err_line(r.stderr or r.stdout)}"
    try:
        r = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return None, "swift build --show-bin-path timed out"
    if r.returncode != 0:
        return None, f"swift build --show-bin-path failed: {_err_line(r.stderr)}"
    p = os.path.join(r.stdout.strip().splitlines()[-1], "densekit")
    if not os.path.isfile(p):
        return None, f"{p} not built (run: swift build -c release --product densekit, or pass --build)"
    return p, ""


def run_densekit(exe: str, weights: str, args: argparse.Namespace, tmp: str, input_path: str) -> Tuple[dict, dict]:
    """Timed run, then a run that saves outputs. Returns (row, comparison info)."""
    size = f"{args.height}x{args.width}"
    base = [exe, "bench", "model", weights, "--size", size, "--threads", str(args.threads), "--json"]
    r = run_measured(base + ["--repeats", str(args.repeats), "--warmup", str(args.warmup)], args.timeout)
    res = last_json(r["stdout"]) if r["rc"] == 0 else None
    row: dict = {"rss_mb": r["rss_mb"]}
    if r["rc"] != 0 or res is None or "median_ms" not in res:
        why = ("timed out" if r["timed_out"] else _err_line(r["stderr"] or r["stdout"])) if r["rc"] != 0 \
            else "no JSON object with median_ms in its output"
        row["error"] = why
        return row, {"skipped": "DenseKit run unavailable"}
    row.update({k: res.get(k) for k in ("median_ms", "min_ms", "max_ms", "peak_rss_mb", "outputs")})
    out_path = os.path.join(tmp, "densekit_outputs.safetensors")
    check = base + ["--repeats", "1", "--warmup", "0", "--save-outputs", out_path]
    r2 = run_measured(check + ["--input", input_path], args.timeout)
    input_used = input_path
    if r2["rc"] != 0 and ("--input" in r2["stderr"] or "input" in r2["stderr"].lower()):
        r2 = run_measured(check, args.timeout)  # the CLI has no --input: it must save its own input
        input_used = None
    if r2["rc"] != 0 or not os.path.isfile(out_path):
        return row, {"skipped": f"--save-outputs unavailable: {_err_line(r2['stderr'] or r2['stdout'])}"}
    return row, {"outputs": out_path, "input": input_used}


def fmt(v: Optional[float], nd: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmark VoVNet backbones (features_only, strides 4..32): DenseKit CLI vs PyTorch eager vs "
                    "ONNX Runtime, same converted random weights and input, each peer in its own process; "
                    "median latency and peak RSS, Markdown table. A benchmark, not a test.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  bench_vovnet.py\n"
               "  bench_vovnet.py --models ese_vovnet19b_dw --peers torch,ort --repeats 20\n"
               "  bench_vovnet.py --densekit .build/release/densekit --json-out results.json")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help=f"comma-separated timm VoVNet presets (default {','.join(DEFAULT_MODELS)})")
    p.add_argument("--size", default="512x512", help="input HxW (default 512x512)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per peer, median reported (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    p.add_argument("--threads", type=int, default=2, help="threads per peer (default 2)")
    p.add_argument("--peers", default=",".join(PEERS), help=f"subset of {','.join(PEERS)} (default all)")
    p.add_argument("--densekit", metavar="PATH",
                   help="densekit binary (default: `swift build -c release --show-bin-path`/densekit)")
    p.add_argument("--build", action="store_true", help="run `swift build -c release --product densekit` first")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the input (default 0)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per peer run (default 600)")
    p.add_argument("--omp-passive", action="store_true",
                   help="OMP_WAIT_POLICY=PASSIVE for the PyTorch peer (only for a loaded machine: spinning OpenMP "
                        "threads then lose whole time slices); reported in the header")
    p.add_argument("--keep", metavar="DIR", help="keep the converted weights, ONNX files and outputs in DIR")
    p.add_argument("--json-out", metavar="FILE", help="also write all results as JSON")
    # internal: worker processes
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    for k in ("model", "weights", "input", "onnx", "save-outputs", "densekit-outputs"):
        p.add_argument(f"--{k}", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        res = WORKERS[args.worker](args)
        print(json.dumps(res))
        return 0
    try:
        return bench(args)
    except BenchError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def bench(args: argparse.Namespace) -> int:
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
        assert h >= 32 and w >= 32
    except (ValueError, AssertionError):
        raise BenchError(f"--size must be HxW with both >= 32, got '{args.size}'") from None
    args.height, args.width = h, w
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        raise BenchError("--repeats >= 1, --warmup >= 0 and --threads >= 1 are required")
    if args.repeats < 10:
        print(f"{PROG}: note: fewer than 10 timed runs", file=sys.stderr)
    peers = [x.strip() for x in args.peers.split(",") if x.strip()]
    bad = [x for x in peers if x not in PEERS]
    if bad or not peers:
        raise BenchError(f"unknown peers {bad}; choose from {','.join(PEERS)}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    sys.path.insert(0, TOOLS)
    import convert  # light: imports torch lazily
    for m in models:
        try:
            convert.preset_config(m)
        except convert.ConvertError as e:
            raise BenchError(str(e)) from None

    import numpy as np
    from safetensors.numpy import save_file

    exe, dk_why = (None, "not requested")
    if "densekit" in peers:
        exe, dk_why = find_densekit(args)
    tmp = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="densekit-bench-")
    os.makedirs(tmp, exist_ok=True)
    results: Dict[str, dict] = {}
    try:
        x = np.random.default_rng(args.seed).standard_normal((1, 3, h, w)).astype(np.float32)
        input_path = os.path.join(tmp, "input.safetensors")
        save_file({"x": x}, input_path)
        header = [f"input 1x3x{h}x{w} N(0,1) seed {args.seed}; {args.threads} threads per peer; "
                  f"warm-up {args.warmup}, timed {args.repeats}"
                  + ("; PyTorch with OMP_WAIT_POLICY=PASSIVE" if args.omp_passive else ""),
                  f"host: {platform.machine()} {_cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                  f"load average at start {os.getloadavg()[0]:.2f}"]
        load = os.getloadavg()[0]
        if load > (os.cpu_count() or 1) * 0.75:
            header.append(f"WARNING: load average {load:.1f} on {os.cpu_count()} CPUs: other processes compete; "
                          "timings (OpenMP peers especially) are unreliable")
        if exe:
            r = run_measured([exe, "--version"], 60)
            blas = [l for l in r["stdout"].splitlines() if l.startswith("blas:")]
            header.append(f"densekit: {exe}" + (f" ({blas[0]})" if blas else ""))
        elif "densekit" in peers:
            header.append(f"densekit: unavailable ({dk_why})")

        for model in models:
            mres: Dict[str, dict] = {}
            results[model] = mres
            print(f"[{model}] converting ...", file=sys.stderr, flush=True)
            wpath = os.path.join(tmp, f"{model}.safetensors")
            r = run_measured([sys.executable, os.path.join(TOOLS, "convert.py"), "--timm", model, "--seed",
                              str(args.seed), "--random-bn", "--features-only", "--out-indices",
                              ",".join(map(str, OUT_INDICES)), "-o", wpath], args.timeout)
            if r["rc"] != 0:
                for peer in peers:
                    mres[peer] = {"error": f"convert.py failed: {_err_line(r['stderr'])}"}
                continue
            torch_out = os.path.join(tmp, f"{model}.torch.npz")
            for peer in peers:
                print(f"[{model}] {PEER_NAMES[peer]} ...", file=sys.stderr, flush=True)
                if peer == "densekit":
                    if not exe:
                        mres[peer] = {"error": dk_why}
                        continue
                    row, cmp_info = run_densekit(exe, wpath, args, tmp, input_path)
                    mres[peer] = row
                    mres["_densekit_check"] = cmp_info
                elif peer == "torch":
                    res, r = run_worker("torch", args, args.timeout, model=model, weights=wpath, input=input_path,
                                        save_outputs=torch_out)
                    mres[peer] = dict(res or {}, rss_mb=r["rss_mb"], **({"error": r["error"]} if "error" in r else {}))
                elif peer == "ort":
                    onnx_path = os.path.join(tmp, f"{model}.onnx")
                    res, r = run_worker("export", args, args.timeout, model=model, weights=wpath, input=input_path,
                                        onnx=onnx_path)
                    if res is None:
                        mres[peer] = {"error": f"ONNX export failed: {r.get('error')}"}
                        continue
                    ort_out = os.path.join(tmp, f"{model}.ort.npz")
                    res, r = run_worker("ort", args, args.timeout, onnx=onnx_path, input=input_path,
                                        save_outputs=ort_out)
                    mres[peer] = dict(res or {}, rss_mb=r["rss_mb"], **({"error": r["error"]} if "error" in r else {}))
            # Agreement.
            checks = {}
            if os.path.isfile(torch_out) and os.path.isfile(os.path.join(tmp, f"{model}.ort.npz")):
                checks["ort"] = _npz_diff(os.path.join(tmp, f"{model}.ort.npz"), torch_out)
            info = mres.pop("_densekit_check", None)
            if info is not None:
                if "skipped" in info:
                    checks["densekit"] = {"skipped": info["skipped"]}
                else:
                    res, r = run_worker("compare", args, args.timeout, model=model, weights=wpath,
                                        input=info["input"], densekit_outputs=info["outputs"])
                    checks["densekit"] = res if res is not None else {"skipped": f"compare failed: {r.get('error')}"}
            mres["_checks"] = checks
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print("\n".join(header))
    print()
    print(table(results, peers))
    print()
    for model, mres in results.items():
        for peer, c in mres.get("_checks", {}).items():
            print(f"- {model}: {PEER_NAMES[peer]} vs PyTorch: {_check_text(c)}")
        for peer in peers:
            row = mres.get(peer, {})
            if "error" in row:
                print(f"- {model}: {PEER_NAMES[peer]} unavailable: {row['error']}")
            elif peer == "densekit" and row.get("peak_rss_mb") is not None:
                print(f"- {model}: DenseKit self-reported peak_rss_mb {fmt(row['peak_rss_mb'])}, "
                      f"outputs {json.dumps(row.get('outputs'))}")
    print("- peak RSS: ru_maxrss of the peer's process (wait4), including its runtime and libraries; "
          "the Python peers' figure includes the interpreter, numpy and torch/onnxruntime")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"header": header, "results": results}, f, indent=1)
    return 0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _npz_diff(a_path: str, ref_path: str) -> dict:
    import numpy as np

    a, b = np.load(a_path), np.load(ref_path)
    res = {}
    for n in b.files:
        if n not in a.files:
            res[n] = {"error": "missing"}
        elif a[n].shape != b[n].shape:
            res[n] = {"error": f"shape {list(a[n].shape)} vs {list(b[n].shape)}"}
        else:
            res[n] = {"max_abs": float(np.abs(a[n].astype(np.float64) - b[n]).max()),
                      "max_ref": float(np.abs(b[n]).max())}
    return {"diffs": res}


def _check_text(c: dict) -> str:
    if "skipped" in c:
        return f"skipped ({c['skipped']})"
    parts = []
    for n, d in c.get("diffs", {}).items():
        if "error" in d:
            parts.append(f"{n} {d['error']}")
        else:
            parts.append(f"{n} max|diff| {d['max_abs']:.2e} (max|ref| {d['max_ref']:.2g})")
    return ", ".join(parts) or "nothing compared"


def table(results: Dict[str, dict], peers: List[str]) -> str:
    lines = ["| model | peer | median ms | min ms | max ms | peak RSS MB | DenseKit / peer |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for model, mres in results.items():
        dk = mres.get("densekit", {}).get("median_ms")
        for peer in peers:
            row = mres.get(peer, {})
            if "error" in row or row.get("median_ms") is None:
                lines.append(f"| {model} | {PEER_NAMES[peer]} | unavailable | | | | |")
                continue
            if peer == "densekit":
                ratio = "1.00"
            else:
                ratio = f"{dk / row['median_ms']:.2f}" if dk else "n/a"
            lines.append(f"| {model} | {PEER_NAMES[peer]} | {fmt(row['median_ms'])} | {fmt(row.get('min_ms'))} | "
                         f"{fmt(row.get('max_ms'))} | {fmt(row.get('rss_mb'), 0)} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
