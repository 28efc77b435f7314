"""BiFormer part of tools/convert.py: official checkpoints (rayleizhu/BiFormer `models/biformer.py`
state dicts, classification; or mmseg dense checkpoints with the backbone under `backbone.`) into a
DenseKit model file (`densekit.architecture` = `biformer`), tensor names unchanged.

Config: inferred from the shapes (depth, embed_dim, qk_dims, MLP ratios, LePE kernel, classes), the
variant from the keys (`head.weight` -> classification, n_win 7; `extra_norms.*` -> dense, n_win 8 with
auto-padding; spec sections 4-5), then overridden by `--config` keys (`BiFormerConfig(json:)` names:
`variant`, `n_win`, `auto_pad`, `topks`, `head_dim`, ...). A classification checkpoint converted with
`{"variant": "dense"}` loses `norm.*`/`head.*` and gets `extra_norms` at their init values (weight 1,
bias 0), as `BiFormer_mm` does when it loads an ImageNet checkpoint with strict=False.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Dict, Mapping, Tuple

ARCHITECTURE = "biformer"
_STAGE_BLOCK = re.compile(r"^stages\.(\d+)\.(\d+)\.")


class BiFormerConvertError(Exception):
    """A checkpoint that does not fit: one line for the user."""


def looks_like_biformer(keys) -> bool:
    """True for BiFormer key names (`downsample_layers.0.0.weight` under any prefix)."""
    return any(k.endswith("downsample_layers.0.0.weight") for k in keys)


def find_prefix(keys) -> str:
    """The text before `downsample_layers.0.0.weight` (e.g. `backbone.`, `module.`, '')."""
    for k in keys:
        if k.endswith("downsample_layers.0.0.weight"):
            return k[: -len("downsample_layers.0.0.weight")]
    return ""


def infer_config(sd: Mapping) -> dict:
    def shape(k: str) -> Tuple[int, ...]:
        if k not in sd:
            raise BiFormerConvertError(f"missing tensor '{k}' (not an official BiFormer state dict?)")
        return tuple(sd[k].shape)

    embed = [shape("downsample_layers.0.3.weight")[0]] + [shape(f"downsample_layers.{i}.0.weight")[0] for i in range(1, 4)]
    depth = [0, 0, 0, 0]
    for k in sd:
        m = _STAGE_BLOCK.match(k)
        if m:
            i, j = int(m.group(1)), int(m.group(2))
            if i > 3:
                raise BiFormerConvertError(f"unexpected stage index in '{k}' (BiFormer has 4 stages)")
            depth[i] = max(depth[i], j + 1)
    if min(depth) < 1:
        raise BiFormerConvertError(f"every stage needs at least one block, found depths {depth}")
    qk, ratios = [], []
    topks = [1, 4, 16, -2]
    for i in range(4):
        p = f"stages.{i}.0."
        if p + "attn.qkv.qkv.weight" in sd:
            w = shape(p + "attn.qkv.qkv.weight")[0]
            qk.append((w - embed[i]) // 2)
        else:
            qk.append(embed[i])
            topks[i] = -2
        ratios.append(shape(p + "mlp.0.weight")[0] / embed[i])
    side = shape("stages.0.0.attn.lepe.weight")[-1]
    cfg: Dict = {"depth": depth, "embed_dim": embed, "qk_dims": qk, "mlp_ratios": ratios, "side_dwconv": side,
                 "topks": topks}
    if "head.weight" in sd:
        cfg.update({"variant": "cls", "num_classes": int(shape("head.weight")[0]), "n_win": 7, "auto_pad": False})
    else:
        cfg.update({"variant": "dense", "num_classes": 0, "n_win": 8, "auto_pad": True})
    return cfg


def convert_state_dict(sd: Mapping, cfg_arg: Mapping) -> Tuple[dict, "OrderedDict"]:
    """Returns (config, tensors) for a stripped official state dict."""
    import torch

    sd = OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    cfg = infer_config(sd)
    cfg.update(cfg_arg)
    if cfg.get("variant") == "dense":
        cfg.setdefault("n_win", 8)
        dropped = [k for k in sd if k.startswith("head.") or k.startswith("norm.")]
        for k in dropped:
            del sd[k]
        cfg["num_classes"] = 0
        for i, c in enumerate(cfg["embed_dim"]):
            sd.setdefault(f"extra_norms.{i}.weight", torch.ones(c))
            sd.setdefault(f"extra_norms.{i}.bias", torch.zeros(c))
    else:
        for k in [k for k in sd if k.startswith("extra_norms.")]:
            del sd[k]
    tensors = OrderedDict((k, v.detach().to(torch.float32).contiguous().clone()) for k, v in sd.items())
    return cfg, tensors
