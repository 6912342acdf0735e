#!/usr/bin/env python3
"""DoDNet checkpoint (.pth from jianpengz/DoDNet's train.py) -> safetensors with DoDNet's own parameter names.

Run with Debian's PyTorch (apt-get install -y python3-torch):
  /usr/bin/python3 scripts/dodnet_to_safetensors.py MOTS_DynConv_xx.pth dodnet.safetensors
then map the names onto TGNet's dodnet variant and write a checkpoint that tgnet predict / evaluate load:
  tgnet import-dodnet --in dodnet.safetensors --out dodnet-tgnet.safetensors

The state dict is read from the `model` key (DoDNet's FP16 checkpoints: {'model', 'optimizer', 'amp'}) or from
the top level (torch.save(model.state_dict())); the `module.` prefix of a (Distributed)DataParallel model is
removed. Every tensor must be floating point; it is written as float32. Names are kept as they are: the mapping
(and the refusal of anything that has no place in TGNet) is tgnet import-dodnet's (src/tgnet/dodnet.ts).
"""
import argparse
import json
import os
import sys

import torch


def load_state_dict(path):
    """The DoDNet state dict in a .pth file: {name: tensor}, without the module. prefix."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise SystemExit(f"{path}: expected a state dict (a dict of tensors) at the top level or under 'model', "
                         f"got {type(obj).__name__}")
    out = {}
    for name, t in obj.items():
        if not torch.is_tensor(t):
            raise SystemExit(f"{path}: entry '{name}' is a {type(t).__name__}, not a tensor; expected a model state dict")
        if not t.is_floating_point():
            raise SystemExit(f"{path}: tensor '{name}' has dtype {t.dtype}; expected floating-point weights")
        key = name[len("module."):] if name.startswith("module.") else name
        if key in out:
            raise SystemExit(f"{path}: '{name}' and another entry both give '{key}' once 'module.' is removed")
        out[key] = t.detach().to(torch.float32).contiguous()
    return out


def save_safetensors(path, tensors, metadata):
    """Float32 safetensors, written to a temporary sibling, fsynced and renamed over `path`."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = t.numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pth", help="DoDNet checkpoint (.pth)")
    ap.add_argument("out", help="safetensors file to write")
    a = ap.parse_args(argv)
    state = load_state_dict(a.pth)
    save_safetensors(a.out, state, {"generator": "scripts/dodnet_to_safetensors.py", "source": os.path.basename(a.pth),
                                    "names": "dodnet"})
    n = sum(t.numel() for t in state.values())
    print(f"wrote {a.out}: {len(state)} tensors, {n} parameters (DoDNet names; next: tgnet import-dodnet --in {a.out} --out CKPT)")


if __name__ == "__main__":
    sys.exit(main())
