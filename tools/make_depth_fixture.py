#!/usr/bin/env python3
"""Writes the PyTorch reference depth of the SHIPPED depth model on a few depth-eval frames, for the Swift-vs-PyTorch
test (issue 9). No image data is written: the test reads the frames from ../shared/data/depth-eval/rgb/.

    tools/.venv/bin/python tools/make_depth_fixture.py --checkpoint tools/runs/device/depth/model_final.pt \
        --model Models/depth_indoor_vovnet19_slim.safetensors \
        --out Tests/Fixtures/Depth/depth_reference.safetensors

The PyTorch side checks that the model file holds exactly the checkpoint's tensors, decodes each JPEG with PIL
(RGB, 8 bit) and runs `densekit depth`'s path: scale the image (bilinear, half-pixel, no antialiasing) into the
model's fixed input (letterbox, aspect kept, padding bottom/right with 0 after normalising), backbone + head, crop
the stride-4 mask logits to the content region, resize them (bilinear, half-pixel) to the image size, softmax over
clusters, mix the per-cluster depths (spec 6.2). Tensors: `depth.<name>` F32 [H/4, W/4], the depth in metres at
rows 4i+1, columns 4j+1. Metadata: model_sha256, model_file, images (name, file, sha256, height, width), source.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from polymax_torch import depth_map  # noqa: E402
from export_polymax import CAMVID_MEAN, CAMVID_STD, check_model_file, load_checkpoint_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL = os.path.join(ROOT, "..", "shared", "data", "depth-eval")
DEFAULT_IMAGES = ["3dmatch_cubicles_000935", "tum_office_0"]
STEP, OFFSET = 4, 1


@torch.no_grad()
def predict_depth(model, img: np.ndarray, input_hw, mean, std) -> torch.Tensor:
    h, w = img.shape[:2]
    ih, iw = input_hw
    s = min(ih / h, iw / w)
    rh, rw = min(ih, max(1, round(h * s))), min(iw, max(1, round(w * s)))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    if (rh, rw) != (h, w):
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(mean)[None, :, None, None]) / torch.tensor(std)[None, :, None, None]
    xp = torch.zeros(1, 3, ih, iw)
    xp[..., :rh, :rw] = x
    o = model(xp)
    ml = o["mask_logits"]
    h4, w4 = ml.shape[-2:]
    ch, cw = min(h4, max(1, round(rh * h4 / ih))), min(w4, max(1, round(rw * w4 / iw)))
    hc = model.head_cfg
    return depth_map(ml[..., :ch, :cw], o["cluster_embeddings"], model.readout, hc["d_min"], hc["d_max"], (h, w))[0, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model", required=True, help="the shipped model file the fixture belongs to")
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "Fixtures", "Depth", "depth_reference.safetensors"))
    ap.add_argument("--images", nargs="*", default=DEFAULT_IMAGES, help="depth-eval frame ids")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, ck = load_checkpoint_model(args.checkpoint)
    model_sha = check_model_file(model, args.model)
    from polymax_torch import read_safetensors
    cfg = json.loads(read_safetensors(args.model)[1]["densekit.config"])
    input_hw = cfg["preprocess"]["input_size"]
    out, info = {}, []
    for name in args.images:
        p = os.path.join(EVAL, "rgb", name + ".jpg")
        with open(p, "rb") as fh:
            img_sha = hashlib.sha256(fh.read()).hexdigest()
        img = np.array(Image.open(p).convert("RGB"))
        d = predict_depth(model, img, input_hw, CAMVID_MEAN, CAMVID_STD)
        out[f"depth.{name}"] = d[OFFSET::STEP, OFFSET::STEP].contiguous().float()
        info.append(dict(name=name, file=f"rgb/{name}.jpg", sha256=img_sha, height=img.shape[0], width=img.shape[1]))
        print(f"{name}: depth {float(d.min()):.3f}..{float(d.max()):.3f} m, median {float(d.median()):.3f}")
    meta = {
        "format": "densekit depth reference v1",
        "model_sha256": model_sha,
        "model_file": os.path.basename(args.model),
        "images": json.dumps(info),
        "subsample": json.dumps({"step": STEP, "offset": OFFSET}),
        "decoder": "PIL " + Image.__version__ + " (libjpeg-turbo), RGB",
        "torch": torch.__version__,
        "source": "predictions on ../shared/data/depth-eval frames (3DMatch sample, TUM RGB-D); no image data is stored.",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_file(out, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
