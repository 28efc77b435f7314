"""Procedural RGB-D frames of box-shaped rooms with boxes in them, for the depth training (tools/train_depth.py).

The only real depth data (depth-train) is one kitchen; these frames add the geometry of other rooms (floor, walls,
ceiling, furniture-sized boxes; camera height, pitch, roll, yaw and focal length varied) so the model learns
perspective cues that are not tied to that kitchen. Surfaces are textured with random crops of real photos (the
training images themselves), shaded by the angle to the ray and the distance. Exact z-depth; no dependencies
beyond torch; everything on the given device.
"""
from __future__ import annotations

import math

import torch


def _u(g, n, lo, hi, dev):
    return lo + (hi - lo) * torch.rand(n, generator=g, device=dev)


def _rot(pitch, yaw, roll):
    """Rotation matrices [B, 3, 3] (camera -> world), y down, z forward."""
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cr, sr = torch.cos(roll), torch.sin(roll)
    o, z = torch.ones_like(cp), torch.zeros_like(cp)
    rx = torch.stack([o, z, z, z, cp, -sp, z, sp, cp], -1).view(-1, 3, 3)
    ry = torch.stack([cy, z, sy, z, o, z, -sy, z, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cr, -sr, z, sr, cr, z, z, z, o], -1).view(-1, 3, 3)
    return ry @ rx @ rz


def make_texture_bank(images: torch.Tensor, count: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Random crops [count, 3, size, size] in 0..1 from images [N, 3, H, W] uint8 (same device)."""
    n, _, h, w = images.shape
    dev = images.device
    out = []
    for _ in range(count):
        i = int(torch.randint(n, (1,), generator=g, device=dev))
        s = int(torch.randint(size // 2, min(h, w) + 1, (1,), generator=g, device=dev))
        y = int(torch.randint(0, h - s + 1, (1,), generator=g, device=dev))
        x = int(torch.randint(0, w - s + 1, (1,), generator=g, device=dev))
        c = images[i:i + 1, :, y:y + s, x:x + s].float() / 255.0
        out.append(torch.nn.functional.interpolate(c, size=(size, size), mode="bilinear", align_corners=False,
                                                   antialias=True))
    return torch.cat(out)


def render(batch: int, height: int, width: int, bank: torch.Tensor, g: torch.Generator, max_boxes: int = 6):
    """rgb [B, 3, H, W] in 0..1 and z-depth [B, 1, H, W] in metres (all valid)."""
    dev = bank.device
    B, H, W = batch, height, width
    f = width * _u(g, B, 0.75, 1.25, dev)
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32) + 0.5,
                          torch.arange(W, device=dev, dtype=torch.float32) + 0.5, indexing="ij")
    dc = torch.stack([(u[None] - W / 2) / f[:, None, None], (v[None] - H / 2) / f[:, None, None],
                      torch.ones(B, H, W, device=dev)], -1)  # [B, H, W, 3], z = 1: t is the z-depth
    R = _rot(_u(g, B, -0.45, 0.25, dev), _u(g, B, -0.7, 0.7, dev), _u(g, B, -0.08, 0.08, dev))
    d = torch.einsum("bij,bhwj->bhwi", R, dc)
    # room: x in [-xl, xr], y in [-ceil, floor] (y down, camera at 0), z in [-zb, zf]
    lo = torch.stack([-_u(g, B, 0.6, 4.0, dev), -_u(g, B, 0.7, 1.8, dev), -_u(g, B, 0.3, 3.0, dev)], -1)
    hi = torch.stack([_u(g, B, 0.6, 4.0, dev), _u(g, B, 0.9, 1.7, dev), _u(g, B, 1.5, 9.0, dev)], -1)
    dd = torch.where(d.abs() < 1e-6, torch.full_like(d, 1e-6), d)
    tb = torch.where(dd > 0, hi[:, None, None] / dd, lo[:, None, None] / dd)  # exit distance per axis
    t, axis = tb.min(-1)
    face = axis * 2 + (torch.gather(dd, -1, axis[..., None])[..., 0] > 0).long()  # 0..5
    # boxes standing on the floor
    nb = max_boxes
    bx = lo[:, 0:1] + (hi[:, 0:1] - lo[:, 0:1]) * torch.rand(B, nb, generator=g, device=dev)
    bz = 0.6 + (hi[:, 2:3] - 0.6).clamp_min(0.1) * torch.rand(B, nb, generator=g, device=dev)
    sx = 0.2 + 1.3 * torch.rand(B, nb, generator=g, device=dev)
    sz = 0.2 + 1.0 * torch.rand(B, nb, generator=g, device=dev)
    sh = 0.3 + 1.6 * torch.rand(B, nb, generator=g, device=dev)
    floor = hi[:, 1:2].expand(-1, nb)
    active = torch.rand(B, nb, generator=g, device=dev) < torch.rand(B, 1, generator=g, device=dev)
    blo = torch.stack([bx - sx / 2, floor - sh, bz - sz / 2], -1)  # [B, nb, 3]
    bhi = torch.stack([bx + sx / 2, floor, bz + sz / 2], -1)
    for k in range(nb):
        t1 = blo[:, k][:, None, None] / dd
        t2 = bhi[:, k][:, None, None] / dd
        tn, an = torch.minimum(t1, t2).max(-1)
        tf = torch.maximum(t1, t2).min(-1).values
        hit = (tn < tf) & (tn > 0.05) & (tn < t) & active[:, k][:, None, None]
        t = torch.where(hit, tn, t)
        fk = 6 + 3 * k + an
        face = torch.where(hit, fk, face)
        axis = torch.where(hit, an, axis)
    p = d * t[..., None]  # hit point, world
    # texture coordinates in the plane of the hit face, metres x a per-face scale
    nf = 6 + 3 * nb
    scale = 0.4 + 1.2 * torch.rand(B, nf, generator=g, device=dev)
    tid = torch.randint(bank.shape[0], (B, nf), generator=g, device=dev)
    bright = 0.45 + 0.75 * torch.rand(B, nf, generator=g, device=dev)
    fs = torch.gather(scale, 1, face.flatten(1)).view(B, H, W)
    ft = torch.gather(tid, 1, face.flatten(1)).view(B, H, W)
    fb = torch.gather(bright, 1, face.flatten(1)).view(B, H, W)
    a0 = torch.where(axis == 0, p[..., 2], p[..., 0])
    a1 = torch.where(axis == 1, p[..., 2], p[..., 1])
    S = bank.shape[-1]
    tu = (a0 * fs) % 1.0 * (S - 1)
    tv = (a1 * fs) % 1.0 * (S - 1)
    iu, iv = tu.floor().long().clamp(0, S - 2), tv.floor().long().clamp(0, S - 2)
    wu, wv = (tu - iu)[:, None], (tv - iv)[:, None]
    flat = bank.permute(1, 0, 2, 3).reshape(3, -1)  # [3, T*S*S]

    def tap(y, x):
        idx = (ft * S + y) * S + x
        return flat[:, idx.flatten()].view(3, B, H, W).permute(1, 0, 2, 3)

    rgb = (tap(iv, iu) * (1 - wu) * (1 - wv) + tap(iv, iu + 1) * wu * (1 - wv) + tap(iv + 1, iu) * (1 - wu) * wv
           + tap(iv + 1, iu + 1) * wu * wv)
    n = torch.nn.functional.one_hot(axis, 3).float()
    cosang = (n * d).sum(-1).abs() / d.norm(dim=-1)
    light = fb * (0.35 + 0.65 * cosang) / (1 + 0.02 * t * t)
    rgb = rgb * light[:, None] * (0.8 + 0.4 * torch.rand(B, 3, 1, 1, generator=g, device=dev))
    rgb = rgb + 0.02 * torch.randn(rgb.shape, generator=g, device=dev)
    return rgb.clamp(0, 1), t[:, None]


if __name__ == "__main__":  # writes a few samples for a look: python tools/synth_rooms.py out_dir
    import os
    import sys

    import numpy as np
    from PIL import Image

    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/synth"
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    imgs = (torch.rand(4, 3, 240, 320, generator=g) * 255).to(torch.uint8)
    bank = make_texture_bank(imgs, 16, 64, g)
    rgb, dep = render(6, 240, 320, bank, g)
    for i in range(6):
        Image.fromarray((rgb[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(f"{out}/rgb{i}.png")
        dd = (dep[i, 0] / dep[i, 0].max()).numpy()
        Image.fromarray((dd * 255).astype(np.uint8)).save(f"{out}/depth{i}.png")
    print(dep.min().item(), dep.max().item(), dep.median().item())
