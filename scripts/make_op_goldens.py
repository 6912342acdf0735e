#!/usr/bin/env python3
"""Per-op PyTorch goldens for the TGNet kernels: small, seeded, float32 safetensors files in test/golden/.

Run with Debian's PyTorch (apt-get install -y python3-torch):
  /usr/bin/python3 scripts/make_op_goldens.py [--out test/golden]

Each file holds one op family; tensor names are "<case>.<tensor>". For every case: the inputs, the output,
a random cotangent `dy` (for the loss: the upstream gradient 1) and the gradients of <output, dy> with respect to
every input, from torch.autograd ("d" + input name, e.g. dx, dw, db). Integer settings (stride, padding, groups)
are stored as I64 tensors "<case>.meta" and described in test/golden/README.md.
The dynamic head and the loss are the repository's PyTorch twin's (bench/torch/tgnet_torch.py).
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench", "torch"))
from tgnet_torch import dynamic_head, loss_fn  # noqa: E402


def save_safetensors(path, tensors):
    """F32 / I64 safetensors with a __metadata__ entry naming the generator and the torch version."""
    header, blobs, off = {"__metadata__": {"generator": "scripts/make_op_goldens.py", "torch": torch.__version__}}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        dt = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def vjp(fn, inputs, prefix, out, names):
    """Runs fn(*inputs), draws a cotangent dy, stores inputs, y, dy and d<name> for each input into out."""
    xs = [t.clone().requires_grad_(True) for t in inputs]
    y = fn(*xs)
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, xs, dy)
    for n, x, g in zip(names, xs, grads):
        out[f"{prefix}.{n}"] = x.detach()
        out[f"{prefix}.d{n}"] = g
    out[f"{prefix}.y"] = y.detach()
    out[f"{prefix}.dy"] = dy


def conv3d_goldens():
    out = {}
    # name, N, Cin, Cout, (D, H, W), k, stride, bias
    cases = [
        ("k3s1_bias", 2, 3, 4, (5, 6, 7), 3, 1, True),
        ("k3s2", 2, 3, 5, (5, 7, 9), 3, 2, False),
        ("k3s2_even", 1, 2, 3, (4, 6, 8), 3, 2, True),
        ("k1s1_bias", 2, 5, 3, (3, 5, 7), 1, 1, True),
        ("k1s2", 2, 4, 6, (5, 6, 7), 1, 2, False),
        ("cin1_k3", 2, 1, 4, (5, 7, 6), 3, 1, False),
    ]
    for name, n, ci, co, (d, h, w), k, s, bias in cases:
        pad = k // 2
        x = torch.randn(n, ci, d, h, w)
        wt = torch.randn(co, ci, k, k, k) * (1.0 / (ci * k ** 3)) ** 0.5
        if bias:
            b = torch.randn(co) * 0.1
            vjp(lambda x_, w_, b_: F.conv3d(x_, w_, b_, s, pad), [x, wt, b], name, out, ["x", "w", "b"])
        else:
            vjp(lambda x_, w_: F.conv3d(x_, w_, None, s, pad), [x, wt], name, out, ["x", "w"])
        out[f"{name}.meta"] = torch.tensor([s, pad, 1 if bias else 0], dtype=torch.int64)
    return out


def group_norm_goldens():
    out = {}
    # name, N, C, G, (D, H, W)
    cases = [("g_eq_c", 2, 4, 4, (3, 4, 5)), ("g1", 2, 6, 1, (3, 5, 4)), ("general", 2, 8, 4, (3, 3, 5)),
             ("c32_g16", 1, 32, 16, (2, 3, 3))]
    for name, n, c, g, (d, h, w) in cases:
        x = torch.randn(n, c, d, h, w) * 2 + 0.5
        weight = 1 + 0.1 * torch.randn(c)
        bias = 0.1 * torch.randn(c)
        vjp(lambda x_, w_, b_: F.group_norm(x_, g, w_, b_, 1e-5), [x, weight, bias], name, out, ["x", "weight", "bias"])
        out[f"{name}.meta"] = torch.tensor([g], dtype=torch.int64)
    return out


def ws(w):
    """DoDNet weight standardisation, as the twin's standardize(): (w - mean) / sqrt(var_unbiased + 1e-12) per filter."""
    flat = w.flatten(1)
    return ((flat - flat.mean(1, keepdim=True)) / torch.sqrt(flat.var(1, keepdim=True) + 1e-12)).view_as(w)


def ws_goldens():
    out = {}
    for name, shape in [("k3", (4, 3, 3, 3, 3)), ("k1", (6, 5, 1, 1, 1)), ("cin1_k3", (4, 1, 3, 3, 3))]:
        vjp(ws, [torch.randn(*shape) * 0.2 + 0.05], name, out, ["w"])
    return out


def upsample_goldens():
    out = {}
    for name, shape in [("odd", (2, 3, 3, 4, 5)), ("ones", (1, 2, 1, 1, 2))]:
        vjp(lambda x_: F.interpolate(x_, scale_factor=2, mode="trilinear", align_corners=False),
            [torch.randn(*shape)], name, out, ["x"])
    return out


def gap_goldens():
    out = {}
    vjp(lambda x_: F.adaptive_avg_pool3d(x_, 1).flatten(1), [torch.randn(2, 3, 3, 5, 7)], "odd", out, ["x"])
    return out


def gate_goldens():
    out = {}
    vjp(lambda x_, g_: x_ * g_[:, :, None, None, None], [torch.randn(2, 3, 4, 5, 3), torch.rand(2, 3)],
        "odd", out, ["x", "g"])
    return out


def dynamic_head_goldens():
    out = {}
    h = torch.randn(2, 8, 5, 6, 7)
    params = torch.randn(2, 162) * 0.4
    xs = [h.clone().requires_grad_(True), params.clone().requires_grad_(True)]
    y = dynamic_head(*xs)
    dy = torch.randn_like(y)
    dh, dparams = torch.autograd.grad(y, xs, dy)
    out.update({"h": h, "params": params, "y": y.detach(), "dy": dy, "dh": dh, "dparams": dparams})
    return out


def loss_goldens():
    out = {}
    # annotated[n] = (organ, tumour); False -> that channel of sample n is filled with -1
    cases = [
        ("all", (2, 2, 3, 4, 5), [(1, 1), (1, 1)]),
        ("some_missing", (3, 2, 4, 3, 5), [(1, 1), (1, 0), (1, 1)]),
        ("colon_lung", (2, 2, 3, 5, 4), [(0, 1), (0, 1)]),
        ("mixed", (3, 2, 5, 3, 3), [(0, 1), (1, 0), (1, 1)]),
    ]
    for name, shape, annotated in cases:
        logits = torch.randn(*shape) * 2
        target = (torch.rand(*shape) > 0.7).float()
        for i, (a0, a1) in enumerate(annotated):
            if not a0:
                target[i, 0] = -1
            if not a1:
                target[i, 1] = -1
        x = logits.clone().requires_grad_(True)
        loss = loss_fn(x, target)
        (dlogits,) = torch.autograd.grad(loss, [x])
        out.update({f"{name}.logits": logits, f"{name}.target": target, f"{name}.loss": loss.detach().reshape(1),
                    f"{name}.dlogits": dlogits})
    return out


def sgd_goldens():
    """A few steps of torch.optim.SGD(momentum=0.99, nesterov=True, weight_decay) with the poly schedule."""
    out = {}
    shapes = [(5, 7), (13,), (3, 2, 2)]
    ps = [torch.randn(*s).requires_grad_(True) for s in shapes]
    for i, p in enumerate(ps):
        out[f"init.p{i}"] = p.detach().clone()
    lr0, wd, momentum, steps = 0.05, 1e-2, 0.99, 5
    opt = torch.optim.SGD(ps, lr=lr0, momentum=momentum, nesterov=True, weight_decay=wd)
    lrs = []
    for k in range(steps):
        lr = lr0 * (1 - k / steps) ** 0.9
        for g in opt.param_groups:
            g["lr"] = lr
        lrs.append(lr)
        for i, p in enumerate(ps):
            p.grad = torch.randn_like(p)
            out[f"step{k}.grad.p{i}"] = p.grad.clone()
        opt.step()
        for i, p in enumerate(ps):
            out[f"step{k}.p{i}"] = p.detach().clone()
            out[f"step{k}.momentum.p{i}"] = opt.state[p]["momentum_buffer"].clone()
    out["lr"] = torch.tensor(lrs, dtype=torch.float32)
    out["hparams"] = torch.tensor([lr0, momentum, wd], dtype=torch.float32)
    out["steps"] = torch.tensor([steps, len(shapes)], dtype=torch.int64)
    return out


FILES = {
    "conv3d": conv3d_goldens,
    "group_norm": group_norm_goldens,
    "weight_standardize": ws_goldens,
    "upsample_trilinear": upsample_goldens,
    "global_avg_pool": gap_goldens,
    "channel_gate": gate_goldens,
    "dynamic_head": dynamic_head_goldens,
    "partial_label_loss": loss_goldens,
    "sgd": sgd_goldens,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "test", "golden"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    total = 0
    for i, (name, make) in enumerate(FILES.items()):
        torch.manual_seed(args.seed * 1000 + i)
        tensors = make()
        for k, t in tensors.items():
            assert t.dtype in (torch.float32, torch.int64), (name, k, t.dtype)
        path = os.path.join(args.out, f"{name}.safetensors")
        save_safetensors(path, tensors)
        size = os.path.getsize(path)
        total += size
        print(f"{path}: {len(tensors)} tensors, {size} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
