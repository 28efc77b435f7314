#!/usr/bin/env python3
"""Pack the training data for a run on the borrowed GPU machine into work-data/ (git-ignored).

    tools/.venv/bin/python tools/pack_device_data.py [--out work-data]

The device run (`run` tool, `carry: ["work-data"]`) cannot read ../shared and may carry 64 MiB in all, so:
- CamVid train (367 images + labels, research use) is copied byte for byte;
- depth-train / depth-eval (7-Scenes, 3DMatch, TUM, SUN RGB-D frames, see ../shared/data/README.md) are halved to
  320x240 RGB, the 2x2 mean (= DenseKit's bilinear half-pixel resize at exactly half size) re-encoded as JPEG
  quality 90, and 160x120 depth, the valid (non-zero) median of each 4x4 block, in one uint16 npz (mm).
Nothing here is committed: a script can make it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")


def half_rgb(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    m = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
    return np.clip(np.floor(m + 0.5), 0, 255).astype(np.uint8)


def quarter_depth(d: np.ndarray) -> np.ndarray:
    h, w = d.shape
    blocks = d.reshape(h // 4, 4, w // 4, 4).transpose(0, 2, 1, 3).reshape(h // 4, w // 4, 16).astype(np.float64)
    blocks[blocks == 0] = np.nan
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = np.nanmedian(blocks, -1)
    m = np.nan_to_num(m, nan=0.0)
    return np.clip(np.floor(m + 0.5), 0, 65535).astype(np.uint16)


def pack_depth(split: str, out: str):
    src = os.path.join(DATA, split)
    with open(os.path.join(src, "manifest.json")) as f:
        man = json.load(f)
    dst = os.path.join(out, split)
    os.makedirs(os.path.join(dst, "rgb"), exist_ok=True)
    ids, depths = [], []
    for fr in man["frames"]:
        rgb = np.array(Image.open(os.path.join(src, fr["rgb"])).convert("RGB"))
        d = np.array(Image.open(os.path.join(src, fr["depth"])))
        assert d.dtype in (np.uint16, np.int32, np.uint32, np.int64), d.dtype
        Image.fromarray(half_rgb(rgb)).save(os.path.join(dst, "rgb", fr["id"] + ".jpg"), quality=90)
        depths.append(quarter_depth(d.astype(np.int64)))
        ids.append(fr["id"])
    np.savez_compressed(os.path.join(dst, "depth_mm.npz"), ids=np.array(ids), depth=np.stack(depths))
    print(split, len(ids), "frames")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "work-data"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cam = os.path.join(args.out, "camvid")
    for sub in ("images", "labels"):
        d = os.path.join(cam, "train", sub)
        if os.path.exists(d):
            shutil.rmtree(d)
        shutil.copytree(os.path.join(DATA, "camvid", "train", sub), d)
    shutil.copy(os.path.join(DATA, "camvid", "classes.json"), os.path.join(cam, "classes.json"))
    pack_depth("depth-train", args.out)
    pack_depth("depth-eval", args.out)


if __name__ == "__main__":
    main()
