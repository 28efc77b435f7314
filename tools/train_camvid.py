#!/usr/bin/env python3
"""Train the PolyMaX-style CamVid segmentation model (tools/polymax_torch.py) on CPU.

    nohup nice -n 19 setsid tools/.venv/bin/python tools/train_camvid.py --name camvid_slim > /dev/null 2>&1 &
    # resume (same name; the run's saved arguments are reused unless given again):
    nohup nice -n 19 setsid tools/.venv/bin/python tools/train_camvid.py --name camvid_slim --resume > /dev/null 2>&1 &

Data: ../shared/data/camvid/{train,val}/{images,labels} (labels: 0..10 classes, 11 = void, ignored).
Loss: per-pixel NLL of the semantic read-out (spec 6.1: log of sum_k softmax_K(mask logits) * softmax_{C+1}(class
logits)[:, c], void column dropped), on the final prediction and (weight --aux) on every decoder layer's own
prediction, optionally class-weighted (--class-weight: sqrt of median-frequency balancing).
Augmentation: random scale, random crop (padded with 0 in normalised space = DenseKit's pad value, label void),
h-flip, light colour jitter. AdamW, linear warm-up then poly decay over --epochs.
Run folder tools/runs/<name>/: log.txt, last.pt (every epoch), best.pt (best val mIoU), args.json.
Val mIoU: 11 classes, void ignored, at 480x360 on the 101 val images, the DenseKit path (pad to 384x480, crop
the OS4 mask logits, resize to 360x480, read-out, argmax).
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
from polymax_torch import PolyMaX, model_from_densekit_file, predict_semantic, semantic_scores  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMVID = os.path.join(ROOT, "..", "shared", "data", "camvid")
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
NUM_CLASSES = 11
IGNORE = 11


def load_split(split: str, root: str = CAMVID):
    d = os.path.join(root, split)
    names = sorted(f[:-4] for f in os.listdir(os.path.join(d, "images")) if f.endswith(".jpg"))
    imgs = np.stack([np.array(Image.open(os.path.join(d, "images", n + ".jpg")).convert("RGB")) for n in names])
    labs = np.stack([np.array(Image.open(os.path.join(d, "labels", n + ".png"))) for n in names])
    return names, imgs, labs


def class_weights(mode: str, root: str = CAMVID):
    if mode == "none":
        return None
    with open(os.path.join(root, "classes.json")) as f:
        px = np.array(json.load(f)["splits"]["train"]["label_pixels"][:NUM_CLASSES], np.float64)
    freq = px / px.sum()
    w = np.median(freq) / freq
    if mode == "sqrt":
        w = np.sqrt(w)
    w = np.clip(w, 0.2, 10.0)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def normalize(x: torch.Tensor, mean, std):  # x [B,3,H,W] in 0..1
    return (x - torch.tensor(mean)[None, :, None, None]) / torch.tensor(std)[None, :, None, None]


def make_batch(imgs, labs, idx, args):
    ch, cw = args.crop
    xs, ys = [], []
    for i in idx:
        img = torch.from_numpy(imgs[i]).permute(2, 0, 1).float()[None] / 255.0
        lab = torch.from_numpy(labs[i].astype(np.int64))[None, None].float()
        H, W = img.shape[-2:]
        s = math.exp(random.uniform(math.log(args.scale[0]), math.log(args.scale[1])))
        nh, nw = max(8, int(H * s + 0.5)), max(8, int(W * s + 0.5))
        img = F.interpolate(img, size=(nh, nw), mode="bilinear", align_corners=False, antialias=s < 1)
        lab = F.interpolate(lab, size=(nh, nw), mode="nearest")
        # colour jitter (brightness, contrast, saturation)
        b = random.uniform(1 - args.jitter, 1 + args.jitter)
        c = random.uniform(1 - args.jitter, 1 + args.jitter)
        sa = random.uniform(1 - args.jitter, 1 + args.jitter)
        img = img * b
        m = img.mean()
        img = (img - m) * c + m
        g = img.mean(1, keepdim=True)
        img = ((img - g) * sa + g).clamp(0, 1)
        if random.random() < 0.5:
            img, lab = img.flip(-1), lab.flip(-1)
        x = normalize(img, args.mean, args.std)[0]
        lab = lab[0, 0].long()
        # pad (bottom/right, normalised 0, label void) then random crop
        ph, pw = max(ch, nh), max(cw, nw)
        xp = torch.zeros(3, ph, pw)
        lp = torch.full((ph, pw), IGNORE, dtype=torch.long)
        oy, ox = 0, 0
        xp[:, oy:oy + nh, ox:ox + nw] = x
        lp[oy:oy + nh, ox:ox + nw] = lab
        y0 = random.randint(0, ph - ch)
        x0 = random.randint(0, pw - cw)
        xs.append(xp[:, y0:y0 + ch, x0:x0 + cw])
        ys.append(lp[y0:y0 + ch, x0:x0 + cw])
    return torch.stack(xs), torch.stack(ys)


def sem_nll(ml, cl, target, weight, stride=1):
    """NLL of the semantic read-out; ml [B,K,h,w] resized (bilinear, half-pixel) to the label size / stride,
    labels subsampled (nearest, the pixel at each output cell's centre)."""
    if stride > 1:
        o = stride // 2
        target = target[:, o::stride, o::stride]
    sem = semantic_scores(ml, cl, tuple(target.shape[-2:]), False)  # [B, C, H, W], sums to <= 1
    logp = torch.log(sem.clamp_min(1e-8))
    return F.nll_loss(logp, target, weight=weight, ignore_index=IGNORE)


def greedy_match(cost: torch.Tensor):
    """Rows (clusters) matched to columns (classes) by repeatedly taking the cheapest free pair (cost [K, n], K >= n)."""
    c = cost.detach().cpu().clone()
    rows, cols = [], []
    for _ in range(min(c.shape)):
        i = int(torch.argmin(c))
        r, k = divmod(i, c.shape[1])
        rows.append(r)
        cols.append(k)
        c[r, :] = float("inf")
        c[:, k] = float("inf")
    return torch.tensor(rows), torch.tensor(cols)


def match_loss(ml, cl, target, stride, void_weight=0.1, id_weight=0.3):
    """kMaX's mask-transformer losses with each class present in the image as one segment: clusters are matched
    (greedily, cost = -(class probability + mask dice)) to the present classes; matched clusters get a class CE
    towards their class and a dice loss on their (softmax-over-clusters) mask, unmatched clusters a CE towards
    void (weight void_weight); the pixels of each present class get a CE towards their cluster (mask-ID CE)."""
    o = stride // 2
    ys = target[:, o::stride, o::stride]
    if tuple(ml.shape[-2:]) != tuple(ys.shape[-2:]):
        ml = F.interpolate(ml, size=tuple(ys.shape[-2:]), mode="bilinear", align_corners=False)
    B, K = ml.shape[:2]
    C = cl.shape[-1] - 1
    dev = ml.device
    logp = F.log_softmax(ml, 1)
    prob = logp.exp()
    logpc = F.log_softmax(cl, -1)
    l_cls = l_dice = l_id = 0.0
    n_img = 0
    for b in range(B):
        yb = ys[b]
        valid = yb != IGNORE
        classes = torch.unique(yb[valid])
        if classes.numel() == 0:
            continue
        n_img += 1
        vm = valid.flatten().float()
        pb = prob[b].flatten(1) * vm[None]  # [K, HW]
        g = (yb.flatten()[None] == classes[:, None]).float()  # [n, HW]
        inter = pb @ g.t()
        dice = 2 * inter / (pb.sum(1)[:, None] + g.sum(1)[None] + 1.0)  # [K, n]
        pcs = logpc[b][:, classes].exp()
        rows, cols = greedy_match(-(pcs + dice).detach())
        rows, cols = rows.to(dev), cols.to(dev)
        tgt = torch.full((K,), C, dtype=torch.long, device=dev)
        tgt[rows] = classes[cols]
        w = torch.full((K,), void_weight, device=dev)
        w[rows] = 1.0
        l_cls = l_cls + (-(logpc[b].gather(1, tgt[:, None])[:, 0]) * w).sum() / w.sum()
        l_dice = l_dice + (1 - dice[rows, cols]).mean()
        kmap = torch.zeros(C + 1, dtype=torch.long, device=dev)
        kmap[classes[cols]] = rows
        yv = yb.flatten()[valid.flatten()]
        lp = logp[b].flatten(1)[:, valid.flatten()]  # [K, Nv]
        l_id = l_id + F.nll_loss(lp.t(), kmap[yv])
    n_img = max(1, n_img)
    return (l_cls + l_dice + id_weight * l_id) / n_img


@torch.no_grad()
def evaluate(model, imgs, labs, args, batch=4):
    model.eval()
    dev = next(model.parameters()).device
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    H, W = imgs.shape[1:3]
    ph, pw = (H + 31) // 32 * 32, (W + 31) // 32 * 32
    for i in range(0, len(imgs), batch):
        x = torch.from_numpy(imgs[i:i + batch]).permute(0, 3, 1, 2).float() / 255.0
        x = normalize(x, args.mean, args.std)
        xp = torch.zeros(x.shape[0], 3, ph, pw)
        xp[:, :, :H, :W] = x
        s = predict_semantic(model, xp.to(dev), (H, W), (H, W))
        pred = s.argmax(1).cpu().numpy()
        gt = labs[i:i + batch]
        m = gt != IGNORE
        conf += np.bincount(gt[m].astype(np.int64) * NUM_CLASSES + pred[m], minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    iou = inter / np.maximum(union, 1)
    model.train()
    return float(iou.mean()), iou.tolist(), float(inter.sum() / max(1, conf.sum()))


def lr_at(it, total, args, frac=None):
    """Linear warm-up over --warmup iterations, then poly(0.9) decay; `frac` (0..1 of the time budget, --minutes)
    replaces the iteration fraction in the time-budgeted mode."""
    if it < args.warmup:
        return args.lr * (0.1 + 0.9 * it / args.warmup)
    p = min(1.0, (it - args.warmup) / max(1, total - args.warmup)) if frac is None else min(1.0, frac)
    return args.lr * ((1 - p) ** 0.9) + args.min_lr


class CropDataset(torch.utils.data.Dataset):
    """One augmented crop per index (make_batch on one image), for DataLoader workers (--workers)."""

    def __init__(self, imgs, labs, args):
        self.imgs, self.labs, self.args = imgs, labs, args

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        torch.set_num_threads(1)
        x, y = make_batch(self.imgs, self.labs, [i], self.args)
        return x[0], y[0]


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--backbone", default="ese_vovnet19b_slim_dw")
    ap.add_argument("--head", default="{}", help="JSON overrides of polymax_torch.DEFAULT_HEAD")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, nargs=2, default=[256, 352], metavar=("H", "W"))
    ap.add_argument("--scale", type=float, nargs=2, default=[0.5, 1.75])
    ap.add_argument("--jitter", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--min-lr", type=float, default=1e-5)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--aux", type=float, default=1.0, help="weight of each decoder layer's own read-out loss")
    ap.add_argument("--loss-stride", type=int, default=2, help="final-prediction loss on labels subsampled by this")
    ap.add_argument("--aux-stride", type=int, default=4, help="decoder-layer losses on labels subsampled by this")
    ap.add_argument("--sem-aux", type=float, default=0.0, help="weight of a training-only per-pixel CE head on "
                    "the OS4 pixel-decoder output (not exported)")
    ap.add_argument("--match", type=float, default=0.0, help="weight of the matched cluster losses (class CE, "
                    "mask dice, mask-ID CE; each present class = one segment) on every prediction")
    ap.add_argument("--class-weight", default="sqrt", choices=["none", "sqrt", "mfb"])
    ap.add_argument("--eval-every", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-iters", type=int, default=0, help="stop after this many iterations (timing runs)")
    # the borrowed-GPU mode (tools/device_train.sh): data packed by tools/pack_device_data.py, a wall-clock budget
    ap.add_argument("--data", default=CAMVID, help="CamVid root (train/, val/ optional, classes.json)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes building the crops")
    ap.add_argument("--minutes", type=float, default=0.0, help="train for this wall-clock budget; the LR decays "
                    "over the budget's fraction (instead of --epochs)")
    ap.add_argument("--init", default="", help="start from this checkpoint's model weights (fresh optimizer, "
                    "fresh schedule)")
    ap.add_argument("--run-dir", default="", help="run folder (default tools/runs/<name>)")
    ap.add_argument("--save-at", default="", help="with --minutes: also save model-only checkpoints at these "
                    "budget fractions, e.g. 0.5,0.75")
    args = ap.parse_args()
    args.mean, args.std = MEAN, STD
    torch.set_num_threads(args.threads)
    run = args.run_dir or os.path.join(ROOT, "tools", "runs", args.name)
    dev = torch.device(args.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    os.makedirs(run, exist_ok=True)
    logf = open(os.path.join(run, "log.txt"), "a")

    def log(msg):
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
        logf.write(line + "\n")
        logf.flush()
        print(line, flush=True)

    ck = None
    if args.resume and os.path.exists(os.path.join(run, "last.pt")):
        ck = torch.load(os.path.join(run, "last.pt"), map_location="cpu", weights_only=False)
        saved = ck["train_args"]
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in sys.argv[1:] if a.startswith("--")}
        for k, v in saved.items():
            if k not in given and k not in ("resume", "name"):
                setattr(args, k, v)
    random.seed(args.seed + (ck["epoch"] if ck else 0))
    torch.manual_seed(args.seed + (ck["epoch"] if ck else 0))
    model_args = dict(backbone=args.backbone, head=json.loads(args.head) if isinstance(args.head, str) else args.head,
                      depth=False)
    init = None
    if args.init.endswith(".safetensors"):  # a DenseKit model file (tools/export_polymax.py)
        m0 = model_from_densekit_file(args.init, args.backbone, sem_aux=args.sem_aux > 0)
        init = dict(model=m0.state_dict(), model_args=dict(backbone=args.backbone, head=m0.head_cfg, depth=False))
        model_args = init["model_args"]
    elif args.init:
        init = torch.load(args.init, map_location="cpu", weights_only=False)
        model_args = init["model_args"]
    if ck:
        model_args = ck["model_args"]  # the architecture of a resumed run never changes
    model = PolyMaX(model_args["backbone"], model_args["head"], depth=False, sem_aux=args.sem_aux > 0)
    model_args["head"] = model.head_cfg
    if init is not None and not ck:
        missing, unexpected = model.load_state_dict(init["model"], strict=False)
        bad = [k for k in missing if not k.startswith("sem_aux.")] + [k for k in unexpected if not k.startswith("sem_aux.")]
        if bad:
            raise SystemExit(f"--init checkpoint does not fit: {bad[:5]}")
    model.to(dev)
    decay, no_decay, aux_params = [], [], []
    for n, p in model.named_parameters():
        if n.startswith("sem_aux."):
            aux_params.append(p)
        else:
            (no_decay if p.ndim <= 1 or "rpe" in n or "_cluster_centers" in n else decay).append(p)

    def make_opt():
        return torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                                 lr=args.lr, betas=(0.9, 0.999))
    opt = make_opt()
    if aux_params:
        opt.add_param_group({"params": aux_params, "weight_decay": args.wd})
    start_epoch, it, best, history = 0, 0, -1.0, []
    if ck:
        missing, unexpected = model.load_state_dict(ck["model"], strict=False)
        if [k for k in missing if not k.startswith("sem_aux.")] or [k for k in unexpected if not k.startswith("sem_aux.")]:
            raise SystemExit(f"checkpoint does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if len(ck["optimizer"]["param_groups"]) == len(opt.param_groups):
            opt.load_state_dict(ck["optimizer"])
        else:  # the auxiliary semantic head was added (or dropped) on resume
            opt = make_opt()
            opt.load_state_dict({"state": ck["optimizer"]["state"], "param_groups": ck["optimizer"]["param_groups"][:2]})
            if aux_params:
                opt.add_param_group({"params": aux_params, "weight_decay": args.wd, "lr": args.lr})
            log(f"optimizer: {len(ck['optimizer']['param_groups'])} saved groups, now {len(opt.param_groups)}")
        start_epoch, it, best, history = ck["epoch"], ck["iters"], ck.get("best", -1.0), ck.get("history", [])
        log(f"resumed from epoch {start_epoch} (iter {it}, best val mIoU {best:.4f})")
    elif init is not None:
        log(f"initialised from {args.init} (epoch {init.get('epoch')}, val mIoU {init.get('val_miou')})")
    with open(os.path.join(run, "args.json"), "w") as f:
        json.dump(vars(args), f, indent=1)
    n_par = sum(p.numel() for p in model.parameters())
    log(f"args {json.dumps(vars(args))}")
    log(f"model {args.backbone} head {json.dumps(model.head_cfg)} params {n_par}")
    _, timgs, tlabs = load_split("train", args.data)
    has_val = os.path.isdir(os.path.join(args.data, "val"))
    vimgs, vlabs = load_split("val", args.data)[1:] if has_val else (None, None)
    log(f"data: train {len(timgs)}, val {len(vimgs) if has_val else 0} from {args.data}")
    weight = class_weights(args.class_weight, args.data)
    if weight is not None:
        weight = weight.to(dev)
    if weight is not None:
        log("class weights " + " ".join(f"{w:.2f}" for w in weight.tolist()))
    per_epoch = len(timgs) // args.batch
    total = per_epoch * args.epochs
    t_start = time.time()
    budget = args.minutes * 60.0
    save_at = sorted(float(f) for f in args.save_at.split(",") if f.strip())
    if budget > 0:
        start_epoch, it, total = 0, 0, 1 << 30
        args.epochs = 1 << 20

    def batches(epoch):
        perm = np.random.RandomState(args.seed * 1000 + epoch).permutation(len(timgs))
        if args.workers > 0:
            dl = torch.utils.data.DataLoader(CropDataset(timgs, tlabs, args), batch_size=args.batch,
                                             sampler=perm.tolist(), num_workers=args.workers, drop_last=True,
                                             persistent_workers=False, pin_memory=dev.type == "cuda")
            yield from dl
            return
        for b in range(per_epoch):
            yield make_batch(timgs, tlabs, perm[b * args.batch:(b + 1) * args.batch], args)

    def save_model_only(path, epoch, miou=None):
        save_atomic(dict(model={k: v.detach().cpu() for k, v in model.state_dict().items()}, epoch=epoch,
                         iters=it, model_args=model_args, train_args=vars(args), val_miou=miou,
                         history=history), path)

    model.train()
    done = False
    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        run_loss, run_main, nb = 0.0, 0.0, 0
        for x, y in batches(epoch):
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            frac = (time.time() - t_start) / budget if budget > 0 else None
            if frac is not None:
                while save_at and frac >= save_at[0]:
                    save_model_only(os.path.join(run, f"model_{int(save_at[0] * 100):03d}.pt"), epoch)
                    log(f"saved model_{int(save_at[0] * 100):03d}.pt at epoch {epoch}")
                    save_at.pop(0)
                if frac >= 1.0:
                    done = True
                    break
            for g in opt.param_groups:
                g["lr"] = lr_at(it, total, args, frac)
            o = model(x)
            main = sem_nll(o["mask_logits"], o["class_logits"], y, weight, args.loss_stride)
            loss = main
            if args.match > 0:
                loss = loss + args.match * match_loss(o["mask_logits"], o["class_logits"], y, 4)
                for ml, cl, _ in o["aux"]:
                    loss = loss + args.match * match_loss(ml, cl, y, 4)
            if "sem_aux" in o:
                st = args.aux_stride
                ys = y[:, st // 2::st, st // 2::st]
                logits = F.interpolate(o["sem_aux"], size=tuple(ys.shape[-2:]), mode="bilinear", align_corners=False)
                loss = loss + args.sem_aux * F.cross_entropy(logits, ys, weight=weight, ignore_index=IGNORE)
            if args.aux > 0:
                for ml, cl, _ in o["aux"]:
                    loss = loss + args.aux * sem_nll(ml, cl, y, weight, args.aux_stride)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            it += 1
            nb += 1
            run_loss += loss.item()
            run_main += main.item()
            if it % 10 == 0:
                log(f"ep {epoch + 1} it {it} loss {run_loss / nb:.4f} main {run_main / nb:.4f} lr {opt.param_groups[0]['lr']:.2e} "
                    f"{(time.time() - t0) / nb:.2f} s/it")
            if args.max_iters and it >= args.max_iters:
                log("max iters reached")
                if budget > 0:
                    save_model_only(os.path.join(run, "model_final.pt"), epoch)
                return
        if done:
            save_model_only(os.path.join(run, "model_final.pt"), epoch)
            log(f"time budget reached after {epoch} epochs, {it} iterations: model_final.pt")
            break
        dt = time.time() - t0
        rec = dict(epoch=epoch + 1, iters=it, loss=run_loss / max(1, nb), main=run_main / max(1, nb), sec=dt)
        msg = f"epoch {epoch + 1}/{args.epochs} done: loss {rec['loss']:.4f} main {rec['main']:.4f} {dt:.0f} s/epoch"
        miou = None
        if has_val and ((epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs):
            te = time.time()
            miou, ious, acc = evaluate(model, vimgs, vlabs, args)
            rec.update(val_miou=miou, val_iou=ious, val_acc=acc)
            msg += f" | val mIoU {miou * 100:.2f} acc {acc * 100:.2f} ({time.time() - te:.0f} s) IoU " + \
                " ".join(f"{v * 100:.1f}" for v in ious)
        history.append(rec)
        state = dict(model=model.state_dict(), optimizer=opt.state_dict(), epoch=epoch + 1, iters=it,
                     best=max(best, miou if miou is not None else -1), history=history, model_args=model_args,
                     train_args=vars(args), val_miou=miou)
        if miou is not None and miou > best:
            best = miou
            state["best"] = best
            save_atomic(state, os.path.join(run, "best.pt"))
            msg += " (best)"
        if budget <= 0:
            save_atomic(state, os.path.join(run, "last.pt"))
        log(msg)
    log("training finished")


if __name__ == "__main__":
    main()
