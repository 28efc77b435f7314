#!/usr/bin/env python3
"""Exactness check: tools/polymax_torch.py against DenseKit's Swift runtime on one CamVid val image.

    tools/.venv/bin/python tools/check_polymax_exact.py [--densekit .build-train/release/densekit]
        [--model PATH.safetensors]   # an exported model; default: a random model with randomised BN statistics
        [--image ../shared/data/camvid/val/images/0016E5_07959.jpg]

The JPEG is decoded once with PIL and written as PNG, so both sides see the same pixels; DenseKit runs
`segment --format npy` (class scores [C, H, W]) and `segment` (labels PNG) on it; PyTorch runs the same
letterbox / crop / resize / read-out path (polymax_torch.predict_semantic). Prints max |score difference|,
label agreement and the smallest top-2 margin. Exit 1 if labels agree on < 99.9 % or scores differ > 1e-4.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from polymax_torch import PolyMaX, predict_semantic  # noqa: E402
from export_polymax import export, load_checkpoint_model, CAMVID_MEAN, CAMVID_STD  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def randomize(model: torch.nn.Module, seed: int = 0, args_mask_scale: float = 1.0, calib=None):
    """Random but well-conditioned weights: random BN affine parameters and class head, then BN running
    statistics measured on `calib` (a batch of real inputs) in train mode and slightly perturbed, as the golden
    cases do (uncalibrated random statistics make the k-means sums explode)."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d))]
    with torch.no_grad():
        for m in bns:
            c = m.num_features
            m.weight.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.copy_(0.1 * torch.randn(c, generator=g))
        for n, m in model.named_modules():
            if n.endswith("_transformer_class_head"):
                cin = m.conv.weight.shape[1]
                m.conv.weight.copy_(torch.randn(m.conv.weight.shape, generator=g) * 2.0 / cin ** 0.5)
                m.conv.bias.copy_(torch.randn(m.conv.bias.shape, generator=g))
            if n.endswith("_pixel_space_mask_batch_norm"):
                m.weight.fill_(args_mask_scale)
        if calib is not None:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
            model.train()
            model(calib)
            for m in bns:
                c = m.num_features
                m.running_mean.add_(0.05 * m.running_var.sqrt() * torch.randn(c, generator=g))
                m.running_var.mul_(torch.exp(0.1 * (2 * torch.rand(c, generator=g) - 1)))
                m.momentum = 0.1
        model.eval()


def letterbox(img: np.ndarray, mean, std, m=32):
    h, w, _ = img.shape
    ph, pw = (h + m - 1) // m * m, (w + m - 1) // m * m
    x = (img.astype(np.float32) / 255.0 - np.array(mean, np.float32)) / np.array(std, np.float32)
    out = np.zeros((3, ph, pw), np.float32)
    out[:, :h, :w] = x.transpose(2, 0, 1)
    return torch.from_numpy(out)[None]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--densekit", default=os.path.join(ROOT, ".build-train", "release", "densekit"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--checkpoint", default=None, help="a training checkpoint (exported to a temporary model)")
    ap.add_argument("--image", default=os.path.join(ROOT, "..", "shared", "data", "camvid", "val", "images", "0016E5_07959.jpg"))
    ap.add_argument("--backbone", default="ese_vovnet19b_slim_dw")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--depth", action="store_true", help="random model with readout.depth.* (task depth): also compare densekit depth")
    ap.add_argument("--jpeg", action="store_true", help="also run densekit on the JPEG itself (its own decoder) and "
                    "compare with PyTorch on PIL's decode")
    ap.add_argument("--f64", action="store_true", help="also run PyTorch in float64 (rounding-noise yardstick)")
    ap.add_argument("--mask-scale", type=float, default=1.0, help="weight of the random model's scalar mask BN")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tmp = tempfile.mkdtemp(prefix="pmx-check-")
    mean, std = CAMVID_MEAN, CAMVID_STD
    if args.checkpoint:
        model, ck = load_checkpoint_model(args.checkpoint)
        ta = ck.get("train_args") or {}
        mean, std = ta.get("mean", mean), ta.get("std", std)
        path = os.path.join(tmp, "model.safetensors")
        export(model, path, mean=mean, std=std)
    elif args.model:
        raise SystemExit("--model: use --checkpoint (the PyTorch side needs the module)")
    else:
        torch.manual_seed(args.seed)
        model = PolyMaX(args.backbone, depth=args.depth)
        if args.depth:
            with torch.no_grad():
                model.readout.depth.weight.normal_(0, 0.3 / model.head_cfg["query_dim"] ** 0.5)
        vd = os.path.dirname(args.image)
        others = sorted(f for f in os.listdir(vd) if f.endswith(".jpg"))[:3]
        calib = torch.cat([letterbox(np.array(Image.open(os.path.join(vd, f)).convert("RGB")), mean, std)
                           for f in others + [os.path.basename(args.image)]])
        randomize(model, args.seed, args.mask_scale, calib)
        path = os.path.join(tmp, "model.safetensors")
        export(model, path, task="multitask" if args.depth else "segmentation")
    img = np.array(Image.open(args.image).convert("RGB"))
    png = os.path.join(tmp, "img.png")
    Image.fromarray(img).save(png)
    out = os.path.join(tmp, "out")
    for fmt in ("npy", "png"):
        r = subprocess.run([args.densekit, "segment", png, "-m", path, "-o", out, "--format", fmt, "--force"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            raise SystemExit(f"densekit failed ({r.returncode})")
    sw = np.load(os.path.join(out, "img.scores.npy"))
    swl = np.array(Image.open(os.path.join(out, "img.labels.png")))
    x = letterbox(img, mean, std)
    h, w = img.shape[:2]
    with torch.no_grad():
        s = predict_semantic(model, x, (h, w), (h, w))[0].numpy()
    lab = s.argmax(0)
    if args.f64:
        m64 = copy.deepcopy(model).double()
        with torch.no_grad():
            s64 = predict_semantic(m64, x.double(), (h, w), (h, w))[0].numpy()
        d64 = np.abs(s64 - s)
        print(f"torch float32 vs float64: max |score diff| {d64.max():.3e}, mean {d64.mean():.3e}; "
              f"swift vs float64: max {np.abs(sw - s64).max():.3e}, mean {np.abs(sw - s64).mean():.3e}; "
              f"label agreement f32/f64 {(lab == s64.argmax(0)).mean() * 100:.4f} %, swift/f64 {(swl == s64.argmax(0)).mean() * 100:.4f} %")
    srt = np.sort(s, 0)
    margin = (srt[-1] - srt[-2])
    d = np.abs(sw - s)
    agree_scores = (sw.argmax(0) == lab).mean()
    agree_png = (swl == lab).mean()
    print(f"image {os.path.basename(args.image)} {w}x{h}; swift scores {sw.shape}, torch {s.shape}")
    print(f"max |score diff| {d.max():.3e}, mean {d.mean():.3e}; score range {s.min():.3f}..{s.max():.3f}")
    print(f"labels agree: {agree_scores * 100:.4f} % (argmax of swift scores), {agree_png * 100:.4f} % (swift labels PNG)")
    print(f"torch label histogram {np.bincount(lab.ravel(), minlength=s.shape[0]).tolist()}")
    print(f"top-2 margin: min {margin.min():.3e}, pixels with margin < 1e-4: {(margin < 1e-4).sum()}")
    iy, ix = np.unravel_index(d.max(0).argmax(), d.shape[1:])
    print(f"worst pixel (y={iy}, x={ix}): swift {np.round(sw[:, iy, ix], 5).tolist()} torch {np.round(s[:, iy, ix], 5).tolist()}")
    ok = agree_png >= 0.999 and d.max() <= 1e-4
    if args.jpeg:
        r = subprocess.run([args.densekit, "segment", args.image, "-m", path, "-o", out, "--format", "npy", "--force"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            raise SystemExit(f"densekit failed on the JPEG ({r.returncode})")
        stem = os.path.splitext(os.path.basename(args.image))[0]
        sj = np.load(os.path.join(out, stem + ".scores.npy"))
        dj = np.abs(sj - s)
        print(f"JPEG decoded by densekit vs PIL decode in PyTorch: max |score diff| {dj.max():.3e}, mean {dj.mean():.3e}, "
              f"labels agree {(sj.argmax(0) == lab).mean() * 100:.4f} %")
    if args.depth:
        from polymax_torch import depth_map
        r = subprocess.run([args.densekit, "depth", png, "-m", path, "-o", out, "--format", "npy", "--force"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout, r.stderr)
            raise SystemExit(f"densekit depth failed ({r.returncode})")
        swd = np.load(os.path.join(out, "img.depth.npy"))
        with torch.no_grad():
            o = model(x)
            ml = o["mask_logits"][:, :, :int(math.floor(h * o["mask_logits"].shape[2] / x.shape[2] + 0.5)),
                                  :int(math.floor(w * o["mask_logits"].shape[3] / x.shape[3] + 0.5))]
            hc = model.head_cfg
            td = depth_map(ml, o["cluster_embeddings"], model.readout, hc["d_min"], hc["d_max"], (h, w))[0, 0].numpy()
        dd = np.abs(swd.reshape(td.shape) - td)
        print(f"depth: range {td.min():.4f}..{td.max():.4f} m, max |diff| {dd.max():.3e}, mean {dd.mean():.3e}")
        ok = ok and dd.max() <= 1e-3
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
