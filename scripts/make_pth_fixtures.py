#!/usr/bin/env python3
"""PyTorch checkpoints written by torch.save itself, for the TypeScript .pth reader's tests (test/nn/pth*.test.ts,
test/tgnet/dodnet-pth.test.ts). Run with Debian's PyTorch (apt-get install -y python3-torch):

  /usr/bin/python3 scripts/make_pth_fixtures.py small  [--out test/golden/pth]
  /usr/bin/python3 scripts/make_pth_fixtures.py dodnet [--out DIR] [--width 32] [--seed 0]

`small` (committed, a few KB each): a tiny DataParallel model in the four layouts DoDNet's train.py writes:
plain (torch.save(model.state_dict())) and fp16 ({'model', 'optimizer', 'amp'} as with --FP16: an SGD state
with momentum buffers after one step, apex amp's loss-scaler state), each in the zip container (PyTorch >= 1.6)
and the legacy one (_use_new_zipfile_serialization=False, PyTorch 1.4-1.5's); one file of every dtype and view
kind the reader converts (float16, bfloat16, float64, int64, int32, uint8, bool, a transpose, a storage offset,
two disjoint slices of one storage, an nn.Parameter, nested under 'state_dict'); and two files torch writes but
the reader must refuse (overlapping views of one storage, a stride-0 expanded tensor). `expected.safetensors`
holds every expected tensor as float32 under '<file stem>/<name>'.

`dodnet` (not committed: 70-140 MB each at width 32): the DoDNet network of scripts/make_dodnet_fixture.py
(every tensor name and shape of the authors' unet3D) in the same four layouts, plus dodnet_io.safetensors with
a random input, task ids and the network's logits in float32 and float64.
"""
import argparse
import collections
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_dodnet_fixture import UNet3D, save_safetensors  # noqa: E402

LAYOUTS = ("plain_zip", "plain_legacy", "fp16_zip", "fp16_legacy")


def save(obj, path, legacy):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


def train_checkpoint(net, step):
    """What DoDNet's train.py saves with --FP16: the DataParallel model, its SGD state after a step, amp's state."""
    model = nn.DataParallel(net)  # on a machine without CUDA it only adds the module. prefix, as in training
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=0.0005)
    opt.zero_grad()
    step(model).backward()
    opt.step()
    # apex amp.state_dict() with opt_level O1 and one optimizer: OrderedDict of loss scalers
    amp = collections.OrderedDict(loss_scaler0={"loss_scale": 65536.0, "unskipped": 1})
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "amp": amp}


def write_layouts(out, stem, net, step):
    plain = nn.DataParallel(net).state_dict()
    plain_before = collections.OrderedDict((k, v.clone()) for k, v in plain.items())
    for layout in LAYOUTS:
        legacy = layout.endswith("legacy")
        path = os.path.join(out, f"{stem}_{layout}.pth")
        if layout.startswith("plain"):
            save(plain, path, legacy)
    # The fp16 layouts take a training step, which changes the weights: save them after the plain ones.
    ckpt = train_checkpoint(net, step)
    for legacy in (False, True):
        save(ckpt, os.path.join(out, f"{stem}_fp16_{'legacy' if legacy else 'zip'}.pth"), legacy)
    # state_dict() shares the parameters' storage, which the step changed: the plain files hold the values before it
    return plain_before, {k: v.clone() for k, v in ckpt["model"].items()}


def small(out):
    torch.manual_seed(0)
    os.makedirs(out, exist_ok=True)
    net = nn.Sequential(nn.Conv3d(1, 3, 3, bias=False), nn.GroupNorm(1, 3), nn.Conv3d(3, 2, 1))
    x = torch.randn(1, 1, 4, 4, 4)
    plain, trained = write_layouts(out, "tiny", net, lambda m: m(x).square().mean())
    expected = {}
    for k, v in plain.items():
        expected[f"tiny_plain/{k}"] = v
    for k, v in trained.items():
        expected[f"tiny_fp16/{k}"] = v

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7 - 1
    shared = torch.randn(10)
    kinds = collections.OrderedDict()
    kinds["f32"] = torch.randn(2, 3)
    kinds["f16"] = (torch.randn(5) * 100).half()
    kinds["f16_special"] = torch.tensor([0.0, -0.0, 6.0e-8, 65504.0, float("inf"), -float("inf")], dtype=torch.float16)
    kinds["bf16"] = (torch.randn(4) * 1e10).bfloat16()
    kinds["f64"] = torch.randn(3, dtype=torch.float64)
    kinds["i64"] = torch.tensor([-3, 0, 7, 2 ** 40], dtype=torch.int64)
    kinds["i32"] = torch.tensor([-5, 9], dtype=torch.int32)
    kinds["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    kinds["bool"] = torch.tensor([True, False, True])
    kinds["transposed"] = base.t()  # stride (1, 6): not contiguous
    kinds["offset"] = (base + 1)[1:3, 2:5]  # storage offset 8, stride (6, 1)
    kinds["shared_a"] = shared[:4]  # two disjoint views of one storage
    kinds["shared_b"] = shared[4:].view(2, 3)
    kinds["param"] = nn.Parameter(torch.randn(2, 2))
    kinds["scalar"] = torch.tensor(2.5)
    kinds["empty"] = torch.zeros(0, 3)
    wrapped = {"state_dict": kinds, "epoch": 3, "note": "dtypes"}
    for legacy in (False, True):
        save(wrapped, os.path.join(out, f"dtypes_{'legacy' if legacy else 'zip'}.pth"), legacy)
    for k, v in kinds.items():
        expected[f"dtypes/{k}"] = v.detach().to(torch.float32)

    v = torch.randn(6)
    save({"a": v, "b": v[2:]}, os.path.join(out, "overlap_zip.pth"), False)
    save({"a": torch.randn(3, 1).expand(3, 4)}, os.path.join(out, "expanded_zip.pth"), False)
    save_safetensors(os.path.join(out, "expected.safetensors"), expected,
                     {"generator": "scripts/make_pth_fixtures.py small", "torch": torch.__version__})
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"wrote {len(os.listdir(out))} files, {total} bytes, to {out}")


def dodnet(out, width, seed):
    torch.manual_seed(seed)
    os.makedirs(out, exist_ok=True)
    net = UNet3D(width)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.randn(2, 1, 16, 16, 32)
    t = torch.tensor([4, 1])
    with torch.no_grad():
        logits = net(x, t)
        logits64 = net.double()(x.double(), t)
        net.float()
    # the fp16 layouts hold the weights after one SGD step: their logits are computed after write_layouts
    plain, _ = write_layouts(out, "dodnet", net, lambda m: m(x[:1], t[:1]).square().mean())
    with torch.no_grad():
        trained = net(x, t)
        trained64 = net.double()(x.double(), t)
    io = {"input": x, "task_ids": t.to(torch.float32), "plain.logits": logits, "plain.logits64": logits64,
          "fp16.logits": trained, "fp16.logits64": trained64}
    save_safetensors(os.path.join(out, "dodnet_io.safetensors"), io, {"generator": "scripts/make_pth_fixtures.py dodnet"})
    # float64 logits are written as float32 by save_safetensors; the float32 forward's error is reported beside them
    err = float((logits.double() - logits64).abs().max() / logits64.abs().max())
    n = sum(v.numel() for v in plain.values())
    print(f"width {width}: {len(plain)} tensors, {n} parameters; torch float32 vs float64 logits: {err:.2e} of max|logit|")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=("small", "dodnet"))
    ap.add_argument("--out")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.what == "small":
        small(a.out or os.path.join(HERE, "..", "test", "golden", "pth"))
    else:
        dodnet(a.out or ".", a.width, a.seed)


if __name__ == "__main__":
    main()
