#!/usr/bin/env python3
"""Train the PolyMaX depth model (spec 6.2, read-out option A) on the packed RGB-D frames.

    tools/.venv/bin/python tools/pack_device_data.py            # -> work-data/ (git-ignored)
    tools/.venv/bin/python tools/train_depth.py --data work-data --init Models/camvid_seg_vovnet19_slim.safetensors \
        --minutes 7 --device cuda --run-dir tools/runs/depth
    tools/.venv/bin/python tools/export_polymax.py tools/runs/depth/model_final.pt Models/depth_....safetensors

Data: work-data/depth-train (one indoor scene, 7-Scenes redkitchen, 250 frames; RGB and depth NOT registered,
edges up to ~20 px apart at 640x480) as 320x240 RGB and 160x120 depth; work-data/depth-eval (12 frames of three
other scenes) is only scored, never trained on.
Model: the CamVid PolyMaX (VoVNet-19-slim-dw + head) as initialisation (its backbone and head learnt real
images), plus `readout.depth.*`: one depth per cluster d_k = d_min + (d_max - d_min) sigmoid(w . E_k + b), mixed
by the softmax over clusters of the (bilinearly resized) mask logits.
Loss: scale-invariant log error (Eigen et al. 2014; lambda 0.85, x10 as AdaBins) per image over valid pixels,
plus --l1 x mean |log d - log g| (pulls the absolute scale).
Augmentation (on the device): random zoom 1..--zoom with a random crop back to 240x320, h-flip, brightness /
contrast / saturation / per-channel gain jitter, random grey. AdamW; warm-up then poly decay over the time
budget (--minutes) or over --epochs.
Outputs in the run folder: log.txt, model_final.pt (+ model_NNN.pt at --save-at fractions), each with the
scores on depth-eval at 320x240 (AbsRel / RMSE / delta1, metric and median-scaled, and the median baseline).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from polymax_torch import depth_map, model_from_densekit_file  # noqa: E402
import synth_rooms  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def load_packed(root: str, split: str):
    """RGB [N, 3, 240, 320] uint8 and depth [N, 1, 120, 160] float32 metres (0 = invalid)."""
    z = np.load(os.path.join(root, split, "depth_mm.npz"))
    ids = [str(i) for i in z["ids"]]
    rgb = np.stack([np.array(Image.open(os.path.join(root, split, "rgb", i + ".jpg")).convert("RGB")) for i in ids])
    depth = z["depth"].astype(np.float32) / 1000.0
    return ids, torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(depth)[:, None]


def normalize(x: torch.Tensor) -> torch.Tensor:  # x [B, 3, H, W] in 0..1
    m = torch.tensor(MEAN, device=x.device)[None, :, None, None]
    s = torch.tensor(STD, device=x.device)[None, :, None, None]
    return (x - m) / s


def augment(rgb: torch.Tensor, depth: torch.Tensor, args):
    """rgb [B, 3, H, W] uint8, depth [B, 1, H/2, W/2] -> normalised input and depth of the same sizes."""
    B, _, H, W = rgb.shape
    xs, ds = [], []
    for b in range(B):
        x = rgb[b:b + 1].float() / 255.0
        d = depth[b:b + 1]
        s = math.exp(random.uniform(0.0, math.log(args.zoom)))
        h2, w2 = max(H, int(round(H * s / 2)) * 2), max(W, int(round(W * s / 2)) * 2)
        if (h2, w2) != (H, W):
            x = F.interpolate(x, size=(h2, w2), mode="bilinear", align_corners=False)
            d = F.interpolate(d, size=(h2 // 2, w2 // 2), mode="nearest")
        y0 = random.randint(0, (h2 - H) // 2) * 2
        x0 = random.randint(0, (w2 - W) // 2) * 2
        x = x[..., y0:y0 + H, x0:x0 + W]
        d = d[..., y0 // 2:y0 // 2 + H // 2, x0 // 2:x0 // 2 + W // 2]
        if random.random() < 0.5:
            x, d = x.flip(-1), d.flip(-1)
        j = args.jitter
        x = x * random.uniform(1 - j, 1 + j)
        m = x.mean()
        x = (x - m) * random.uniform(1 - j, 1 + j) + m
        g = x.mean(1, keepdim=True)
        x = (x - g) * random.uniform(1 - j, 1 + j) + g
        x = x * torch.tensor([random.uniform(1 - j / 2, 1 + j / 2) for _ in range(3)], device=x.device)[None, :, None, None]
        if random.random() < args.grey:
            x = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        xs.append(x.clamp(0, 1))
        ds.append(d)
    return normalize(torch.cat(xs)), torch.cat(ds)


def predict(model, x: torch.Tensor, size) -> torch.Tensor:
    o = model(x)
    h = model.head_cfg
    return depth_map(o["mask_logits"], o["cluster_embeddings"], model.readout, h["d_min"], h["d_max"], size, False)


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, lam: float = 0.85, l1: float = 0.0) -> torch.Tensor:
    losses = []
    for b in range(pred.shape[0]):
        v = gt[b] > 0
        if int(v.sum()) < 16:
            continue
        g = torch.log(pred[b][v].clamp_min(1e-3)) - torch.log(gt[b][v])
        l = 10.0 * torch.sqrt((g * g).mean() - lam * g.mean() ** 2 + 1e-8)
        if l1 > 0:
            l = l + l1 * g.abs().mean()
        losses.append(l)
    return torch.stack(losses).mean() if losses else pred.sum() * 0


def metrics(d: np.ndarray, g: np.ndarray) -> dict:
    r = np.maximum(d / g, g / d)
    return dict(abs_rel=float(np.mean(np.abs(d - g) / g)), rmse=float(np.sqrt(np.mean((d - g) ** 2))),
                delta1=float(np.mean(r < 1.25)))


@torch.no_grad()
def evaluate(model, rgb, depth) -> dict:
    """Mean over images of the metric, median-scaled and median-baseline errors (DenseKit's DepthEvaluation)."""
    model.eval()
    dev = next(model.parameters()).device
    acc = {"metric": [], "median_scaled": [], "baseline": []}
    for i in range(rgb.shape[0]):
        x = normalize(rgb[i:i + 1].to(dev).float() / 255.0)
        p = predict(model, x, tuple(depth.shape[-2:]))[0, 0].cpu().numpy().astype(np.float64)
        g = depth[i, 0].numpy().astype(np.float64)
        v = g > 0
        if not v.any():
            continue
        gv, pv = g[v], np.maximum(p[v], 1e-3)
        acc["metric"].append(metrics(pv, gv))
        acc["median_scaled"].append(metrics(pv * np.median(gv) / np.median(pv), gv))
        acc["baseline"].append(metrics(np.full_like(gv, np.median(gv)), gv))
    model.train()
    return {k: {m: float(np.mean([e[m] for e in v])) for m in ("abs_rel", "rmse", "delta1")} for k, v in acc.items()}


def fmt(e: dict) -> str:
    return " | ".join(f"{k} AbsRel {v['abs_rel']:.3f} RMSE {v['rmse']:.3f} d1 {v['delta1']:.3f}" for k, v in e.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "work-data"))
    ap.add_argument("--init", default=os.path.join(ROOT, "Models", "camvid_seg_vovnet19_slim.safetensors"),
                    help="DenseKit polymax model file whose weights start the training ('' = from scratch)")
    ap.add_argument("--backbone", default="ese_vovnet19b_slim_dw")
    ap.add_argument("--run-dir", default=os.path.join(ROOT, "tools", "runs", "depth"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget (0: --epochs)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--min-lr", type=float, default=1e-6)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--zoom", type=float, default=1.5)
    ap.add_argument("--jitter", type=float, default=0.25)
    ap.add_argument("--grey", type=float, default=0.1)
    ap.add_argument("--l1", type=float, default=1.0)
    ap.add_argument("--d-max", type=float, default=10.0)
    ap.add_argument("--synth", type=float, default=0.5, help="fraction of each batch made of procedural rooms "
                    "(tools/synth_rooms.py) textured with crops of the training photos")
    ap.add_argument("--eval-every", type=float, default=30.0, help="seconds between depth-eval scores")
    ap.add_argument("--save-at", default="", help="also save model-only checkpoints at these budget fractions")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-iters", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    os.makedirs(args.run_dir, exist_ok=True)
    logf = open(os.path.join(args.run_dir, "log.txt"), "a")

    def log(msg):
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
        logf.write(line + "\n")
        logf.flush()
        print(line, flush=True)

    over = {"d_min": 1e-3, "d_max": args.d_max}
    if args.init:
        model = model_from_densekit_file(args.init, args.backbone, depth=True, head_overrides=over)
    else:
        from polymax_torch import PolyMaX
        model = PolyMaX(args.backbone, over, depth=True)
    model.to(dev).train()
    model_args = dict(backbone=args.backbone, head=model.head_cfg, depth=True)
    log(f"args {json.dumps(vars(args))}")
    _, trgb, tdepth = load_packed(args.data, "depth-train")
    _, ergb, edepth = load_packed(args.data, "depth-eval")
    trgb, tdepth = trgb.to(dev), tdepth.to(dev)
    log(f"data: train {trgb.shape[0]} {tuple(trgb.shape[-2:])}, eval {ergb.shape[0]}; depth {tuple(tdepth.shape[-2:])}")
    n_syn = int(round(args.batch * args.synth))
    tex_src = trgb
    cam = os.path.join(args.data, "camvid", "train", "images")
    if n_syn and os.path.isdir(cam):  # outdoor photos as extra textures
        names = sorted(os.listdir(cam))[::4]
        c = np.stack([np.array(Image.open(os.path.join(cam, f)).convert("RGB").resize((320, 240), Image.BILINEAR))
                      for f in names])
        tex_src = torch.cat([trgb, torch.from_numpy(c).permute(0, 3, 1, 2).to(dev)])
    gsyn = torch.Generator(device=dev).manual_seed(args.seed + 1)
    bank = None
    if n_syn:
        log(f"synthetic rooms: {n_syn} of {args.batch} per batch, textures from {tex_src.shape[0]} photos")
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or "rpe" in n or "_cluster_centers" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr)
    e0 = evaluate(model, ergb, edepth)
    log("eval before training: " + fmt(e0))
    history = [dict(it=0, eval=e0)]
    n = trgb.shape[0]
    per_epoch = max(1, n // args.batch)
    total = per_epoch * args.epochs
    budget = args.minutes * 60.0
    save_at = sorted(float(f) for f in args.save_at.split(",") if f.strip())
    t_start = last_eval = time.time()
    it, epoch, run_loss, nb = 0, 0, 0.0, 0

    def save(name):
        ev = evaluate(model, ergb, edepth)
        history.append(dict(it=it, epoch=epoch, eval=ev))
        torch.save(dict(model={k: v.detach().cpu() for k, v in model.state_dict().items()}, model_args=model_args,
                        train_args=vars(args), iters=it, epoch=epoch, depth_eval=ev, history=history),
                   os.path.join(args.run_dir, name))
        log(f"saved {name} (it {it}, epoch {epoch}): " + fmt(ev))

    while True:
        frac = (time.time() - t_start) / budget if budget > 0 else it / max(1, total)
        while save_at and frac >= save_at[0]:
            save(f"model_{int(save_at[0] * 100):03d}.pt")
            save_at.pop(0)
        if frac >= 1.0 or (args.max_iters and it >= args.max_iters):
            break
        if it % per_epoch == 0:
            perm = torch.randperm(n, device=dev)
            epoch += 1
        idx = perm[(it % per_epoch) * args.batch:(it % per_epoch + 1) * args.batch][:args.batch - n_syn]
        x, d = augment(trgb[idx], tdepth[idx], args)
        if n_syn:
            if it % 100 == 0:
                bank = synth_rooms.make_texture_bank(tex_src, 64, 96, gsyn)
            sr, sd = synth_rooms.render(n_syn, x.shape[-2], x.shape[-1], bank, gsyn)
            x = torch.cat([x, normalize(sr)])
            d = torch.cat([d, sd[..., 1::2, 1::2]])
        if it < args.warmup:
            lr = args.lr * (0.1 + 0.9 * it / args.warmup)
        else:
            lr = args.lr * (1 - min(1.0, frac)) ** 0.9 + args.min_lr
        for g in opt.param_groups:
            g["lr"] = lr
        pred = predict(model, x, tuple(d.shape[-2:]))
        loss = silog_loss(pred, d, l1=args.l1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        it += 1
        nb += 1
        run_loss += loss.item()
        if time.time() - last_eval >= args.eval_every:
            ev = evaluate(model, ergb, edepth)
            history.append(dict(it=it, epoch=epoch, loss=run_loss / nb, eval=ev))
            log(f"it {it} epoch {epoch} loss {run_loss / nb:.4f} lr {lr:.2e} "
                f"{(time.time() - t_start) / it:.3f} s/it | " + fmt(ev))
            run_loss, nb = 0.0, 0
            last_eval = time.time()
    save("model_final.pt")
    log(f"done: {it} iterations, {epoch} epochs, {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
