#!/usr/bin/env python3
"""Convert a VoVNet model (timm preset or PyTorch checkpoint) into a DenseKit safetensors file.

The output holds every learned tensor under its timm state_dict name (spec
`shared/specs/vovnet.md` 1.8), as float32, without `num_batches_tracked`, plus the
metadata DenseKit reads (all values are strings):

    densekit.format        "1"
    densekit.architecture  "vovnet"
    densekit.config        compact JSON, keys of shared/golden/vovnet/INDEX.md
    densekit.source        what the file was converted from

Sources:
    --timm NAME                 a timm VoVNet preset, random init (pretrained=False)
    --checkpoint FILE           .pth / .pt / .bin (torch.load, weights_only=True) or
                                .safetensors; timm or detectron2 (vovnet-detectron2 /
                                CenterMask) names; nesting under "state_dict" / "model"
                                and prefixes ("backbone.bottom_up.", "module.", ...)
                                are handled
    --timm NAME --checkpoint F  the checkpoint, checked against that preset

Names and shapes are checked against the config; a checkpoint that does not fit is
refused (exit 1) with the missing, unexpected and mis-shaped keys named.

Examples:
    tools/.venv/bin/python tools/convert.py --timm ese_vovnet19b_dw -o /tmp/v19dw.safetensors
    tools/.venv/bin/python tools/convert.py --checkpoint model_final.pth -o v39.safetensors
    tools/.venv/bin/python tools/convert.py --checkpoint ck.pth --config '{"residual": true}' -o x.safetensors
    tools/.venv/bin/python tools/convert.py --self-test

ViT (timm `VisionTransformer` names, `densekit.architecture` "vit"; see tools/convert_vit.py):
    tools/.venv/bin/python tools/convert.py --timm vit_small_patch16_224 --img-size 512x512 -o vits16_512.safetensors
    tools/.venv/bin/python tools/convert.py --timm vit_small_patch16_224 --img-size 512 --token-clustering -o vits16_512_tc.safetensors
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import struct
import sys
import tempfile
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_biformer  # noqa: E402
import convert_vit  # noqa: E402

PROG = "convert.py"
FORMAT_VERSION = "1"
ARCHITECTURE = "vovnet"

# timm presets (spec vovnet.md section 2 = timm.models.vovnet.model_cfgs; --self-test checks
# that they agree with the installed timm). `eca_vovnet39b` / `ese_vovnet39b_evos` are out of scope.
_WIDE = dict(stage_conv_chs=[128, 160, 192, 224], stage_out_chs=[256, 512, 768, 1024])
_SLIM = dict(stage_conv_chs=[64, 80, 96, 112], stage_out_chs=[112, 256, 384, 512])
PRESETS: Dict[str, dict] = {
    "vovnet39a": dict(stem_chs=[64, 64, 128], **_WIDE, layer_per_block=5, block_per_stage=[1, 1, 2, 2],
                      residual=False, depthwise=False, attn=""),
    "vovnet57a": dict(stem_chs=[64, 64, 128], **_WIDE, layer_per_block=5, block_per_stage=[1, 1, 4, 3],
                      residual=False, depthwise=False, attn=""),
    "ese_vovnet19b_slim_dw": dict(stem_chs=[64, 64, 64], **_SLIM, layer_per_block=3, block_per_stage=[1, 1, 1, 1],
                                  residual=True, depthwise=True, attn="ese"),
    "ese_vovnet19b_dw": dict(stem_chs=[64, 64, 64], **_WIDE, layer_per_block=3, block_per_stage=[1, 1, 1, 1],
                             residual=True, depthwise=True, attn="ese"),
    "ese_vovnet19b_slim": dict(stem_chs=[64, 64, 128], **_SLIM, layer_per_block=3, block_per_stage=[1, 1, 1, 1],
                               residual=True, depthwise=False, attn="ese"),
    "ese_vovnet19b": dict(stem_chs=[64, 64, 128], **_WIDE, layer_per_block=3, block_per_stage=[1, 1, 1, 1],
                          residual=True, depthwise=False, attn="ese"),
    "ese_vovnet39b": dict(stem_chs=[64, 64, 128], **_WIDE, layer_per_block=5, block_per_stage=[1, 1, 2, 2],
                          residual=True, depthwise=False, attn="ese"),
    "ese_vovnet57b": dict(stem_chs=[64, 64, 128], **_WIDE, layer_per_block=5, block_per_stage=[1, 1, 4, 3],
                          residual=True, depthwise=False, attn="ese"),
    "ese_vovnet99b": dict(stem_chs=[64, 64, 128], **_WIDE, layer_per_block=5, block_per_stage=[1, 3, 9, 3],
                          residual=True, depthwise=False, attn="ese"),
}
OUT_OF_SCOPE = {"eca_vovnet39b": "eca attention", "ese_vovnet39b_evos": "EvoNorm-S0 instead of BN+ReLU"}

SHAPE_KEYS = ("stem_chs", "stage_conv_chs", "stage_out_chs", "layer_per_block", "block_per_stage",
              "residual", "depthwise", "attn")
# Order of the keys in densekit.config (golden vovnet/INDEX.md).
CONFIG_KEYS = SHAPE_KEYS + ("attn_all_blocks", "in_chans", "num_classes", "features_only", "out_indices",
                            "key_style")
CONFIG_DEFAULTS = dict(attn_all_blocks=False, in_chans=3, num_classes=0, features_only=True,
                       out_indices=[1, 2, 3, 4], key_style="timm")
BN_FIELDS = ("weight", "bias", "running_mean", "running_var")
MAX_LISTED = 10

# Text that precedes these keys is the checkpoint's prefix (spec vovnet.md section 4).
PREFIX_ANCHORS = ("stem.stem_1/conv.weight", "stem.0.conv.weight", "stem_0.conv.weight")


class ConvertError(Exception):
    """An expected failure: printed as one message, exit code 1, no traceback."""


def _note(msg: str) -> None:
    print(f"{PROG}: note: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------------------
# Config


def preset_config(name: str) -> dict:
    if name in OUT_OF_SCOPE:
        raise ConvertError(f"timm model '{name}' is out of scope ({OUT_OF_SCOPE[name]}); "
                           f"supported: {', '.join(PRESETS)}")
    if name not in PRESETS:
        raise ConvertError(f"'{name}' is not a supported timm VoVNet preset; supported: {', '.join(PRESETS)}")
    cfg = json.loads(json.dumps(PRESETS[name]))
    cfg.update(json.loads(json.dumps(CONFIG_DEFAULTS)))
    return cfg


def _int_list(cfg: dict, key: str, n: Optional[int]) -> List[int]:
    v = cfg[key]
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise ConvertError(f"config '{key}' must be a list of integers, got {json.dumps(v)}")
    if n is not None and len(v) != n:
        raise ConvertError(f"config '{key}' must have {n} entries, got {len(v)}")
    return v


def validate_config(cfg: dict) -> dict:
    """Checks types and ranges; returns the config with exactly CONFIG_KEYS, in order."""
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise ConvertError(f"config lacks {', '.join(missing)}")
    for k, n in (("stem_chs", 3), ("stage_conv_chs", 4), ("stage_out_chs", 4), ("block_per_stage", 4)):
        if any(x < 1 for x in _int_list(cfg, k, n)):
            raise ConvertError(f"config '{k}' entries must be >= 1, got {cfg[k]}")
    for k in ("layer_per_block", "in_chans", "num_classes"):
        if not isinstance(cfg[k], int) or isinstance(cfg[k], bool):
            raise ConvertError(f"config '{k}' must be an integer, got {json.dumps(cfg[k])}")
    if cfg["layer_per_block"] < 1 or cfg["in_chans"] < 1 or cfg["num_classes"] < 0:
        raise ConvertError("config needs layer_per_block >= 1, in_chans >= 1, num_classes >= 0")
    for k in ("residual", "depthwise", "attn_all_blocks", "features_only"):
        if not isinstance(cfg[k], bool):
            raise ConvertError(f"config '{k}' must be true or false, got {json.dumps(cfg[k])}")
    if cfg["attn"] not in ("", "ese"):
        raise ConvertError(f"config 'attn' must be \"\" or \"ese\", got {json.dumps(cfg['attn'])}")
    oi = _int_list(cfg, "out_indices", None)
    if (cfg["features_only"] and not oi) or any(i not in range(5) for i in oi) or len(set(oi)) != len(oi):
        raise ConvertError(f"out_indices must be distinct entries of 0..4, got {oi}")
    if cfg["key_style"] != "timm":
        raise ConvertError("converted files always use key_style \"timm\"")
    if cfg["features_only"]:
        cfg["num_classes"] = 0
    return OrderedDict((k, cfg[k]) for k in CONFIG_KEYS)


def parse_config_arg(text: str) -> dict:
    """--config: inline JSON or the path of a JSON file."""
    src = text
    if not text.lstrip().startswith("{"):
        if not os.path.isfile(text):
            raise ConvertError(f"--config is neither a JSON object nor an existing file: {text}")
        with open(text, encoding="utf-8") as f:
            src = f.read()
    try:
        cfg = json.loads(src)
    except json.JSONDecodeError as e:
        raise ConvertError(f"--config is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ConvertError("--config must be a JSON object")
    known = set(CONFIG_KEYS) | {"preset", "key_prefix", "bn_eps"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConvertError(f"--config has unknown keys {unknown}; known: {sorted(known)}")
    if "bn_eps" in cfg and cfg.pop("bn_eps") != 1e-5:
        raise ConvertError("bn_eps must be 1e-5 (timm and detectron2 both use it)")
    cfg.pop("key_prefix", None)  # converted files have no prefix
    if "preset" in cfg and not isinstance(cfg["preset"], str):
        raise ConvertError("--config 'preset' must be a string")
    return cfg


# --------------------------------------------------------------------------------------
# Expected tensors of a config (timm names)


def expected_shapes(cfg: Mapping) -> "OrderedDict[str, Tuple[int, ...]]":
    """timm state_dict keys (without num_batches_tracked) and shapes for `cfg` (spec 1.4-1.8)."""
    out: "OrderedDict[str, Tuple[int, ...]]" = OrderedDict()

    def bn(p: str, c: int) -> None:
        for f in BN_FIELDS:
            out[f"{p}.bn.{f}"] = (c,)

    def conv(p: str, cin: int, cout: int, k: int) -> None:
        out[f"{p}.conv.weight"] = (cout, cin, k, k)
        bn(p, cout)

    def sep(p: str, cin: int, cout: int) -> None:
        out[f"{p}.conv_dw.weight"] = (cin, 1, 3, 3)
        out[f"{p}.conv_pw.weight"] = (cout, cin, 1, 1)
        bn(p, cout)

    stem, mids, outs = cfg["stem_chs"], cfg["stage_conv_chs"], cfg["stage_out_chs"]
    L, dw = cfg["layer_per_block"], cfg["depthwise"]
    conv("stem.0", cfg["in_chans"], stem[0], 3)
    for i in (1, 2):
        if dw:
            sep(f"stem.{i}", stem[i - 1], stem[i])
        else:
            conv(f"stem.{i}", stem[i - 1], stem[i], 3)
    in_list = [stem[2]] + list(outs[:3])
    for i in range(4):
        nb = cfg["block_per_stage"][i]
        for j in range(nb):
            cin = in_list[i] if j == 0 else outs[i]
            p = f"stages.{i}.blocks.{j}"
            if dw and cin != mids[i]:
                conv(f"{p}.conv_reduction", cin, mids[i], 1)
            for l in range(L):
                if dw:
                    sep(f"{p}.conv_mid.{l}", mids[i], mids[i])
                else:
                    conv(f"{p}.conv_mid.{l}", cin if l == 0 else mids[i], mids[i], 3)
            conv(f"{p}.conv_concat", cin + L * mids[i], outs[i], 1)
            if cfg["attn"] == "ese" and (cfg["attn_all_blocks"] or j == nb - 1):
                out[f"{p}.attn.fc.weight"] = (outs[i], outs[i], 1, 1)
                out[f"{p}.attn.fc.bias"] = (outs[i],)
    if not cfg["features_only"] and cfg["num_classes"] > 0:
        out["head.fc.weight"] = (cfg["num_classes"], outs[3])
        out["head.fc.bias"] = (cfg["num_classes"],)
    return out


# --------------------------------------------------------------------------------------
# Key names: detectron2 <-> timm, timm features-only -> timm

_D2_MOD = {"conv": "conv", "norm": "bn", "dw_conv3x3": "conv_dw", "pw_conv1x1": "conv_pw", "pw_norm": "bn"}
_D2_STEM = re.compile(r"^stem\.stem_([1-3])/(conv|norm|dw_conv3x3|pw_conv1x1|pw_norm)\.(\w+)$")
_D2_RED = re.compile(r"^stage([2-5])\.OSA\1_(\d+)\.conv_reduction\.OSA\1_\2_reduction_0/(conv|norm)\.(\w+)$")
_D2_MID = re.compile(
    r"^stage([2-5])\.OSA\1_(\d+)\.layers\.(\d+)\.OSA\1_\2_\3/(conv|norm|dw_conv3x3|pw_conv1x1|pw_norm)\.(\w+)$")
_D2_CAT = re.compile(r"^stage([2-5])\.OSA\1_(\d+)\.concat\.OSA\1_\2_concat/(conv|norm)\.(\w+)$")
_D2_ESE = re.compile(r"^stage([2-5])\.OSA\1_(\d+)\.ese\.fc\.(weight|bias)$")
_D2_HINT = re.compile(r"^stem\.stem_\d/|^stage\d\.OSA\d_\d+\.")
_TIMM_HINT = re.compile(r"^(stem|stages)[._]\d+\.")
_FEAT_NAME = re.compile(r"^(stem|stages)_(\d+)\.")


def d2_key_to_timm(key: str) -> Optional[str]:
    """One detectron2 key (prefix stripped) -> its timm name (spec 3.4); None if it has none."""
    m = _D2_STEM.match(key)
    if m:
        n, mod, f = m.groups()
        return f"stem.{int(n) - 1}.{_D2_MOD[mod]}.{f}"
    m = _D2_RED.match(key)
    if m:
        s, b, mod, f = m.groups()
        if int(b) < 1:
            return None
        return f"stages.{int(s) - 2}.blocks.{int(b) - 1}.conv_reduction.{_D2_MOD[mod]}.{f}"
    m = _D2_MID.match(key)
    if m:
        s, b, l, mod, f = m.groups()
        if int(b) < 1:
            return None
        return f"stages.{int(s) - 2}.blocks.{int(b) - 1}.conv_mid.{int(l)}.{_D2_MOD[mod]}.{f}"
    m = _D2_CAT.match(key)
    if m:
        s, b, mod, f = m.groups()
        if int(b) < 1:
            return None
        return f"stages.{int(s) - 2}.blocks.{int(b) - 1}.conv_concat.{_D2_MOD[mod]}.{f}"
    m = _D2_ESE.match(key)
    if m:
        s, b, f = m.groups()
        if int(b) < 1:
            return None
        return f"stages.{int(s) - 2}.blocks.{int(b) - 1}.attn.fc.{f}"
    return None


_T_STEM = re.compile(r"^stem\.(\d)\.(conv|conv_dw|conv_pw|bn)\.(\w+)$")
_T_BLOCK = re.compile(r"^stages\.(\d)\.blocks\.(\d+)\.(conv_reduction|conv_concat|conv_mid\.(\d+))\.(conv|conv_dw|conv_pw|bn)\.(\w+)$")
_T_ATTN = re.compile(r"^stages\.(\d)\.blocks\.(\d+)\.attn\.fc\.(weight|bias)$")


def timm_key_to_d2(key: str, depthwise: bool) -> Optional[str]:
    """One timm key -> its detectron2 name (spec 3.4, reverse); None for keys detectron2 lacks."""
    if key.endswith(".num_batches_tracked") or key.startswith("head."):
        return None
    m = _T_STEM.match(key)
    if m:
        i, mod, f = int(m.group(1)), m.group(2), m.group(3)
        separable = depthwise and i > 0
        name = {"conv": "conv", "conv_dw": "dw_conv3x3", "conv_pw": "pw_conv1x1",
                "bn": "pw_norm" if separable else "norm"}[mod]
        return f"stem.stem_{i + 1}/{name}.{f}"
    m = _T_BLOCK.match(key)
    if m:
        s, b, part, l, mod, f = m.groups()
        s, b = int(s) + 2, int(b) + 1
        head = f"stage{s}.OSA{s}_{b}"
        if part == "conv_reduction":
            return f"{head}.conv_reduction.OSA{s}_{b}_reduction_0/{'norm' if mod == 'bn' else mod}.{f}"
        if part == "conv_concat":
            return f"{head}.concat.OSA{s}_{b}_concat/{'norm' if mod == 'bn' else mod}.{f}"
        name = {"conv": "conv", "conv_dw": "dw_conv3x3", "conv_pw": "pw_conv1x1",
                "bn": "pw_norm" if depthwise else "norm"}[mod]
        return f"{head}.layers.{l}.OSA{s}_{b}_{l}/{name}.{f}"
    m = _T_ATTN.match(key)
    if m:
        s, b, f = m.groups()
        s, b = int(s) + 2, int(b) + 1
        return f"stage{s}.OSA{s}_{b}.ese.fc.{f}"
    return None


def rename_d2_to_timm(sd: Mapping) -> Tuple["OrderedDict", Dict[str, str]]:
    """Returns (timm-named dict, timm name -> original name). Keys without a timm name keep
    their detectron2 name (they are then reported as unexpected)."""
    out: "OrderedDict" = OrderedDict()
    origin: Dict[str, str] = {}
    for k, v in sd.items():
        t = d2_key_to_timm(k) or k
        if t in out:
            raise ConvertError(f"detectron2 keys '{origin[t]}' and '{k}' both map to '{t}'")
        out[t] = v
        origin[t] = k
    return out, origin


def rename_timm_to_d2(sd: Mapping, depthwise: bool) -> "OrderedDict":
    """timm state dict -> detectron2 names (drops num_batches_tracked and head.*, spec 3.4)."""
    out: "OrderedDict" = OrderedDict()
    for k, v in sd.items():
        if k.endswith(".num_batches_tracked") or k.startswith("head."):
            continue
        d = timm_key_to_d2(k, depthwise)
        if d is None:
            raise ConvertError(f"timm key '{k}' has no detectron2 name")
        out[d] = v
    return out


# --------------------------------------------------------------------------------------
# Reading checkpoints


def _looks_like_safetensors(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return head[8:9] == b"{" and 0 < n < (1 << 30)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def load_checkpoint(path: str, use_ema: bool = False) -> Tuple["OrderedDict", str]:
    """Reads a checkpoint; returns (flat dict of tensors, description of the nesting)."""
    import torch

    if not os.path.exists(path):
        raise ConvertError(f"checkpoint not found: {path}")
    if not os.path.isfile(path):
        raise ConvertError(f"checkpoint is not a file: {path}")
    if path.endswith(".safetensors") or _looks_like_safetensors(path):
        try:
            from safetensors.torch import load_file
            return OrderedDict(load_file(path, device="cpu")), "safetensors"
        except Exception as e:  # safetensors raises several types for bad files
            raise ConvertError(f"cannot read safetensors file {path}: {_first_line(e)}") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (bad zip), EOFError, ...
        text = str(e)
        m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n\n|$)", text, re.S)
        why = " ".join(m.group(1).split()) if m else _first_line(e)
        raise ConvertError(f"cannot read checkpoint {path} with torch.load(weights_only=True): {why[:200]} "
                           "(expected a file saved from a dict of tensors, e.g. torch.save(model.state_dict()))"
                           ) from None
    where = []
    for _ in range(3):
        if not isinstance(obj, Mapping):
            break
        order = ("state_dict_ema", "model_ema", "state_dict", "model") if use_ema else ("state_dict", "model")
        nxt = next((k for k in order if isinstance(obj.get(k), Mapping)), None)
        if nxt is None:
            break
        where.append(nxt)
        obj = obj[nxt]
    if not isinstance(obj, Mapping):
        raise ConvertError(f"{path} holds a {type(obj).__name__}, not a dict of tensors")
    tensors = OrderedDict((k, v) for k, v in obj.items() if isinstance(k, str) and torch.is_tensor(v))
    if not tensors:
        keys = ", ".join(list(map(str, obj.keys()))[:10])
        raise ConvertError(f"no tensors found in {path} (keys: {keys or 'none'})")
    other = len(obj) - len(tensors)
    if other:
        _note(f"ignored {other} non-tensor entries of the checkpoint")
    return tensors, ("/".join(where) if where else "top level")


def find_prefix(keys: Sequence[str]) -> str:
    found = set()
    for k in keys:
        for a in PREFIX_ANCHORS:
            if k.endswith(a):
                p = k[: -len(a)]
                if p == "" or p.endswith("."):
                    found.add(p)
    if not found:
        raise ConvertError("no VoVNet stem found: expected a key ending in "
                           + " or ".join(f"'{a}'" for a in PREFIX_ANCHORS)
                           + f" (first keys: {', '.join(list(keys)[:5])})")
    if len(found) > 1:
        raise ConvertError(f"several VoVNet backbones in the checkpoint, prefixes {sorted(found)}; "
                           "choose one with --strip-prefix")
    return found.pop()


def strip_prefix(sd: Mapping, prefix: str) -> "OrderedDict":
    if not prefix:
        return OrderedDict(sd)
    out = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
    if not out:
        raise ConvertError(f"no key starts with the prefix '{prefix}' (first keys: {', '.join(list(sd)[:5])})")
    ignored = [k for k in sd if not k.startswith(prefix)]
    if ignored:
        _note(f"ignored {len(ignored)} keys outside prefix '{prefix}' (e.g. {ignored[0]})")
    return out


def detect_family(keys: Sequence[str]) -> str:
    if any(_D2_HINT.match(k) for k in keys):
        return "detectron2"
    if any(_TIMM_HINT.match(k) for k in keys):
        return "timm"
    raise ConvertError("cannot tell the key style: neither detectron2 names (stem.stem_1/..., stage2.OSA2_1...) "
                       "nor timm names (stem.0..., stages.0.blocks...)")


# --------------------------------------------------------------------------------------
# Inferring a config from shapes (timm names)


def infer_config(shapes: Mapping[str, Tuple[int, ...]], family: str,
                 residual: Optional[bool] = None) -> Tuple[dict, str]:
    """Config from tensor shapes; returns (config, how residual was decided). `residual`:
    the value given by the user, if any (it has no tensors)."""

    def get(k: str) -> Tuple[int, ...]:
        if k not in shapes:
            raise ConvertError(f"cannot infer the config: key '{k}' is missing (give the config with --config JSON)")
        return shapes[k]

    dw = "stem.1.conv_dw.weight" in shapes
    w0 = get("stem.0.conv.weight")
    if len(w0) != 4:
        raise ConvertError(f"cannot infer the config: 'stem.0.conv.weight' has shape {list(w0)}")
    pw = "conv_pw" if dw else "conv"
    stem = [w0[0], get(f"stem.1.{pw}.weight")[0], get(f"stem.2.{pw}.weight")[0]]
    blocks: Dict[int, set] = {}
    for k in shapes:
        m = re.match(r"^stages\.(\d+)\.blocks\.(\d+)\.", k)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    if sorted(blocks) != [0, 1, 2, 3]:
        raise ConvertError(f"cannot infer the config: expected stages 0..3, found stages {sorted(blocks)}")
    bps = []
    for i in range(4):
        b = sorted(blocks[i])
        if b != list(range(len(b))):
            raise ConvertError(f"cannot infer the config: stage {i} has blocks {b} (not 0..n-1)")
        bps.append(len(b))
    layers = sorted({int(m.group(1)) for k in shapes
                     for m in [re.match(r"^stages\.0\.blocks\.0\.conv_mid\.(\d+)\.", k)] if m})
    if not layers or layers != list(range(len(layers))):
        raise ConvertError(f"cannot infer the config: stages.0.blocks.0 has conv_mid layers {layers}")
    mids = [get(f"stages.{i}.blocks.0.conv_mid.0.{pw}.weight")[0] for i in range(4)]
    outs = [get(f"stages.{i}.blocks.0.conv_concat.conv.weight")[0] for i in range(4)]
    has_attn = any(k.endswith(".attn.fc.weight") for k in shapes)
    attn_all = False
    if has_attn:
        attn_all = family == "detectron2" or any(
            f"stages.{i}.blocks.{j}.attn.fc.weight" in shapes for i in range(4) for j in range(bps[i] - 1))
    cfg = dict(stem_chs=stem, stage_conv_chs=mids, stage_out_chs=outs, layer_per_block=len(layers),
               block_per_stage=bps, residual=False, depthwise=dw, attn="ese" if has_attn else "",
               attn_all_blocks=attn_all, in_chans=w0[1],
               num_classes=shapes["head.fc.weight"][0] if "head.fc.weight" in shapes else 0)
    # `residual` has no tensors: detectron2 always has it; timm: take it from the matching preset.
    if residual is not None:
        cfg["residual"] = residual
        how = "given"
    elif family == "detectron2":
        cfg["residual"] = True
        how = "detectron2 (always residual)"
    else:
        match = [n for n, p in PRESETS.items()
                 if all(p[k] == cfg[k] for k in SHAPE_KEYS if k != "residual")]
        if match:
            cfg["residual"] = PRESETS[match[0]]["residual"]
            how = f"matches timm preset {match[0]}"
        elif max(bps) == 1:
            cfg["residual"] = has_attn  # no effect with one block per stage; V2 (eSE) presets set it
            how = "no effect (one block per stage)"
        else:
            raise ConvertError("cannot infer 'residual' (it has no tensors) and the shapes match no timm preset; "
                               "give it: --config '{\"residual\": true}' (or false)")
    return cfg, how


# --------------------------------------------------------------------------------------
# Checking and writing


def check_fit(tensors: Mapping, cfg: Mapping, origin: Optional[Mapping[str, str]] = None) -> None:
    """Refuses (ConvertError listing the keys) unless `tensors` has exactly the keys and shapes of `cfg`."""
    import torch

    origin = origin or {}
    want = expected_shapes(cfg)
    missing = [k for k in want if k not in tensors]
    unexpected = [k for k in tensors if k not in want]
    mismatch = [k for k in want if k in tensors and tuple(tensors[k].shape) != want[k]]
    bad_dtype = [k for k in want if k in tensors and not tensors[k].is_floating_point()]
    nonfinite = [k for k in want if k in tensors and k not in mismatch and k not in bad_dtype
                 and not bool(torch.isfinite(tensors[k]).all())]
    if not (missing or unexpected or mismatch or bad_dtype or nonfinite):
        return

    def name(k: str) -> str:
        o = origin.get(k, k)
        return k if o == k else f"{o} (= {k})"

    lines = [f"the checkpoint does not fit the vovnet config {compact_json(cfg)}:"]

    def section(title: str, keys: List[str], fmt) -> None:
        if keys:
            lines.append(f"  {title} ({len(keys)}):")
            lines.extend(f"    {fmt(k)}" for k in keys[:MAX_LISTED])
            if len(keys) > MAX_LISTED:
                lines.append(f"    ... and {len(keys) - MAX_LISTED} more")

    section("missing keys", missing, lambda k: f"{k} {list(want[k])}")
    section("unexpected keys", unexpected, lambda k: f"{name(k)} {list(tensors[k].shape)}")
    section("shape mismatches", mismatch,
            lambda k: f"{name(k)}: checkpoint {list(tensors[k].shape)}, config expects {list(want[k])}")
    section("not floating point", bad_dtype, lambda k: f"{name(k)}: {tensors[k].dtype}")
    section("non-finite values", nonfinite, name)
    raise ConvertError("\n".join(lines))


def compact_json(cfg: Mapping) -> str:
    return json.dumps(cfg, separators=(",", ":"))


def write_atomic(path: str, tensors: Mapping, metadata: Mapping[str, str]) -> None:
    from safetensors.torch import save_file

    path = os.path.abspath(path)
    d = os.path.dirname(path)
    if not os.path.isdir(d):
        raise ConvertError(f"output folder does not exist: {d}")
    if os.path.isdir(path):
        raise ConvertError(f"output is a folder: {path}")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    os.close(fd)
    try:
        save_file(dict(tensors), tmp, metadata=dict(metadata))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as e:
        raise ConvertError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def randomize_bn(model, seed: int) -> None:
    """Non-trivial BN statistics / affine and eSE biases (timm's init leaves BN at identity),
    so that outputs exercise every parameter. For tests and benchmarks only."""
    import torch

    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            elif n.endswith("attn.fc") and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g))


def timm_state_dict(name: str, num_classes: int, seed: int, random_bn: bool) -> "OrderedDict":
    import torch
    import timm

    preset_config(name)  # refuses unsupported names before timm is asked
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    if random_bn:
        randomize_bn(model, seed)
    return OrderedDict(model.state_dict())


def build_timm_features_model(cfg: Mapping, tensors: Mapping, name: Optional[str] = None):
    """A timm features_only model carrying `tensors` (timm base names). Used by the benchmark
    and the self-test. `name`: the timm preset (else the closest preset is patched)."""
    import timm

    if name is None:
        name = next(n for n, p in PRESETS.items() if all(p[k] == cfg[k] for k in SHAPE_KEYS))
    model = timm.create_model(name, pretrained=False, features_only=True, out_indices=tuple(cfg["out_indices"]))
    renamed = {re.sub(r"^(stem|stages)\.(\d+)\.", r"\1_\2.", k): v for k, v in tensors.items()}
    res = model.load_state_dict(renamed, strict=False)
    bad = [k for k in res.missing_keys if not k.endswith("num_batches_tracked")]
    if bad or res.unexpected_keys:
        raise ConvertError(f"timm model {name} does not take the weights: missing {bad[:5]}, "
                           f"unexpected {res.unexpected_keys[:5]}")
    return model.eval()


# --------------------------------------------------------------------------------------
# Conversion


def convert(args: argparse.Namespace) -> Tuple[dict, int]:
    import torch

    cfg_arg = parse_config_arg(args.config) if args.config else {}
    origin: Dict[str, str] = {}
    family = "timm"
    if convert_vit.is_vit_name(args.timm) and not args.checkpoint:
        return _convert_vit(args, None, "", cfg_arg)
    if (args.img_size or args.token_clustering) and not args.checkpoint:
        raise ConvertError("--img-size and --token-clustering apply to ViT models only")
    if args.checkpoint:
        raw, nesting = load_checkpoint(args.checkpoint, use_ema=args.ema)
        if convert_biformer.looks_like_biformer(list(raw)):
            return _convert_biformer(args, raw, nesting, cfg_arg)
        if convert_vit.looks_like_vit(list(raw)):
            return _convert_vit(args, raw, nesting, cfg_arg)
        if args.img_size or args.token_clustering:
            raise ConvertError("--img-size and --token-clustering apply to ViT checkpoints only")
        if args.strip_prefix is not None:
            prefix = args.strip_prefix
        else:
            prefix = find_prefix(list(raw))
        sd = strip_prefix(raw, prefix)
        family = args.family if args.family != "auto" else detect_family(list(sd))
        if family == "detectron2":
            sd, origin = rename_d2_to_timm(sd)
        else:
            sd2 = OrderedDict()
            for k, v in sd.items():
                t = _FEAT_NAME.sub(r"\1.\2.", k)
                if t in sd2:
                    raise ConvertError(f"keys '{origin.get(t, t)}' and '{k}' both map to '{t}'")
                sd2[t] = v
                origin[t] = k
            sd = sd2
        source = (f"checkpoint {os.path.basename(args.checkpoint)} sha256:{_sha256(args.checkpoint)[:16]} "
                  f"({nesting}, family {family}, prefix '{prefix}')")
    else:
        nc = args.num_classes if args.num_classes is not None else (1000 if args.features_only is False else 0)
        sd = timm_state_dict(args.timm, nc, args.seed, args.random_bn)
        import timm
        source = (f"timm {timm.__version__} {args.timm} pretrained=False seed={args.seed}"
                  + (" random-bn" if args.random_bn else ""))

    dropped = [k for k in sd if k.endswith(".num_batches_tracked")]
    for k in dropped:
        del sd[k]

    # Config: preset (--timm or "preset" in --config), else inferred from the shapes; then --config, flags.
    preset_name = args.timm or cfg_arg.pop("preset", None)
    residual_how = None
    if preset_name:
        cfg = preset_config(preset_name)
        if family == "detectron2":
            cfg["attn_all_blocks"] = True
        if "head.fc.weight" in sd:
            cfg["num_classes"] = int(sd["head.fc.weight"].shape[0])
        source += f", config of timm preset {preset_name}" if args.checkpoint else ""
    elif all(k in cfg_arg for k in SHAPE_KEYS):
        cfg = dict(CONFIG_DEFAULTS)
        cfg["attn_all_blocks"] = family == "detectron2"
        if "head.fc.weight" in sd:
            cfg["num_classes"] = int(sd["head.fc.weight"].shape[0])
    else:
        cfg, residual_how = infer_config({k: tuple(v.shape) for k, v in sd.items()}, family,
                                         cfg_arg.get("residual"))
        cfg.update({k: v for k, v in CONFIG_DEFAULTS.items() if k not in cfg})
        if "residual" not in cfg_arg:
            _note(f"residual={str(cfg['residual']).lower()}: {residual_how}")
    cfg.update(cfg_arg)
    if args.features_only is not None:
        cfg["features_only"] = args.features_only
    if args.out_indices is not None:
        cfg["out_indices"] = args.out_indices
    if cfg["features_only"]:
        head = [k for k in sd if k.startswith("head.")]
        if head:
            _note(f"dropped the classifier ({', '.join(head)}); use --classifier to keep it")
        for k in head:
            del sd[k]
    else:
        if family == "detectron2":
            raise ConvertError("--classifier: detectron2 checkpoints have no classifier head")
        if cfg.get("num_classes", 0) <= 0:
            raise ConvertError("--classifier: the checkpoint has no classifier head (head.fc.weight); "
                               "use --features-only")
    cfg = validate_config(cfg)
    check_fit(sd, cfg, origin)

    want = expected_shapes(cfg)
    tensors = OrderedDict((k, sd[k].detach().to(torch.float32).contiguous().clone()) for k in want)
    metadata = {
        "densekit.format": FORMAT_VERSION,
        "densekit.architecture": ARCHITECTURE,
        "densekit.config": compact_json(cfg),
        "densekit.source": source,
    }
    write_atomic(args.output, tensors, metadata)
    return cfg, len(tensors)


def _convert_biformer(args: argparse.Namespace, raw: Mapping, nesting: str, cfg_arg: dict) -> Tuple[dict, int]:
    """An official BiFormer checkpoint (names unchanged; see tools/convert_biformer.py)."""
    prefix = args.strip_prefix if args.strip_prefix is not None else convert_biformer.find_prefix(list(raw))
    sd = strip_prefix(raw, prefix)
    try:
        cfg, tensors = convert_biformer.convert_state_dict(sd, cfg_arg)
    except convert_biformer.BiFormerConvertError as e:
        raise ConvertError(str(e)) from None
    source = (f"checkpoint {os.path.basename(args.checkpoint)} sha256:{_sha256(args.checkpoint)[:16]} "
              f"({nesting}, BiFormer official names, prefix '{prefix}')")
    metadata = {
        "densekit.format": FORMAT_VERSION,
        "densekit.architecture": convert_biformer.ARCHITECTURE,
        "densekit.config": compact_json(cfg),
        "densekit.source": source,
    }
    write_atomic(args.output, tensors, metadata)
    return cfg, len(tensors)


def _convert_vit(args: argparse.Namespace, raw: Optional[Mapping], nesting: str, cfg_arg: dict) -> Tuple[dict, int]:
    """A timm ViT: `--timm vit_*` random init (seed) or a checkpoint with timm names (see tools/convert_vit.py)."""
    heads = None
    if raw is None:
        import timm
        try:
            sd, heads = convert_vit.random_timm_state_dict(args.timm, args.seed, args.random_bn)
        except convert_vit.ViTConvertError as e:
            raise ConvertError(str(e)) from None
        source = (f"timm {timm.__version__} {args.timm} pretrained=False seed={args.seed}"
                  + (" random-norms" if args.random_bn else ""))
    else:
        prefix = args.strip_prefix if args.strip_prefix is not None else convert_vit.find_prefix(list(raw))
        sd = strip_prefix(raw, prefix)
        source = (f"checkpoint {os.path.basename(args.checkpoint)} sha256:{_sha256(args.checkpoint)[:16]} "
                  f"({nesting}, timm ViT names, prefix '{prefix}')")
    try:
        cfg, tensors, notes = convert_vit.convert_state_dict(sd, heads, cfg_arg, args.img_size, args.token_clustering)
    except convert_vit.ViTConvertError as e:
        raise ConvertError(str(e)) from None
    for n in notes:
        _note(n)
    metadata = {
        "densekit.format": FORMAT_VERSION,
        "densekit.architecture": convert_vit.ARCHITECTURE,
        "densekit.config": compact_json(cfg),
        "densekit.source": source,
    }
    write_atomic(args.output, tensors, metadata)
    return cfg, len(tensors)


def parse_out_indices(text: str) -> List[int]:
    try:
        v = [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from None
    if not v or any(i not in range(5) for i in v) or len(set(v)) != len(v):
        raise argparse.ArgumentTypeError(f"expected distinct feature indices in 0..4, got '{text}'")
    return v


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Convert a VoVNet (timm preset, timm or detectron2/CenterMask checkpoint) or an official BiFormer "
                    "checkpoint (rayleizhu/BiFormer names, classification or mmseg dense; detected) into a DenseKit "
                    "safetensors file: timm tensor names, float32, metadata densekit.format / architecture / "
                    "config / source. Refuses checkpoints whose names or shapes do not fit the config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  convert.py --timm ese_vovnet19b_dw -o v19dw.safetensors          # random init\n"
               "  convert.py --timm ese_vovnet39b --checkpoint pytorch_model.bin -o v39.safetensors\n"
               "  convert.py --checkpoint model_final.pth -o centermask_v39.safetensors   # detectron2, auto\n"
               "  convert.py --checkpoint ck.pth --strip-prefix img_backbone. --config '{\"residual\": true}' -o x.safetensors\n"
               "  convert.py --self-test\n"
               f"timm presets: {', '.join(PRESETS)}")
    src = p.add_argument_group("source (at least one)")
    src.add_argument("--timm", metavar="NAME",
                     help="timm VoVNet preset; random init (pretrained=False) unless --checkpoint is given, "
                          "which is then checked against this preset")
    src.add_argument("--checkpoint", metavar="FILE",
                     help=".pth/.pt/.bin (torch.load weights_only=True) or .safetensors; weights may be nested "
                          "under 'state_dict' or 'model'")
    p.add_argument("--family", choices=("auto", "timm", "detectron2"), default="auto",
                   help="key names of the checkpoint (default: detected)")
    p.add_argument("--strip-prefix", metavar="PREFIX",
                   help="keep only keys starting with PREFIX and strip it (default: detected as the text before "
                        "the stem's first conv weight, e.g. 'backbone.bottom_up.', 'module.'; '' for none)")
    p.add_argument("--config", metavar="JSON",
                   help="config keys (golden vovnet INDEX names, or 'preset') overriding the inferred config; "
                        "inline JSON or a file path")
    p.add_argument("--ema", action="store_true", help="prefer 'state_dict_ema'/'model_ema' in the checkpoint")
    head = p.add_mutually_exclusive_group()
    head.add_argument("--features-only", dest="features_only", action="store_const", const=True, default=None,
                      help="feature maps, no classifier (default)")
    head.add_argument("--classifier", dest="features_only", action="store_const", const=False,
                      help="keep the classification head (num_classes from head.fc.weight)")
    p.add_argument("--out-indices", type=parse_out_indices, metavar="LIST",
                   help="feature indices 0..4 (0: stride 2, 1..4: strides 4..32), default 1,2,3,4")
    p.add_argument("--num-classes", type=int, metavar="N",
                   help="--timm without --checkpoint and --classifier: head width (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="--timm random init: torch seed (default 0)")
    p.add_argument("--random-bn", action="store_true",
                   help="--timm random init: randomise BN statistics/affine and eSE biases (ViT: LayerNorm affines "
                        "and linear biases) (tests, benchmarks)")
    vit = p.add_argument_group("ViT (timm vit_* names / checkpoints with timm ViT keys; tools/convert_vit.py)")
    vit.add_argument("--img-size", metavar="HxW",
                     help="resample pos_embed to this input size (timm resample_abs_pos_embed) and record it")
    vit.add_argument("--token-clustering", action="store_true",
                     help="add the issue-6 token clustering settings (alpha 4, beta depth, grid/2, window 5, "
                          "5 iterations, t 0.01, recon k 20, t 0.03); --config keys override them")
    p.add_argument("-o", "--output", metavar="FILE", help="output .safetensors (written atomically)")
    p.add_argument("--self-test", action="store_true", help="run the converter's self-test and exit")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test()
    if not args.timm and not args.checkpoint:
        parser.error("give --timm NAME and/or --checkpoint FILE")
    if not args.output:
        parser.error("-o/--output is required")
    if args.checkpoint and (args.random_bn or args.num_classes is not None):
        parser.error("--random-bn and --num-classes apply to --timm random init only")
    if args.timm is not None and args.family == "auto" and not args.checkpoint:
        args.family = "timm"
    try:
        cfg, n = convert(args)
    except ConvertError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{PROG}: error: out of memory", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    print(f"wrote {args.output}: {n} tensors, config {compact_json(cfg)}")
    return 0


# --------------------------------------------------------------------------------------
# Self-test


def self_test() -> int:
    import shutil
    import subprocess
    import torch
    import timm
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    results: List[Tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        results.append((name, bool(ok), detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""), flush=True)

    def run(argv: List[str]) -> Tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
        return rc, out.getvalue(), err.getvalue()

    tmp = tempfile.mkdtemp(prefix="densekit-convert-test-")
    try:
        # 1. Preset table = installed timm's model_cfgs; expected keys/shapes = timm state dicts.
        from timm.models import vovnet as tv
        same = all({k: tv.model_cfgs[n][k] for k in SHAPE_KEYS} == {k: PRESETS[n][k] for k in SHAPE_KEYS}
                   for n in PRESETS)
        check("preset table matches timm model_cfgs", same, f"timm {timm.__version__}")
        bad = []
        for n in PRESETS:
            with torch.device("meta"):
                m = tv.VovNet(tv.model_cfgs[n], num_classes=7)  # ese_vovnet19b is not registered
            got = {k: tuple(v.shape) for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
            cfg = dict(preset_config(n), features_only=False, num_classes=7)
            if got != dict(expected_shapes(cfg)):
                bad.append(n)
        check("expected keys/shapes = timm state_dict for all 9 presets", not bad, f"differ: {bad}" if bad else "")

        # 2. A timm model converts.
        out = os.path.join(tmp, "v19dw.safetensors")
        rc, so, se = run(["--timm", "ese_vovnet19b_dw", "--random-bn", "-o", out])
        ok = rc == 0 and os.path.isfile(out)
        detail = se.strip()
        if ok:
            with safe_open(out, "pt") as f:
                meta = f.metadata()
            cfg = json.loads(meta["densekit.config"])
            conv_t = load_file(out)
            torch.manual_seed(0)
            ref = timm.create_model("ese_vovnet19b_dw", pretrained=False, num_classes=0)
            randomize_bn(ref, 0)
            ref_sd = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
            ok = (meta["densekit.format"] == "1" and meta["densekit.architecture"] == "vovnet"
                  and list(cfg) == list(CONFIG_KEYS) and cfg["key_style"] == "timm"
                  and cfg["out_indices"] == [1, 2, 3, 4] and cfg["features_only"] is True
                  and {k: PRESETS["ese_vovnet19b_dw"][k] for k in SHAPE_KEYS} == {k: cfg[k] for k in SHAPE_KEYS}
                  and set(conv_t) == set(ref_sd)
                  and all(conv_t[k].dtype == torch.float32 and torch.equal(conv_t[k], ref_sd[k]) for k in conv_t)
                  and meta["densekit.config"] == compact_json(cfg))
            detail = f"{len(conv_t)} tensors, config {meta['densekit.config']}"
        check("timm ese_vovnet19b_dw converts (metadata, names, values)", ok, detail)
        if ok:
            m = build_timm_features_model(cfg, conv_t, "ese_vovnet19b_dw")
            x = torch.randn(1, 3, 64, 64)
            with torch.no_grad():
                a = m(x)
                b = timm.create_model("ese_vovnet19b_dw", pretrained=False, features_only=True,
                                      out_indices=(1, 2, 3, 4))
                b.load_state_dict({re.sub(r"^(stem|stages)\.(\d+)\.", r"\1_\2.", k): v
                                   for k, v in ref.state_dict().items() if not k.startswith("head.")})
                bo = b.eval()(x)
            check("converted file loads into timm and reproduces its features",
                  all(torch.equal(p, q) for p, q in zip(a, bo)),
                  "shapes " + ", ".join(str(list(t.shape)) for t in a))

        # 3. timm -> detectron2 -> timm round trip (depthwise and plain).
        for n in ("ese_vovnet19b_dw", "ese_vovnet39b"):
            torch.manual_seed(1)
            sd = OrderedDict((k, v) for k, v in timm.create_model(n, pretrained=False).state_dict().items()
                             if not k.endswith("num_batches_tracked") and not k.startswith("head."))
            d2 = rename_timm_to_d2(sd, PRESETS[n]["depthwise"])
            back, _ = rename_d2_to_timm(d2)
            ok = list(back) == list(sd) and all(back[k] is sd[k] or torch.equal(back[k], sd[k]) for k in sd)
            check(f"{n}: timm -> detectron2 -> timm gives identical keys and tensors", ok,
                  f"{len(sd)} tensors, e.g. {next(k for k in d2 if 'OSA' in k)}")
            if n == "ese_vovnet19b_dw":
                d2_sd, v19_sd = d2, sd

        # 4. A detectron2 checkpoint ({"model": ...}, backbone.bottom_up. prefix, FPN keys) converts, auto-detected.
        ck = {"model": OrderedDict([("backbone.bottom_up." + k, v.clone()) for k, v in d2_sd.items()]
                                   + [("backbone.fpn_lateral2.weight", torch.zeros(256, 256, 1, 1)),
                                      ("roi_heads.box_predictor.cls_score.bias", torch.zeros(81))]),
              "iteration": 90000}
        ck_path = os.path.join(tmp, "model_final.pth")
        torch.save(ck, ck_path)
        out2 = os.path.join(tmp, "d2.safetensors")
        rc, so, se = run(["--checkpoint", ck_path, "-o", out2])
        ok = rc == 0
        detail = se.strip().splitlines()[-1] if se.strip() else ""
        if ok:
            with safe_open(out2, "pt") as f:
                cfg2 = json.loads(f.metadata()["densekit.config"])
            t2 = load_file(out2)
            want = dict(preset_config("ese_vovnet19b_dw"), attn_all_blocks=True)
            ok = cfg2 == want and set(t2) == set(v19_sd) and all(torch.equal(t2[k], v19_sd[k]) for k in t2)
            detail = compact_json(cfg2)
        check("detectron2 .pth (model/, backbone.bottom_up., FPN keys) converts with inferred config", ok, detail)

        # 5. Golden cases (if present): inferred config = the case's attrs, tensors unchanged.
        gdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "golden", "vovnet")
        gdir = os.path.normpath(gdir) if os.path.isdir(gdir) else "/work/shared/golden/vovnet"
        if os.path.isdir(gdir):
            n_ok, n_all, fails = 0, 0, []
            for fn in sorted(os.listdir(gdir)):
                if not fn.endswith(".safetensors"):
                    continue
                with safe_open(os.path.join(gdir, fn), "pt") as f:
                    case = json.loads(f.metadata()["case"])
                if case["target"] != "vovnet":
                    continue
                n_all += 1
                attrs = case["attrs"]
                params = {k[len("param."):]: v for k, v in load_file(os.path.join(gdir, fn)).items()
                          if k.startswith("param.")}
                p = os.path.join(tmp, "g.safetensors")
                save_file(params, p)
                o = os.path.join(tmp, "g_out.safetensors")
                argv = ["--checkpoint", p, "-o", o]
                if not attrs.get("features_only", True):
                    argv.append("--classifier")
                else:
                    argv += ["--out-indices", ",".join(map(str, attrs["out_indices"]))]
                rc, so, se = run(argv)
                if rc != 0 and "cannot infer 'residual'" in se:
                    rc, so, se = run(argv + ["--config", json.dumps({"residual": attrs["residual"]})])
                if rc != 0:
                    fails.append(f"{fn}: {se.strip().splitlines()[0] if se.strip() else rc}")
                    continue
                with safe_open(o, "pt") as f:
                    got = json.loads(f.metadata()["densekit.config"])
                want = {k: attrs.get(k, CONFIG_DEFAULTS.get(k)) for k in CONFIG_KEYS}
                want["key_style"] = "timm"
                if want["features_only"]:
                    want["num_classes"] = 0
                else:  # out_indices do not matter for a classifier
                    want["out_indices"] = got["out_indices"]
                tensors = load_file(o)
                if got != want:
                    fails.append(f"{fn}: config {got} != {want}")
                    continue
                ref = strip_prefix(params, attrs.get("key_prefix", ""))
                if attrs.get("key_style") == "detectron2":
                    ref, _ = rename_d2_to_timm(ref)
                ref = {k: v for k, v in ref.items() if not k.endswith("num_batches_tracked")}
                if set(ref) != set(tensors) or not all(torch.equal(tensors[k], ref[k]) for k in ref):
                    fails.append(f"{fn}: tensors differ from the case's params")
                    continue
                n_ok += 1
            check(f"golden vovnet cases: inferred config = case attrs ({n_ok}/{n_all})",
                  n_ok == n_all and n_all > 0, "; ".join(fails))

        # 6. Refusal: one tensor of a wrong shape and one missing key, both named, exit code 1,
        #    no traceback, no output written.
        bad_sd = OrderedDict((k, v.clone()) for k, v in v19_sd.items())
        wrong, gone = "stages.2.blocks.0.conv_mid.1.conv_pw.weight", "stages.1.blocks.0.conv_concat.bn.running_var"
        bad_sd[wrong] = torch.zeros(192, 100, 1, 1)
        del bad_sd[gone]
        bad_sd["stages.3.blocks.0.extra.weight"] = torch.zeros(3)
        bad_path = os.path.join(tmp, "bad.pth")
        torch.save(bad_sd, bad_path)
        out3 = os.path.join(tmp, "bad.safetensors")
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--checkpoint", bad_path, "-o", out3],
                           capture_output=True, text=True, timeout=300)
        ok = (r.returncode == 1 and wrong in r.stderr and gone in r.stderr and "stages.3.blocks.0.extra.weight"
              in r.stderr and "Traceback" not in r.stderr and not os.path.exists(out3))
        check("wrong shape + missing key + unexpected key: refused, all named, exit 1", ok,
              " | ".join(l.strip() for l in r.stderr.strip().splitlines()))
        rc, so, se = run(["--timm", "ese_vovnet19b_dw", "--checkpoint", bad_path, "-o", out3])
        check("same checkpoint against --timm ese_vovnet19b_dw: refused", rc == 1 and wrong in se and gone in se)
        d2_bad = OrderedDict(d2_sd)
        d2_bad["stage3.OSA3_1.layers.1.OSA3_1_1/pw_conv1x1.weight"] = torch.zeros(160, 1, 1, 1)
        del d2_bad["stage4.OSA4_1.ese.fc.bias"]
        d2_path = os.path.join(tmp, "d2_bad.pth")
        torch.save({"model": d2_bad}, d2_path)
        rc, so, se = run(["--checkpoint", d2_path, "-o", out3])
        check("detectron2 checkpoint with bad shape + missing key: refused, names in both styles",
              rc == 1 and "stage3.OSA3_1.layers.1.OSA3_1_1/pw_conv1x1.weight" in se
              and "stages.2.blocks.0.attn.fc.bias" in se and not os.path.exists(out3))

        # 7. An existing output survives a refusal (atomic write).
        keep = os.path.join(tmp, "keep.safetensors")
        shutil.copy(out, keep)
        before = _sha256(keep)
        rc, so, se = run(["--checkpoint", bad_path, "-o", keep])
        left = [f for f in os.listdir(tmp) if f.endswith(".tmp")]
        check("refusal leaves an existing output untouched and no temp file", rc == 1 and _sha256(keep) == before
              and not left)

        # 8. Prefixes and wrappers: module._orig_mod., state_dict nesting, features-only names, classifier.
        torch.manual_seed(2)
        m = timm.create_model("ese_vovnet19b_slim", pretrained=False, num_classes=10)
        sd = m.state_dict()
        p = os.path.join(tmp, "wrapped.pt")
        torch.save({"state_dict": {"module._orig_mod." + k: v for k, v in sd.items()}, "epoch": 3}, p)
        o = os.path.join(tmp, "wrapped.safetensors")
        rc, so, se = run(["--checkpoint", p, "--classifier", "-o", o])
        ok = rc == 0
        if ok:
            with safe_open(o, "pt") as f:
                c = json.loads(f.metadata()["densekit.config"])
            ok = c["num_classes"] == 10 and c["features_only"] is False and "head.fc.weight" in load_file(o)
        check("state_dict nesting + module._orig_mod. prefix + --classifier (head kept)", ok, se.strip())
        fm = timm.create_model("ese_vovnet19b_slim", pretrained=False, features_only=True)
        p = os.path.join(tmp, "feat.safetensors")
        save_file({k: v.contiguous() for k, v in fm.state_dict().items()}, p)
        rc, so, se = run(["--checkpoint", p, "--out-indices", "0,2,4", "-o", o])
        ok = rc == 0
        if ok:
            with safe_open(o, "pt") as f:
                c = json.loads(f.metadata()["densekit.config"])
            ok = c["out_indices"] == [0, 2, 4] and "stem.0.conv.weight" in load_file(o)
        check("features_only state dict (stem_0./stages_0. names) converts to base names", ok, se.strip())

        # 9. Expected failures: one line, exit 1, no traceback.
        junk = os.path.join(tmp, "junk.pth")
        with open(junk, "wb") as f:
            f.write(b"not a checkpoint at all")
        cases = [
            (["--checkpoint", os.path.join(tmp, "nope.pth"), "-o", o], "checkpoint not found"),
            (["--checkpoint", junk, "-o", o], "cannot read checkpoint"),
            (["--timm", "resnet50", "-o", o], "not a supported timm VoVNet preset"),
            (["--timm", "eca_vovnet39b", "-o", o], "out of scope"),
            (["--timm", "ese_vovnet19b_dw", "-o", os.path.join(tmp, "no", "dir", "x.safetensors")],
             "output folder does not exist"),
            (["--timm", "ese_vovnet19b_dw", "--config", "{bad", "-o", o], "not valid JSON"),
        ]
        for argv, needle in cases:
            rc, so, se = run(argv)
            check(f"error '{needle}'", rc == 1 and needle in se and len(se.strip().splitlines()) == 1
                  and "Traceback" not in se, se.strip())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    failed = [n for n, ok, _ in results if not ok]
    print(f"\nself-test: {len(results) - len(failed)}/{len(results)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
