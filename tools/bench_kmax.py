#!/usr/bin/env python3
"""Benchmark (figures, never pass/fail): the PolyMaX / kMaX head alone, PyTorch against DenseKit, same machine.

Setting of `../shared/specs/polymax-head.md` section 10: R50 widths, the features of a 512 x 512 image
(res2 256x128x128, res3 512x64x64, res4 1024x32x32, res5 2048x16x16), K = 128 clusters, C = 133 classes,
6 decoder layers ([2, 2, 2]), float32, 2 threads, median of 5 timed runs after one warm-up.

1. The PyTorch head is tools/polymax_torch.py's KMaXPixelDecoder + KMaXTransformerDecoder (the spec's head
   written from plain tensor ops, the reference's weight names; it computes every layer's class logits but,
   unlike the released kMaX code, does not resize the auxiliary predictions), with its own random init
   (`--seed`). Its state dict is saved (float32, no `num_batches_tracked`) with the N(0, 1) features, so
   DenseKit runs the SAME weights on the SAME input.
2. DenseKit runs in its own process: `densekit bench head --config C --weights W --input I --threads T
   --repeats R --warmup 1 --json --save-outputs O` (build it first: `swift build -c release`).
3. PyTorch then runs in this process: torch.set_num_threads(T), inference_mode, the same warm-up / repeats.
4. Prints both medians, the ratio DenseKit / PyTorch, and how closely the outputs agree (max |diff| of the
   mask logits, share of equal assignments per decoder layer): an informative cross-check, not a test.

Example (from the repository root):
    swift build -c release && tools/.venv/bin/python tools/bench_kmax.py
    tools/.venv/bin/python tools/bench_kmax.py --threads 2 --repeats 9 --densekit .build/release/densekit
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

CONFIG = {  # spec section 2 defaults (kMaX R50, COCO panoptic)
    "in_channels": [256, 512, 1024, 2048], "dec_layers": [1, 5, 1, 1], "dec_channels": [512, 256, 128, 64],
    "layer_types": ["axial", "axial", "bottleneck", "bottleneck"], "num_heads": 8, "trans_dec_layers": [2, 2, 2],
    "num_clusters": 128, "query_dim": 256, "trans_base_filters": 128, "ffn_dim": 2048, "pred_mid_channels": 256,
    "embed_dim": 128, "num_classes": 133, "void_prior_prob": 0.9,
}


def build_head(cfg: dict):
    import torch
    from polymax_torch import KMaXPixelDecoder, KMaXTransformerDecoder

    class Head(torch.nn.Module):
        def __init__(self, a):
            super().__init__()
            self.pixel_decoder = KMaXPixelDecoder(a["in_channels"], a["dec_layers"], a["dec_channels"], a["layer_types"],
                                                  a["num_heads"])
            self.predictor = KMaXTransformerDecoder([4 * c for c in a["dec_channels"]], a["trans_dec_layers"],
                                                    a["num_clusters"], a["query_dim"], a["trans_base_filters"],
                                                    a["num_heads"], a["ffn_dim"], a["pred_mid_channels"], a["embed_dim"],
                                                    a["num_classes"], a["void_prior_prob"])

        def forward(self, res2, res3, res4, res5):
            return self.predictor(self.pixel_decoder(res2, res3, res4, res5))

    return Head(cfg).eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--densekit", default=os.path.join(REPO, ".build", "release", "densekit"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--size", default="512x512", help="image size HxW whose stride 4..32 features are used")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="keep the weights / input / outputs in this folder")
    args = ap.parse_args()

    import torch
    from safetensors.torch import save_file, load_file

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.lower().split("x"))
    head = build_head(CONFIG)
    feats = {f"res{i + 2}": torch.randn(1, c, math.ceil(h / (4 << i)), math.ceil(w / (4 << i)))
             for i, c in enumerate(CONFIG["in_channels"])}
    folder = args.keep or tempfile.mkdtemp(prefix="bench_kmax_")
    os.makedirs(folder, exist_ok=True)
    wpath, ipath = os.path.join(folder, "head.safetensors"), os.path.join(folder, "features.safetensors")
    cpath, opath = os.path.join(folder, "config.json"), os.path.join(folder, "densekit_outputs.safetensors")
    sd = {k: v.detach().float().contiguous() for k, v in head.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(sd, wpath)
    save_file({k: v.contiguous() for k, v in feats.items()}, ipath)
    with open(cpath, "w") as f:
        json.dump(CONFIG, f)

    print(f"kMaX head, features {[list(t.shape) for t in feats.values()]}, K {CONFIG['num_clusters']}, "
          f"C {CONFIG['num_classes']}, {sum(CONFIG['trans_dec_layers'])} decoder layers, {args.threads} threads, "
          f"median of {args.repeats} after {args.warmup} warm-up; same random weights (seed {args.seed}) and input")

    dk = None
    if os.path.exists(args.densekit):
        cmd = [args.densekit, "bench", "head", "--config", cpath, "--weights", wpath, "--input", ipath,
               "--threads", str(args.threads), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
               "--json", "--save-outputs", opath]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            dk = json.loads(r.stdout.strip().splitlines()[-1])
        else:
            print(f"DenseKit failed: {(r.stderr or r.stdout).strip()[:300]}")
    else:
        print(f"DenseKit: {args.densekit} not found (swift build -c release)")

    times = []
    with torch.inference_mode():
        for _ in range(args.warmup):
            out = head(**feats)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = head(**feats)
            times.append((time.perf_counter() - t0) * 1e3)
    torch_ms = statistics.median(times)

    print(f"| peer | median ms | min ms | max ms |")
    print(f"| --- | ---: | ---: | ---: |")
    print(f"| PyTorch {torch.__version__} eager | {torch_ms:.1f} | {min(times):.1f} | {max(times):.1f} |")
    if dk:
        print(f"| DenseKit | {dk['median_ms']:.1f} | {dk['min_ms']:.1f} | {dk['max_ms']:.1f} |")
        print(f"ratio DenseKit / PyTorch = {dk['median_ms'] / torch_ms:.3f}")
        got = load_file(opath)
        d = (got["mask_logits"] - out["mask_logits"]).abs().max().item()
        same = [float((got[f"assignment_{i}"].reshape(-1) == a.reshape(-1)).float().mean())
                for i, (_, _, a) in enumerate(out["aux"])]
        print(f"outputs: mask logits max |diff| {d:.2e}; assignments equal "
              + ", ".join(f"{100 * s:.2f}%" for s in same))
    print("load average (1/5/15 min) at the end: %.2f %.2f %.2f on %d CPUs: other work on the machine distorts both "
          "peers (PyTorch's OpenMP threads most)" % (*os.getloadavg(), os.cpu_count() or 0))
    if not args.keep:
        for p in (wpath, ipath, cpath, opath):
            if os.path.exists(p):
                os.remove(p)
        os.rmdir(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
