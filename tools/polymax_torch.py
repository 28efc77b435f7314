"""PyTorch PolyMaX-style model that matches DenseKit's Swift runtime arithmetic and weight names.

Backbone: a timm VoVNet (plain model, no classifier; state_dict names `stem.*`, `stages.*`, saved under
`backbone.`). Head: the kMaX-DeepLab pixel decoder + k-means transformer decoder + predictor of
`../shared/specs/polymax-head.md` (sections 3-5), written from the spec with its exact weight names
(section 8). Read-outs: semantic (6.1) and depth option A (6.2, `readout.depth.*`).

Conventions (spec section 1 / 7): BN eps 1e-3 everywhere in the head, channels-first LayerNorm eps 1e-6,
exact (erf) GELU, no 1/sqrt(d) scaling in any attention, hard argmax k-means assignment (detached: no gradient
flows through the assignment; the k-means update gets gradients through the pixel values only, as in kMaX),
void class last with the constant prior log(C p / (1 - p)) added at run time.

Used by tools/train_camvid.py, tools/export_polymax.py, tools/make_seg_fixture.py, tools/check_polymax_exact.py.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPS = 1e-3
LN_EPS = 1e-6
MAX_SPAN = 255


def gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)  # exact erf form


def bn1d(c: int, init: float = 1.0) -> nn.BatchNorm1d:
    m = nn.BatchNorm1d(c, eps=BN_EPS, momentum=0.1)
    nn.init.constant_(m.weight, init)
    return m


def bn2d(c: int, init: float = 1.0) -> nn.BatchNorm2d:
    m = nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.1)
    nn.init.constant_(m.weight, init)
    return m


class ConvBN(nn.Module):
    """`{prefix}.conv.weight` (+ `.conv.bias`) and `{prefix}.norm.*`; optional GELU after."""

    def __init__(self, cin: int, cout: int, k: int = 1, dim: int = 2, groups: int = 1, bias: bool = False,
                 norm: bool = True, act: bool = False, norm_init: float = 1.0):
        super().__init__()
        if dim == 2:
            self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=bias)
        else:
            self.conv = nn.Conv1d(cin, cout, 1, bias=bias)
        if norm:
            self.norm = (bn2d if dim == 2 else bn1d)(cout, norm_init)
        else:
            self.norm = None
        self.act = act
        nn.init.trunc_normal_(self.conv.weight, std=math.sqrt(2.0 / max(1, cin // groups * k * k if dim == 2 else cin)))
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return gelu(x) if self.act else x


class LayerNormCF(nn.Module):
    """Channels-first LayerNorm over dim 1, biased variance, eps 1e-6."""

    def __init__(self, c: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + LN_EPS)
        return x * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class RelEmbed(nn.Module):
    def __init__(self, depth: int, std: float = 1.0):
        super().__init__()
        self._embeddings = nn.Embedding(2 * MAX_SPAN - 1, depth)
        nn.init.trunc_normal_(self._embeddings.weight, std=std)

    def forward(self, length: int) -> torch.Tensor:
        assert length <= MAX_SPAN, f"axial length {length} > {MAX_SPAN}"
        idx = torch.arange(length, device=self._embeddings.weight.device)
        rel = idx[None, :] - idx[:, None] + (MAX_SPAN - 1)  # [l, m] -> m - l + 254
        return self._embeddings.weight[rel]  # [L, L, d]


class QKVTransform(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, 1, bias=False)
        nn.init.normal_(self.conv.weight, std=cin ** -0.5)


class AxialAttention(nn.Module):
    def __init__(self, cin: int, b: int, heads: int):
        super().__init__()
        self.kd, self.vd, self.h = b, 2 * b, heads
        self.qkv_transform = QKVTransform(cin, 2 * b + 2 * b)
        self._batch_norm_qkv = bn1d(4 * b)
        self._batch_norm_similarity = bn2d(3 * heads)
        self._batch_norm_retrieved_output = bn1d(4 * b)
        self._query_rpe = RelEmbed(b // heads)
        self._key_rpe = RelEmbed(b // heads)
        self._value_rpe = RelEmbed(2 * b // heads)

    def forward(self, x):  # [N, Cin, L]
        n, _, L = x.shape
        h, kd, vd = self.h, self.kd, self.vd
        qkv = self._batch_norm_qkv(self.qkv_transform.conv(x))
        q = qkv[:, :kd].reshape(n, h, kd // h, L)
        k = qkv[:, kd:2 * kd].reshape(n, h, kd // h, L)
        v = qkv[:, 2 * kd:].reshape(n, h, vd // h, L)
        rq, rk, rv = self._query_rpe(L), self._key_rpe(L), self._value_rpe(L)
        s1 = torch.einsum("nhdl,nhdm->nhlm", q, k)
        s2 = torch.einsum("nhdl,lmd->nhlm", q, rq)
        s3 = torch.einsum("nhdm,lmd->nhlm", k, rk)
        s = self._batch_norm_similarity(torch.cat([s1, s2, s3], 1))
        logits = s.reshape(n, 3, h, L, L).sum(1)
        w = torch.softmax(logits, -1)
        o1 = torch.einsum("nhlm,nhdm->nhdl", w, v).reshape(n, vd, L)
        o2 = torch.einsum("nhlm,lmd->nhdl", w, rv).reshape(n, vd, L)
        r = self._batch_norm_retrieved_output(torch.cat([o1, o2], 1))
        return r[:, :vd] + r[:, vd:]


class Axial2D(nn.Module):
    def __init__(self, b: int, heads: int):
        super().__init__()
        self._height_axis = AxialAttention(2 * b, b, heads)
        self._width_axis = AxialAttention(2 * b, b, heads)

    def forward(self, x):  # [B, 2b, H, W]
        B, C, H, W = x.shape
        y = x.permute(0, 3, 1, 2).reshape(B * W, C, H)
        y = self._height_axis(y)
        C2 = y.shape[1]
        y = y.reshape(B, W, C2, H).permute(0, 2, 3, 1)  # [B, C2, H, W]
        y = y.permute(0, 2, 1, 3).reshape(B * H, C2, W)
        y = self._width_axis(y)
        C3 = y.shape[1]
        return y.reshape(B, H, C3, W).permute(0, 2, 1, 3).contiguous()


class SingleBlock(nn.Module):
    def __init__(self, cin: int, b: int, kind: str, heads: int):
        super().__init__()
        self.kind = kind
        f0 = 2 * b if kind == "axial" else b
        self._conv1_bn_act = ConvBN(cin, f0, 1, act=True)
        if kind == "axial":
            self._attention = Axial2D(b, heads)
        else:
            self._conv2_bn_act = ConvBN(b, b, 3, act=True)
        self._conv3_bn = ConvBN(f0, 4 * b, 1, norm_init=0.0)
        self._shortcut = ConvBN(cin, 4 * b, 1) if cin != 4 * b else None

    def forward(self, x):
        x = gelu(x)
        sc = self._shortcut(x) if self._shortcut is not None else x
        y = self._conv1_bn_act(x)
        if self.kind == "axial":
            y = gelu(self._attention(y))
        else:
            y = self._conv2_bn_act(y)
        return self._conv3_bn(y) + sc


class Stage(nn.Module):
    def __init__(self, cin: int, b: int, n: int, kind: str, heads: int):
        super().__init__()
        self._blocks = nn.ModuleList([SingleBlock(cin if j == 0 else 4 * b, b, kind, heads) for j in range(n)])

    def forward(self, x):
        for blk in self._blocks:
            x = blk(x)
        return x


class Fuse(nn.Module):
    def __init__(self, c_low: int, c_high: int, b: int):
        super().__init__()
        self._conv_bn_low = ConvBN(c_low, b, 1) if c_low != b else None
        self._conv_bn_high = ConvBN(c_high, b, 1) if c_high != b else None

    def forward(self, low, high):
        if self._conv_bn_low is not None:
            low = self._conv_bn_low(gelu(low))
        ac = low.shape[-1] % 2 == 1
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=ac)
        if self._conv_bn_high is not None:
            high = self._conv_bn_high(gelu(high))
        return low + high


class KMaXPixelDecoder(nn.Module):
    def __init__(self, in_channels: Sequence[int], dec_layers: Sequence[int], dec_channels: Sequence[int],
                 layer_types: Sequence[str], num_heads: int):
        super().__init__()
        c_stage = list(reversed(list(in_channels)))  # res5, res4, res3, res2
        self._in_norms = nn.ModuleList([LayerNormCF(c) for c in c_stage])
        stages, fuses = [], []
        for i in range(4):
            cin = c_stage[0] if i == 0 else dec_channels[i]
            stages.append(Stage(cin, dec_channels[i], dec_layers[i], layer_types[i], num_heads))
            if i < 3:
                fuses.append(Fuse(4 * dec_channels[i], c_stage[i + 1], dec_channels[i + 1]))
        self._stages = nn.ModuleList(stages)
        self._resized_fuses = nn.ModuleList(fuses)

    def forward(self, res2, res3, res4, res5) -> List[torch.Tensor]:
        feats = [res5, res4, res3, res2]
        x = self._in_norms[0](feats[0])
        outs = []
        for i in range(3):
            x = self._stages[i](x)
            outs.append(x)
            x = self._resized_fuses[i](x, self._in_norms[i + 1](feats[i + 1]))
        x = self._stages[3](x)
        outs.append(x)
        return outs


class Predictor(nn.Module):
    def __init__(self, cx: int, dq: int, mid: int, embed: int, num_classes: int, void_prior: float):
        super().__init__()
        self._pixel_space_head_conv0bnact = ConvBN(cx, cx, 5, groups=cx, act=True)
        self._pixel_space_head_conv1bnact = ConvBN(cx, mid, 1, act=True)
        self._pixel_space_head_last_convbn = ConvBN(mid, embed, 1, bias=True)
        self._transformer_mask_head = ConvBN(dq, embed, dim=1)
        self._transformer_class_head = ConvBN(dq, num_classes + 1, dim=1, bias=True, norm=False)
        nn.init.trunc_normal_(self._transformer_class_head.conv.weight, std=0.01)
        self._pixel_space_mask_batch_norm = nn.BatchNorm3d(1, eps=BN_EPS, momentum=0.1)
        nn.init.constant_(self._pixel_space_mask_batch_norm.weight, 0.1)
        self.void_bias = math.log(num_classes * void_prior / (1 - void_prior))

    def pixel_embedding(self, x):
        y = self._pixel_space_head_conv0bnact(x)
        y = self._pixel_space_head_conv1bnact(y)
        y = self._pixel_space_head_last_convbn(y)
        return F.normalize(y, p=2, dim=1, eps=1e-12)

    def forward(self, me, ce, x):
        pemb = self.pixel_embedding(x)
        cls = self._transformer_class_head(ce).transpose(1, 2)  # [B, K, C+1]
        void = torch.zeros_like(cls)
        void[..., -1] = self.void_bias
        cls = cls + void
        ker = self._transformer_mask_head(me)  # [B, E, K]
        ml = torch.einsum("behw,bek->bkhw", pemb, ker)
        ml = self._pixel_space_mask_batch_norm(ml.unsqueeze(1)).squeeze(1)
        return ml, cls, pemb


class ClusterSelfAttention(nn.Module):
    def __init__(self, t: int, heads: int):
        super().__init__()
        self._batch_norm_similarity = bn2d(heads)
        self._batch_norm_retrieved_value = bn1d(2 * t)


class KMaXTransformerLayer(nn.Module):
    def __init__(self, cp: int, d: int, t: int, heads: int, ffn: int, mid: int, embed: int, num_classes: int,
                 void_prior: float):
        super().__init__()
        self.t, self.h = t, heads
        self._query_conv1_bn_act = ConvBN(d, 2 * t, dim=1, act=True)
        self._pixel_conv1_bn_act = ConvBN(cp, 2 * t, 1, act=True)
        self._query_qkv_conv_bn = ConvBN(2 * t, 4 * t, dim=1)
        self._pixel_v_conv_bn = ConvBN(2 * t, 2 * t, 1)
        self._query_self_attention = ClusterSelfAttention(t, heads)
        self._query_conv3_bn = ConvBN(2 * t, d, dim=1, norm_init=0.0)
        self._query_ffn_conv1_bn_act = ConvBN(d, ffn, dim=1, act=True)
        self._query_ffn_conv2_bn = ConvBN(ffn, d, dim=1, norm_init=0.0)
        self._predcitor = Predictor(2 * t, 2 * t, mid, embed, num_classes, void_prior)
        self._kmeans_query_batch_norm_retrieved_value = bn1d(2 * t)
        self._kmeans_query_conv3_bn = ConvBN(2 * t, d, dim=1, norm_init=0.0)

    def forward(self, q, x):
        B = q.shape[0]
        t, h = self.t, self.h
        ps = self._pixel_conv1_bn_act(gelu(x))
        qs = self._query_conv1_bn_act(q)
        v = self._pixel_v_conv_bn(ps).flatten(2)  # [B, 2t, HW]
        ml, cl, _ = self._predcitor(qs, qs, ps)
        K = ml.shape[1]
        with torch.no_grad():
            a = ml.detach().flatten(2).argmax(1)  # [B, HW], lowest index on ties
            onehot = F.one_hot(a, K).to(v.dtype)  # [B, HW, K]
        u = torch.bmm(v, onehot)  # [B, 2t, K]: sum of assigned pixels' values
        u = self._kmeans_query_batch_norm_retrieved_value(u)
        q1 = q + self._kmeans_query_conv3_bn(u)
        qkv = self._query_qkv_conv_bn(qs)
        qq = qkv[:, :t].reshape(B, h, t // h, K)
        kk = qkv[:, t:2 * t].reshape(B, h, t // h, K)
        vv = qkv[:, 2 * t:].reshape(B, h, 2 * t // h, K)
        s = torch.einsum("bhdl,bhdm->bhlm", qq, kk)
        s = self._query_self_attention._batch_norm_similarity(s)
        w = torch.softmax(s, -1)
        r = torch.einsum("bhlm,bhdm->bhdl", w, vv).reshape(B, 2 * t, K)
        r = gelu(self._query_self_attention._batch_norm_retrieved_value(r))
        q2 = gelu(q1 + self._query_conv3_bn(r))
        q3 = gelu(q2 + self._query_ffn_conv2_bn(self._query_ffn_conv1_bn_act(q2)))
        return q3, ml, cl, a


class KMaXTransformerDecoder(nn.Module):
    """`predictor.*` keys."""

    def __init__(self, pix_channels: Sequence[int], trans_dec_layers: Sequence[int], k: int, d: int, t: int,
                 heads: int, ffn: int, mid: int, embed: int, num_classes: int, void_prior: float):
        super().__init__()
        self._cluster_centers = nn.Embedding(d, k)  # used as the [D, K] matrix
        nn.init.normal_(self._cluster_centers.weight, std=1.0)
        layers, stage_of = [], []
        for s, n in enumerate(trans_dec_layers):
            for _ in range(n):
                layers.append(KMaXTransformerLayer(pix_channels[s], d, t, heads, ffn, mid, embed, num_classes, void_prior))
                stage_of.append(s)
        self._kmax_transformer_layers = nn.ModuleList(layers)
        self.stage_of = stage_of
        self._class_embedding_projection = ConvBN(d, d, dim=1, act=True)
        self._mask_embedding_projection = ConvBN(d, d, dim=1, act=True)
        self._predcitor = Predictor(pix_channels[3], d, mid, embed, num_classes, void_prior)

    def forward(self, feats: List[torch.Tensor]):
        B = feats[0].shape[0]
        q = self._cluster_centers.weight.unsqueeze(0).expand(B, -1, -1)
        aux = []
        for layer, s in zip(self._kmax_transformer_layers, self.stage_of):
            q, ml, cl, a = layer(q, feats[s])
            aux.append((ml, cl, a))
        ce = self._class_embedding_projection(q)
        me = self._mask_embedding_projection(q)
        ml, cl, pemb = self._predcitor(me, ce, feats[3])
        return dict(mask_logits=ml, class_logits=cl, cluster_embeddings=ce, pixel_embedding=pemb,
                    cluster_centers=q, aux=aux)


class DepthReadout(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, d))
        self.bias = nn.Parameter(torch.zeros(1))
        nn.init.normal_(self.weight, std=0.01)


class Readout(nn.Module):
    def __init__(self, d: int, depth: bool):
        super().__init__()
        self.depth = DepthReadout(d) if depth else None


# ---------------------------------------------------------------------------------------------------------
# read-outs (spec 6.1, 6.2)


def resize_logits(ml: torch.Tensor, size: Tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    if tuple(ml.shape[-2:]) == tuple(size):
        return ml
    return F.interpolate(ml, size=size, mode="bilinear", align_corners=align_corners)


def semantic_scores(ml: torch.Tensor, cl: torch.Tensor, size: Optional[Tuple[int, int]] = None,
                    align_corners: bool = False) -> torch.Tensor:
    """sem [B, C, H, W] = sum_k softmax_K(resized ML)[k] * softmax_{C+1}(CL)[k, c], void dropped."""
    if size is not None:
        ml = resize_logits(ml, size, align_corners)
    p = torch.softmax(ml, 1)
    pc = torch.softmax(cl, -1)[..., :-1]  # [B, K, C]
    return torch.einsum("bkhw,bkc->bchw", p, pc)


def depth_map(ml, ce, readout: Readout, d_min: float, d_max: float, size=None, align_corners=False):
    if size is not None:
        ml = resize_logits(ml, size, align_corners)
    p = torch.softmax(ml, 1)
    z = torch.einsum("od,bdk->bok", readout.depth.weight, ce) + readout.depth.bias[None, :, None]  # [B, 1, K]
    dk = d_min + (d_max - d_min) * torch.sigmoid(z)
    return torch.einsum("bkhw,bk->bhw", p, dk[:, 0]).unsqueeze(1)


# ---------------------------------------------------------------------------------------------------------
# full model

# VoVNet configs as DenseKit reads them (tools/convert.py PRESETS + CONFIG_DEFAULTS).
VOVNET_PRESETS = {
    "ese_vovnet19b_slim_dw": dict(stem_chs=[64, 64, 64], stage_conv_chs=[64, 80, 96, 112],
                                  stage_out_chs=[112, 256, 384, 512], layer_per_block=3, block_per_stage=[1, 1, 1, 1],
                                  residual=True, depthwise=True, attn="ese"),
    "ese_vovnet19b_dw": dict(stem_chs=[64, 64, 64], stage_conv_chs=[128, 160, 192, 224],
                             stage_out_chs=[256, 512, 768, 1024], layer_per_block=3, block_per_stage=[1, 1, 1, 1],
                             residual=True, depthwise=True, attn="ese"),
    "ese_vovnet19b_slim": dict(stem_chs=[64, 64, 128], stage_conv_chs=[64, 80, 96, 112],
                               stage_out_chs=[112, 256, 384, 512], layer_per_block=3, block_per_stage=[1, 1, 1, 1],
                               residual=True, depthwise=False, attn="ese"),
}

DEFAULT_HEAD = dict(dec_layers=[1, 1, 1, 1], dec_channels=[128, 64, 32, 16],
                    layer_types=["axial", "bottleneck", "bottleneck", "bottleneck"], num_heads=4,
                    trans_dec_layers=[1, 1, 1], num_clusters=32, query_dim=128, trans_base_filters=64, ffn_dim=512,
                    pred_mid_channels=64, embed_dim=64, num_classes=11, void_prior_prob=0.9, d_min=1e-3, d_max=10.0)


def backbone_config(name: str) -> dict:
    cfg = dict(architecture="vovnet", **VOVNET_PRESETS[name])
    cfg.update(attn_all_blocks=False, in_chans=3, num_classes=0, features_only=True, out_indices=[1, 2, 3, 4],
               key_style="timm")
    return cfg


class PolyMaX(nn.Module):
    def __init__(self, backbone: str = "ese_vovnet19b_dw", head: Optional[dict] = None, depth: bool = False,
                 sem_aux: bool = False):
        super().__init__()
        import timm

        self.backbone_name = backbone
        self.head_cfg = dict(DEFAULT_HEAD)
        self.head_cfg.update(head or {})
        h = self.head_cfg
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0)
        in_ch = VOVNET_PRESETS[backbone]["stage_out_chs"]
        h["in_channels"] = list(in_ch)
        self.pixel_decoder = KMaXPixelDecoder(in_ch, h["dec_layers"], h["dec_channels"], h["layer_types"], h["num_heads"])
        pix = [4 * c for c in h["dec_channels"]]
        self.predictor = KMaXTransformerDecoder(pix, h["trans_dec_layers"], h["num_clusters"], h["query_dim"],
                                                h["trans_base_filters"], h["num_heads"], h["ffn_dim"],
                                                h["pred_mid_channels"], h["embed_dim"], h["num_classes"],
                                                h["void_prior_prob"])
        self.readout = Readout(h["query_dim"], depth)
        # training-only per-pixel semantic classifier on the OS4 pixel-decoder output (kMaX's auxiliary
        # semantic loss); never exported (not part of the runtime).
        self.sem_aux = nn.Conv2d(pix[3], h["num_classes"], 1) if sem_aux else None

    def features(self, x):
        x = self.backbone.stem(x)
        out = []
        for s in self.backbone.stages:
            x = s(x)
            out.append(x)
        return out  # feat4, feat8, feat16, feat32

    def forward(self, x):
        r2, r3, r4, r5 = self.features(x)
        feats = self.pixel_decoder(r2, r3, r4, r5)
        o = self.predictor(feats)
        if self.sem_aux is not None and self.training:
            o["sem_aux"] = self.sem_aux(gelu(feats[3]))
        return o

    # -- export -------------------------------------------------------------------------------------------
    def head_config_json(self) -> dict:
        h = self.head_cfg
        keys = ["in_channels", "dec_layers", "dec_channels", "layer_types", "num_heads", "trans_dec_layers",
                "num_clusters", "query_dim", "trans_base_filters", "ffn_dim", "pred_mid_channels", "embed_dim",
                "num_classes", "void_prior_prob", "d_min", "d_max"]
        return {k: h[k] for k in keys}

    def densekit_state_dict(self) -> Dict[str, torch.Tensor]:
        out = {}
        for k, v in self.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            if k.startswith("backbone.head.") or k.startswith("sem_aux."):
                continue
            if k.startswith("readout.depth."):
                out[k] = v.detach().float().contiguous()
                continue
            out[k] = v.detach().float().contiguous()
        return out


@torch.no_grad()
def predict_semantic(model: PolyMaX, x: torch.Tensor, content_hw: Tuple[int, int], out_hw: Tuple[int, int]):
    """DenseKit's `predict` path: x is the letterboxed input [B, 3, Hp, Wp]; crop the OS4 mask logits to the
    content region round(content * h4 / Hp), then resize (align_corners False) straight to out_hw, softmax over K,
    mix with the class probabilities (void dropped). Returns scores [B, C, H, W]."""
    o = model(x)
    ml = o["mask_logits"]
    Hp, Wp = x.shape[-2:]
    h4, w4 = ml.shape[-2:]
    ch = min(h4, max(1, int(math.floor(content_hw[0] * h4 / Hp + 0.5))))
    cw = min(w4, max(1, int(math.floor(content_hw[1] * w4 / Wp + 0.5))))
    ml = ml[:, :, :ch, :cw]
    return semantic_scores(ml, o["class_logits"], out_hw, False)


# ---------------------------------------------------------------------------------------------------------
# reading a DenseKit model file without the safetensors package (the borrowed GPU machine may lack it)


def read_safetensors(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Tensors (float32 / float16 / int64 as stored, copied) and the metadata strings of a safetensors file."""
    import json
    import struct

    import numpy as np

    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        arr = np.frombuffer(raw[base + a:base + b], dtype=dtypes[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out, meta


def model_from_densekit_file(path: str, backbone: str, depth: bool = False, sem_aux: bool = False,
                             head_overrides: Optional[dict] = None) -> "PolyMaX":
    """A PolyMaX whose weights come from a DenseKit polymax model file (tools/export_polymax.py); tensors the
    file lacks (a new read-out, the training-only semantic head, BN batch counters) keep their initial values."""
    import json

    tensors, meta = read_safetensors(path)
    cfg = json.loads(meta["densekit.config"])
    head = dict(cfg["head"])
    head.pop("in_channels", None)
    head.update(head_overrides or {})
    model = PolyMaX(backbone, head, depth=depth, sem_aux=sem_aux)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    bad = [k for k in missing if not (k.endswith("num_batches_tracked") or k.startswith("sem_aux.")
                                      or k.startswith("readout.") or k.startswith("backbone.head."))]
    if bad or unexpected:
        raise ValueError(f"{path} does not fit {backbone}: missing {bad[:5]}, unexpected {list(unexpected)[:5]}")
    return model
