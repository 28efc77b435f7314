#!/usr/bin/env python3
"""Checks tools/polymax_torch.py's head against the kMaX golden cases (../shared/golden/kmax/kmax_head_*):
loads the case's reference parameters (strict: every name must match), runs pixel decoder + transformer decoder
on the case's res2..res5 and compares every output with the case's tolerances.

    tools/.venv/bin/python tools/check_polymax_golden.py [case.safetensors ...]
"""
import glob, json, os, sys
import torch
from safetensors import safe_open
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from polymax_torch import KMaXPixelDecoder, KMaXTransformerDecoder  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Head(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        ic = a["in_channels"]
        ic = [ic["res2"], ic["res3"], ic["res4"], ic["res5"]] if isinstance(ic, dict) else ic
        self.pixel_decoder = KMaXPixelDecoder(ic, a["dec_layers"], a["dec_channels"], a["layer_types"], a["num_heads"])
        self.predictor = KMaXTransformerDecoder([4 * c for c in a["dec_channels"]], a["trans_dec_layers"], a["num_clusters"],
                                                a["query_dim"], a["trans_base_filters"], a["num_heads"], a["ffn_dim"],
                                                a["pred_mid_channels"], a["embed_dim"], a["num_classes"], a["void_prior_prob"])


def main():
    cases = sys.argv[1:] or sorted(glob.glob(os.path.join(ROOT, "..", "shared", "golden", "kmax", "kmax_head_*.safetensors")))
    bad = 0
    for path in cases:
        f = safe_open(path, "pt")
        case = json.loads(f.metadata()["case"])
        head = Head(case["attrs"]).eval()
        sd = {k[6:]: f.get_tensor(k) for k in f.keys() if k.startswith("param.")}
        missing, unexpected = head.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            print("key mismatch", missing[:5], unexpected[:5]); bad += 1; continue
        r = {k: f.get_tensor("input." + k) for k in ("res2", "res3", "res4", "res5")}
        with torch.no_grad():
            feats = head.pixel_decoder(r["res2"], r["res3"], r["res4"], r["res5"])
            o = head.predictor(feats)
        got = dict(mask_logits=o["mask_logits"], class_logits=o["class_logits"], pixel_embedding=o["pixel_embedding"],
                   cluster_centers=o["cluster_centers"], cluster_embeddings=o["cluster_embeddings"])
        for i, (_, _, a) in enumerate(o["aux"]):
            got[f"assignment_{i}"] = a
        for name, tol in case["outputs"].items():
            want = f.get_tensor("output." + name)
            g = got[name].reshape(want.shape)
            if tol.get("exact"):
                ok = torch.equal(g.to(want.dtype), want)
                print(f"{'PASS' if ok else 'FAIL'} {os.path.basename(path)} {name} exact")
            else:
                d = (g - want).abs()
                ok = bool((d <= tol["atol"] + tol["rtol"] * want.abs()).all())
                print(f"{'PASS' if ok else 'FAIL'} {os.path.basename(path)} {name} max_abs={d.max():.2e}")
            bad += not ok
    print("all passed" if not bad else f"{bad} failed")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
