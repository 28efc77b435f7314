"""PyTorch side of DenseKit's ViT model files (`densekit.architecture` = `vit`): a timm `VisionTransformer`
carrying the file's tensors, optionally with the token clustering / reconstruction layers of
`../shared/specs/token-clustering.md` (Liang et al., NeurIPS 2022) written in the reference's dense masked
form (spec sections 2-4; the DenseKit layers use the local-window form of section 6 and must agree).

Used by tools/bench_peers.py (PyTorch eager and ONNX Runtime peers) and tools/convert_vit.py.

    model = DenseViT(cfg, tensors)      # cfg: the densekit.config JSON, tensors: timm state_dict names
    y, cls = model(x)                   # y [B, C, H/16, W/16], cls [B, C]

Nothing here is timed by itself; the modules have fixed input sizes (the config's img_size) so that they
export to ONNX with constant masks.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def home_cells(n: int, cells: int) -> torch.Tensor:
    """Spec 2.2: each token's home cell per axis, PyTorch's legacy `nearest` rule (float32 scale)."""
    idx = torch.arange(cells, dtype=torch.float32).reshape(1, 1, cells)
    return F.interpolate(idx, size=n, mode="nearest").reshape(n).long()


class TokenClusteringRef(nn.Module):
    """Spec section 2 in the reference's dense form: adaptive average pooling to h x w, then `iters`
    soft k-means steps over the candidate centres of each token (lambda x lambda window around its home
    cell, non-candidates get +1e16 on the squared distance), centres = affinity-weighted means
    (denominator clamped at 1e-16). Input [B, N, C] on an H x W grid; output centres [B, h*w, C]."""

    def __init__(self, grid, cells, window: int, iters: int, temperature: float):
        super().__init__()
        (self.H, self.W), (self.h, self.w) = grid, cells
        self.iters, self.t = iters, float(temperature)
        r = window // 2
        hy = home_cells(self.H, self.h).repeat_interleave(self.W)          # [N]
        hx = home_cells(self.W, self.w).repeat(self.H)                      # [N]
        cy = torch.arange(self.h).repeat_interleave(self.w)                 # [M]
        cx = torch.arange(self.w).repeat(self.h)
        cand = ((cy[:, None] - hy[None, :]).abs() <= r) & ((cx[:, None] - hx[None, :]).abs() <= r)   # [M, N]
        self.register_buffer("mask_add", (~cand).to(torch.float32) * 1e16, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        s = F.adaptive_avg_pool2d(x.transpose(1, 2).reshape(b, c, self.H, self.W), (self.h, self.w))
        s = s.flatten(2).transpose(1, 2)                                    # [B, M, C]
        xx = (x * x).sum(-1).unsqueeze(1)                                   # [B, 1, N]
        for _ in range(self.iters):
            d = xx + (s * s).sum(-1).unsqueeze(2) - 2 * torch.bmm(s, x.transpose(1, 2))   # [B, M, N]
            a = F.softmax(-self.t * (d + self.mask_add), dim=1)            # over centres, per token
            s = torch.bmm(a, x) / a.sum(-1, keepdim=True).clamp(min=1e-16)
        return s


class TokenReconstructionRef(nn.Module):
    """Spec section 3: W = exp(-t ||f_n - s_m||^2) over all centres, keep entries >= the k-th largest
    (k = -1: all), divide each row by its L2 norm (clamped at 1e-12), y = W x."""

    def __init__(self, k: int, temperature: float):
        super().__init__()
        self.k, self.t = int(k), float(temperature)

    def forward(self, feat: torch.Tensor, centres: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        d = (feat * feat).sum(-1).unsqueeze(2) + (centres * centres).sum(-1).unsqueeze(1) \
            - 2 * torch.bmm(feat, centres.transpose(1, 2))                  # [B, N, M]
        w = torch.exp(-self.t * d)
        if self.k >= 1:
            tau = torch.topk(w, self.k, dim=-1).values[..., -1:]
            w = w * (w >= tau).to(w.dtype)
        w = w / w.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return torch.bmm(w, x)


def timm_vit(cfg: Mapping, tensors: Optional[Mapping] = None):
    """A timm VisionTransformer for a DenseKit ViT config (class token, qkv bias, no head), at the config's
    img_size, carrying `tensors` (strict) when given."""
    from timm.models.vision_transformer import VisionTransformer

    img = cfg["img_size"]
    ps = cfg.get("patch_size", 16)
    pos = cfg.get("pos_embed_grid", [img[0] // ps, img[1] // ps])
    if list(pos) != [img[0] // ps, img[1] // ps]:
        raise ValueError(f"pos_embed_grid {pos} differs from the input grid {[img[0] // ps, img[1] // ps]}: "
                         "convert with --img-size to resample it first")
    m = VisionTransformer(img_size=tuple(img), patch_size=ps, embed_dim=cfg["embed_dim"], depth=cfg["depth"],
                          num_heads=cfg["num_heads"], mlp_ratio=cfg.get("mlp_ratio", 4.0), qkv_bias=True,
                          class_token=True, num_classes=0, global_pool="token")
    if tensors is not None:
        m.load_state_dict({k: v for k, v in tensors.items()}, strict=True)
    return m.eval()


class DenseViT(nn.Module):
    """timm ViT with DenseKit's dense outputs (`y` [B, C, gh, gw], `cls` [B, C]) and, when the config has
    `alpha`, clustering after block alpha and reconstruction after block beta (spec section 4: with
    beta = depth the final LayerNorm comes first and the reconstruction last)."""

    def __init__(self, cfg: Mapping, tensors: Optional[Mapping] = None):
        super().__init__()
        self.vit = timm_vit(cfg, tensors)
        ps = cfg.get("patch_size", 16)
        self.gh, self.gw = cfg["img_size"][0] // ps, cfg["img_size"][1] // ps
        self.depth = cfg["depth"]
        self.alpha = cfg.get("alpha", cfg["cluster_location"] + 1 if "cluster_location" in cfg else None)
        if self.alpha is not None:
            self.beta = cfg.get("beta", cfg.get("recon_location", self.depth - 1) + 1)
            t = cfg["temperature"]
            self.cluster = TokenClusteringRef((self.gh, self.gw), tuple(cfg["cluster_grid"]), cfg.get("window", 5),
                                              cfg.get("iters", 5), t)
            self.recon = TokenReconstructionRef(cfg.get("recon_k", 20), cfg.get("recon_temperature", t))

    def forward(self, img: torch.Tensor):
        v = self.vit
        x = v.patch_embed(img)
        x = v._pos_embed(x)
        x = v.norm_pre(x)
        if self.alpha is None:
            x = v.norm(v.blocks(x))
        else:
            for i in range(self.alpha):
                x = v.blocks[i](x)
            feat = x[:, 1:]
            s = self.cluster(feat)
            x = torch.cat([x[:, :1], s], dim=1)
            for i in range(self.alpha, self.beta):
                x = v.blocks[i](x)
            if self.beta == self.depth:
                x = v.norm(x)
            x = torch.cat([x[:, :1], self.recon(feat, s, x[:, 1:])], dim=1)
            if self.beta < self.depth:
                for i in range(self.beta, self.depth):
                    x = v.blocks[i](x)
                x = v.norm(x)
        b, _, c = x.shape
        y = x[:, 1:].transpose(1, 2).reshape(b, c, self.gh, self.gw)
        return y, x[:, 0]
