#!/usr/bin/env python3
"""Fixture of test/tgnet/dodnet.test.ts: a DoDNet-layout network (the module names of jianpengz/DoDNet's unet3D
and NoBottleneck) with random weights, its state dict as float32 safetensors with DoDNet's names, and its logits
on a random input. (scripts/make_pth_fixtures.py imports UNet3D from here and saves it as torch.save does.)

  /usr/bin/python3 scripts/make_dodnet_fixture.py [--out test/golden] [--width 2]

writes dodnet_unet3d.safetensors (DoDNet's names, float32) and dodnet_unet3d_io.safetensors (input,
task_ids, logits). The network is written here from DoDNet's description, at a small width: its GroupNorms have
min(16, C) groups (DoDNet's 16 at width 32, where every stage has >= 32 channels), as TGNet's do.
"""
import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))

NUM_TASKS = 7


def save_safetensors(path, tensors, metadata):
    """Float32 safetensors, written to a temporary sibling, fsynced and renamed over `path`."""
    header, blobs, off = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
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


def gn(c):
    return nn.GroupNorm(min(16, c), c)


class WSConv(nn.Conv3d):
    """DoDNet's weight-standardised conv: centred per filter, divided by sqrt(unbiased var + 1e-12)."""

    def forward(self, x):
        w = self.weight
        w = w - w.mean(dim=(1, 2, 3, 4), keepdim=True)
        w = w / torch.sqrt(w.view(w.size(0), -1).var(dim=1) + 1e-12).view(-1, 1, 1, 1, 1)
        return F.conv3d(x, w, self.bias, self.stride, self.padding)


class NoBottleneck(nn.Module):
    def __init__(self, cin, cout, stride=1, downsample=None):
        super().__init__()
        self.gn1 = gn(cin)
        self.conv1 = WSConv(cin, cout, 3, stride, 1, bias=False)
        self.gn2 = gn(cout)
        self.conv2 = WSConv(cout, cout, 3, 1, 1, bias=False)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv1(F.relu(self.gn1(x)))
        out = self.conv2(F.relu(self.gn2(out)))
        return out + (x if self.downsample is None else self.downsample(x))


def make_layer(cin, cout, blocks, stride):
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(gn(cin), nn.ReLU(), WSConv(cin, cout, 1, stride, 0, bias=False))
    return nn.Sequential(NoBottleneck(cin, cout, stride, down), *[NoBottleneck(cout, cout) for _ in range(blocks - 1)])


class UNet3D(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.conv1 = WSConv(1, w, 3, 1, 1, bias=False)
        self.layer0 = make_layer(w, w, 1, 1)
        self.layer1 = make_layer(w, 2 * w, 2, 2)
        self.layer2 = make_layer(2 * w, 4 * w, 2, 2)
        self.layer3 = make_layer(4 * w, 8 * w, 2, 2)
        self.layer4 = make_layer(8 * w, 8 * w, 2, 2)
        self.fusionConv = nn.Sequential(gn(8 * w), nn.ReLU(), WSConv(8 * w, 8 * w, 1, 1, 0, bias=False))
        self.x8_resb = make_layer(8 * w, 4 * w, 1, 1)
        self.x4_resb = make_layer(4 * w, 2 * w, 1, 1)
        self.x2_resb = make_layer(2 * w, w, 1, 1)
        self.x1_resb = make_layer(w, w, 1, 1)
        self.precls_conv = nn.Sequential(gn(w), nn.ReLU(), nn.Conv3d(w, 8, 1))
        self.GAP = nn.Sequential(gn(8 * w), nn.ReLU(), nn.AdaptiveAvgPool3d(1))
        self.controller = nn.Conv3d(8 * w + NUM_TASKS, 162, 1)

    def forward(self, x, task_id):
        x = self.conv1(x)
        skips = []
        for layer in (self.layer0, self.layer1, self.layer2, self.layer3):
            x = layer(x)
            skips.append(x)
        x = self.fusionConv(self.layer4(x))
        task = F.one_hot(task_id, NUM_TASKS).float()[:, :, None, None, None]
        params = self.controller(torch.cat([self.GAP(x), task], 1)).flatten(1)
        for block, skip in zip((self.x8_resb, self.x4_resb, self.x2_resb, self.x1_resb), reversed(skips)):
            x = block(F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False) + skip)
        h = self.precls_conv(x)
        # DoDNet's dynamic head: per sample, 1x1x1 convs 8 -> 8 -> 8 -> 2 from params split 64, 64, 16 | 8, 8, 2
        n, _, d, hh, ww = h.shape
        w1, w2, w3, b1, b2, b3 = torch.split(params, [64, 64, 16, 8, 8, 2], 1)
        y = h.reshape(1, -1, d, hh, ww)
        y = F.relu(F.conv3d(y, w1.reshape(n * 8, 8, 1, 1, 1), b1.reshape(-1), groups=n))
        y = F.relu(F.conv3d(y, w2.reshape(n * 8, 8, 1, 1, 1), b2.reshape(-1), groups=n))
        y = F.conv3d(y, w3.reshape(n * 2, 8, 1, 1, 1), b3.reshape(-1), groups=n)
        return y.reshape(n, 2, d, hh, ww)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "test", "golden"))
    ap.add_argument("--width", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    net = UNet3D(a.width)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_safetensors(os.path.join(a.out, "dodnet_unet3d.safetensors"), net.state_dict(),
                     {"generator": "scripts/make_dodnet_fixture.py", "torch": torch.__version__})
    x = torch.randn(2, 1, 16, 16, 32)
    t = torch.tensor([4, 1])
    with torch.no_grad():
        logits = net(x, t)
    io = {"input": x, "task_ids": t.to(torch.float32), "logits": logits}
    save_safetensors(os.path.join(a.out, "dodnet_unet3d_io.safetensors"), io, {"generator": "scripts/make_dodnet_fixture.py"})
    print(f"width {a.width}: {sum(p.numel() for p in net.parameters())} parameters, logits mean {float(logits.mean()):.4f}")


if __name__ == "__main__":
    main()
