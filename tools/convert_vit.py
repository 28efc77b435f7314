"""ViT part of tools/convert.py: timm `VisionTransformer` weights (`--timm vit_small_patch16_224`, random init
with a seed, or a checkpoint with timm names) into a DenseKit model file (`densekit.architecture` = `vit`),
tensor names unchanged (spec `token-clustering.md` section 4).

Config (`densekit.config`, `ViTConfig(json:)` keys): `patch_size`, `embed_dim`, `depth`, `num_heads`,
`mlp_ratio`, `ln_eps`, `img_size`, `pos_embed_grid`; with token clustering also `alpha` (blocks before the
clustering; reference `cluster_location` = alpha - 1), `beta` (reconstruction after block beta; beta = depth:
after the final norm), `cluster_grid` [h, w], `window`, `iters`, `temperature`, `recon_k`,
`recon_temperature`. `--img-size HxW` resamples `pos_embed` to that grid with timm's own
`resample_abs_pos_embed` (antialiased bicubic, what timm does for another img_size or `dynamic_img_size`),
so the file runs at that size with no per-run resampling; without it the checkpoint's grid is kept
(DenseKit then resamples at run time, the same rule). `--token-clustering` adds the issue-6 benchmark
settings (alpha 4, beta = depth, grid / 2, window 5, 5 iterations, t 0.01, k 20, t_recon 0.03); `--config`
keys override everything.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence, Tuple

ARCHITECTURE = "vit"
UNSUPPORTED = {"reg_token": "register tokens", "fc_norm.weight": "fc_norm (global-average-pool heads)",
               "norm_pre.weight": "a pre-norm before the blocks", "blocks.0.ls1.gamma": "layer scale",
               "blocks.0.attn.q_norm.weight": "qk-norm", "attn_pool.latent": "attention pooling"}


class ViTConvertError(Exception):
    """A checkpoint or option that does not fit: one line for the user."""


def is_vit_name(name: Optional[str]) -> bool:
    return bool(name) and name.startswith("vit_")


def looks_like_vit(keys) -> bool:
    """True for timm ViT names (`patch_embed.proj.weight`, `blocks.0.attn.qkv.weight`, `cls_token`)."""
    ks = set(keys)
    return any(k.endswith("patch_embed.proj.weight") for k in ks) and any(k.endswith("blocks.0.attn.qkv.weight") for k in ks)


def find_prefix(keys) -> str:
    for k in keys:
        if k.endswith("patch_embed.proj.weight"):
            return k[: -len("patch_embed.proj.weight")]
    return ""


def benchmark_cluster_config(depth: int, grid: Tuple[int, int]) -> dict:
    """Issue 6 / ERRATA benchmark settings: clustering after block 4 to half the token grid, window 5,
    5 iterations, t 0.01; reconstruction after the final norm, k 20, t 0.03."""
    return {"alpha": 4, "beta": depth, "cluster_grid": [max(1, grid[0] // 2), max(1, grid[1] // 2)], "window": 5,
            "iters": 5, "temperature": 0.01, "recon_k": 20, "recon_temperature": 0.03}


def random_timm_state_dict(name: str, seed: int, random_norms: bool) -> Tuple["OrderedDict", int]:
    """timm `name` at its default img_size, pretrained=False, torch.manual_seed(seed). Returns the state dict
    and the number of heads. `random_norms`: LayerNorm affines and linear biases randomised (timm leaves them at
    1 / 0), so outputs exercise every parameter."""
    import torch
    import timm

    torch.manual_seed(seed)
    try:
        m = timm.create_model(name, pretrained=False, num_classes=0)
    except Exception as e:  # unknown name
        raise ViTConvertError(f"timm cannot build '{name}': {e}") from None
    if random_norms:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, torch.nn.LayerNorm):
                    mod.weight.copy_(1 + 0.1 * torch.randn(mod.weight.shape, generator=g))
                    mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
                elif isinstance(mod, torch.nn.Linear) and mod.bias is not None:
                    mod.bias.copy_(0.02 * torch.randn(mod.bias.shape, generator=g))
    heads = m.blocks[0].attn.num_heads
    return OrderedDict(m.state_dict()), heads


def infer_config(sd: Mapping, num_heads: Optional[int]) -> Tuple[dict, Optional[str]]:
    """Config from the tensor shapes. Returns (config, note or None)."""
    for k, what in UNSUPPORTED.items():
        if k in sd:
            raise ViTConvertError(f"'{k}' found: {what} is not supported by DenseKit's ViT")
    for k in ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight"):
        if k not in sd:
            raise ViTConvertError(f"missing tensor '{k}' (not a timm VisionTransformer with a class token?)")
    e = int(sd["cls_token"].shape[-1])
    w = sd["patch_embed.proj.weight"]
    if w.shape[-1] != w.shape[-2] or w.shape[1] != 3:
        raise ViTConvertError(f"patch_embed.proj.weight {list(w.shape)}: need [C, 3, p, p]")
    ps = int(w.shape[-1])
    depth = 0
    while f"blocks.{depth}.attn.qkv.weight" in sd:
        depth += 1
    if depth == 0:
        raise ViTConvertError("no blocks.N.attn.qkv.weight tensors")
    if "blocks.0.attn.qkv.bias" not in sd:
        raise ViTConvertError("blocks.0.attn.qkv.bias missing: only qkv_bias = true is supported")
    hidden = int(sd["blocks.0.mlp.fc1.weight"].shape[0])
    n = int(sd["pos_embed"].shape[1]) - 1
    g = int(round(math.sqrt(n)))
    if g * g != n:
        raise ViTConvertError(f"pos_embed holds {n + 1} rows: not 1 + a square grid; give pos_embed_grid in --config")
    note = None
    if num_heads is None:
        num_heads = max(1, e // 64)
        note = f"num_heads={num_heads} assumed (embed_dim / 64, timm's ViTs); override with --config"
    cfg = {"patch_size": ps, "embed_dim": e, "depth": depth, "num_heads": num_heads, "mlp_ratio": hidden / e,
           "ln_eps": 1e-6, "img_size": [g * ps, g * ps], "pos_embed_grid": [g, g]}
    return cfg, note


def parse_hw(text: str) -> Tuple[int, int]:
    parts = text.lower().split("x")
    try:
        v = [int(p) for p in parts]
    except ValueError:
        raise ViTConvertError(f"--img-size must be HxW or N, got '{text}'") from None
    if len(v) == 1:
        v = v * 2
    if len(v) != 2 or min(v) < 1:
        raise ViTConvertError(f"--img-size must be HxW or N, got '{text}'")
    return v[0], v[1]


def convert_state_dict(sd: Mapping, num_heads: Optional[int], cfg_arg: Mapping, img_size: Optional[str],
                       token_clustering: bool) -> Tuple[dict, "OrderedDict", Sequence[str]]:
    """Returns (config, tensors, notes) for a stripped timm ViT state dict."""
    import torch
    from timm.layers import resample_abs_pos_embed

    notes = []
    sd = OrderedDict(sd)
    head = [k for k in sd if k.startswith("head.") or k.startswith("head_dist.")]
    for k in head:
        del sd[k]
    if head:
        notes.append(f"dropped the classifier ({', '.join(head)})")
    cfg, note = infer_config(sd, cfg_arg.get("num_heads", num_heads))
    if note:
        notes.append(note)
    ps = cfg["patch_size"]
    if img_size:
        h, w = parse_hw(img_size)
        if h % ps or w % ps:
            raise ViTConvertError(f"--img-size {h}x{w} must be a multiple of the patch size {ps}")
        g0 = cfg["pos_embed_grid"]
        g1 = [h // ps, w // ps]
        if g1 != g0:
            with torch.no_grad():
                sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"].float(), new_size=g1, old_size=g0,
                                                         num_prefix_tokens=1)
            notes.append(f"pos_embed resampled {g0[0]}x{g0[1]} -> {g1[0]}x{g1[1]} (timm resample_abs_pos_embed)")
        cfg["img_size"], cfg["pos_embed_grid"] = [h, w], g1
    if token_clustering:
        g = (cfg["img_size"][0] // ps, cfg["img_size"][1] // ps)
        cfg.update(benchmark_cluster_config(cfg["depth"], g))
    cfg.update({k: v for k, v in cfg_arg.items() if k != "preset"})
    expected = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias"}
    for i in range(cfg["depth"]):
        for part in ("norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                     "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                     "mlp.fc2.weight", "mlp.fc2.bias"):
            expected.add(f"blocks.{i}.{part}")
    missing = sorted(expected - set(sd))
    extra = sorted(set(sd) - expected)
    if missing:
        raise ViTConvertError(f"missing tensors: {', '.join(missing[:10])}")
    if extra:
        raise ViTConvertError(f"unexpected tensors (not supported by DenseKit's ViT): {', '.join(extra[:10])}")
    tensors = OrderedDict((k, sd[k].detach().to(torch.float32).contiguous().clone()) for k in sorted(expected))
    return cfg, tensors, notes
