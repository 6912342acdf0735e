"""tgnet's PyTorch twin: every TGNet variant of src/tgnet/model.ts as a torch.nn.Module with the same state-dict
names, plus DoDNet's partial-label loss, a safetensors writer and the golden / benchmark entry points.

It is what the repository compares against: the whole-model goldens (scripts/make_tgnet_golden.sh), the op goldens
(scripts/make_op_goldens.py), `npm run bench`'s CPU step (bench/torch_cpu_step.py) and the GPU session's PyTorch
figures (bench/gpu-session.sh). test/tgnet/torch-twin.test.ts checks it against the committed goldens.

Run with Debian's PyTorch (apt-get install -y python3-torch, then /usr/bin/python3):
  /usr/bin/python3 bench/torch/tgnet_torch.py --golden g.safetensors --variant tgnet --width 2 --crop 16 16 32 --seed 3
  /usr/bin/python3 bench/torch/tgnet_torch.py --check g.safetensors      # a golden's weights in, its logits out
  /usr/bin/python3 bench/torch/tgnet_torch.py --iters 5 --modes fp32,tf32   # CUDA step (one `<mode> {json}` a line)
  /usr/bin/python3 bench/torch/tgnet_torch.py --conv                        # cuDNN conv3d on the TGNet layer shapes

Variants (TGNET_VARIANTS): tgnet (task-guided residual blocks: the first of each encoder stage, or all nine with
--task-guided-blocks all; channel skip attention), tgnet-a (channel skip attention only), dodnet (neither),
spatial / serial / parallel (the paper's Table 2 skip attentions, no task-guided residual blocks).

Parameters are created in the TypeScript model's registration order, so that a seed gives the same random
initialisation (and the same golden bytes) as the files committed in test/golden/.
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_TASKS = 7
VARIANTS = ("tgnet", "tgnet-a", "dodnet", "spatial", "serial", "parallel")
TASKS = ("liver", "kidney", "hepatic_vessel", "pancreas", "colon", "lung", "spleen")
# Per task id: is the organ channel annotated, is the tumour channel annotated (colon and lung lack the organ,
# spleen the tumour).
LABELLED = {0: (1, 1), 1: (1, 1), 2: (1, 1), 3: (1, 1), 4: (0, 1), 5: (0, 1), 6: (1, 0)}
# The dynamic head's 162 controller outputs: w1 8x8, w2 8x8, w3 2x8, b1 8, b2 8, b3 2.
HEAD_SPLIT = (64, 64, 16, 8, 8, 2)
HEAD_PARAMS = sum(HEAD_SPLIT)
WS_EPS = 1e-12


def variant_layout(variant):
    """(task-guided encoder, skip attention kind or None), as variantLayout in src/tgnet/model.ts."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not one of {', '.join(VARIANTS)}")
    if variant == "tgnet":
        return True, "channel"
    if variant == "tgnet-a":
        return False, "channel"
    if variant == "dodnet":
        return False, None
    return False, variant


def group_norm(channels):
    # DoDNet's norm: up to 16 groups.
    return nn.GroupNorm(min(16, channels), channels)


def standardize(weight):
    """DoDNet's weight standardisation: each output filter minus its mean, over sqrt(unbiased variance + 1e-12)."""
    flat = weight.flatten(1)
    centred = flat - flat.mean(1, keepdim=True)
    return (centred / torch.sqrt(flat.var(1, keepdim=True) + WS_EPS)).view_as(weight)


class Conv(nn.Conv3d):
    """A cubic conv with padding k // 2, weight-standardised unless ws=False."""

    def __init__(self, cin, cout, k, stride=1, bias=False, ws=True):
        super().__init__(cin, cout, k, stride, k // 2, bias=bias)
        self.ws = ws

    def forward(self, x):
        w = standardize(self.weight) if self.ws else self.weight
        return F.conv3d(x, w, self.bias, self.stride, self.padding)


class NormReluConv(nn.Module):
    """conv(ReLU(GN(x))): a projection shortcut, the fusion and the pre-classifier."""

    def __init__(self, cin, cout, k, stride=1, bias=False, ws=True):
        super().__init__()
        self.norm = group_norm(cin)
        self.conv = Conv(cin, cout, k, stride, bias, ws)

    def forward(self, x):
        return self.conv(F.relu(self.norm(x)))


def task_code(features, onehot):
    """[features ; one-hot task] as an [N, C + T, 1, 1, 1] column."""
    return torch.cat([features, onehot[:, :, None, None, None]], 1)


class TaskGate(nn.Module):
    """One sigmoid weight per channel and sample from the global average of h and the task."""

    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Conv3d(cin + NUM_TASKS, cout, 1)

    def forward(self, h, onehot):
        return torch.sigmoid(self.fc(task_code(F.adaptive_avg_pool3d(h, 1), onehot)))


class SpatialGate(nn.Module):
    """One sigmoid weight per voxel and sample from h and the task broadcast over space: [N, 1, D, H, W]."""

    def __init__(self, cin):
        super().__init__()
        self.fc = nn.Conv3d(cin + NUM_TASKS, 1, 1)

    def forward(self, h, onehot):
        tasks = onehot[:, :, None, None, None].expand(-1, -1, *h.shape[2:])
        return torch.sigmoid(self.fc(torch.cat([h, tasks], 1)))


class ResidualBlock(nn.Module):
    """Pre-activation block: out = conv2(ReLU(GN(conv1(ReLU(GN(x)))))) + shortcut, the shortcut scaled per channel
    by a task gate on conv1's output when task-guided."""

    def __init__(self, cin, cout, stride=1, task_guided=False):
        super().__init__()
        self.gn1 = group_norm(cin)
        self.conv1 = Conv(cin, cout, 3, stride)
        self.gn2 = group_norm(cout)
        self.conv2 = Conv(cout, cout, 3)
        self.down = NormReluConv(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.gate = TaskGate(cout, cout) if task_guided else None

    def forward(self, x, onehot):
        shortcut = self.down(x) if self.down is not None else x
        h = self.conv1(F.relu(self.gn1(x)))
        if self.gate is not None:
            shortcut = shortcut * self.gate(h, onehot)
        return self.conv2(F.relu(self.gn2(h))) + shortcut


class SkipAttention(nn.Module):
    """Gates a skip connection from g = ReLU(GN(upsampled decoder features)) and the task. channel: skip * ca;
    spatial: skip * sa; serial (CBAM's order): skip * ca * sa(g * ca); parallel (scSE's sum): skip * ca + skip * sa."""

    def __init__(self, channels, kind):
        super().__init__()
        if kind not in ("channel", "spatial", "serial", "parallel"):
            raise ValueError(f"skip attention kind {kind!r} is not channel, spatial, serial or parallel")
        self.kind = kind
        self.gn = group_norm(channels)
        if kind != "spatial":
            self.gate = TaskGate(channels, channels)
        if kind != "channel":
            self.spatial = SpatialGate(channels)

    def forward(self, skip, up, onehot):
        g = F.relu(self.gn(up))
        if self.kind == "spatial":
            return skip * self.spatial(g, onehot)
        ca = self.gate(g, onehot)
        if self.kind == "channel":
            return skip * ca
        if self.kind == "serial":
            return skip * ca * self.spatial(g * ca, onehot)
        return skip * ca + skip * self.spatial(g, onehot)


def dynamic_head(features, params):
    """Per-sample 1x1x1 convs 8 -> 8 -> 8 -> 2 (ReLU between) whose weights and biases are the controller's output."""
    n, c, d, h, w = features.shape
    w1, w2, w3, b1, b2, b3 = torch.split(params, HEAD_SPLIT, 1)
    x = features.reshape(n, c, d * h * w)
    x = F.relu(torch.bmm(w1.reshape(n, 8, 8), x) + b1[:, :, None])
    x = F.relu(torch.bmm(w2.reshape(n, 8, 8), x) + b2[:, :, None])
    x = torch.bmm(w3.reshape(n, 2, 8), x) + b3[:, :, None]
    return x.reshape(n, 2, d, h, w)


class TGNet(nn.Module):
    """TGNet.create({ variant, width, taskGuidedBlocks }) of src/tgnet/model.ts: forward(x [N,1,D,H,W], task ids
    [N]) -> organ/tumour logits [N, 2, D, H, W]. D, H and W must be multiples of 16."""

    def __init__(self, variant="tgnet", width=32, task_guided_blocks="first"):
        super().__init__()
        guided, attention = variant_layout(variant)
        if task_guided_blocks not in ("first", "all"):
            raise ValueError(f"task_guided_blocks {task_guided_blocks!r} is not 'first' or 'all'")
        if task_guided_blocks == "all" and variant != "tgnet":
            raise ValueError(f"task_guided_blocks 'all' applies to the tgnet variant, not {variant!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width {width!r} must be a positive integer")
        self.variant = variant
        w = width
        self.conv1 = Conv(1, w, 3)
        stages = ((w, w, 1, 1), (w, 2 * w, 2, 2), (2 * w, 4 * w, 2, 2), (4 * w, 8 * w, 2, 2), (8 * w, 8 * w, 2, 2))
        self.enc = nn.ModuleList()
        for cin, cout, stride, blocks in stages:
            stage = [ResidualBlock(cin, cout, stride, guided)]
            for _ in range(blocks - 1):
                stage.append(ResidualBlock(cout, cout, 1, guided and task_guided_blocks == "all"))
            self.enc.append(nn.ModuleList(stage))
        self.fusion = NormReluConv(8 * w, 8 * w, 1)
        self.gap_gn = group_norm(8 * w)
        self.controller = nn.Conv3d(8 * w + NUM_TASKS, HEAD_PARAMS, 1)
        decoder = ((8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w), (w, w))
        self.dec = nn.ModuleList(ResidualBlock(cin, cout) for cin, cout in decoder)
        self.att = nn.ModuleList(SkipAttention(cin, attention) for cin, _ in decoder) if attention else None
        self.precls = NormReluConv(w, 8, 1, bias=True, ws=False)

    def forward(self, x, task_ids):
        if x.dim() != 5 or x.shape[1] != 1 or any(s % 16 for s in x.shape[2:]):
            raise ValueError(f"input shape {list(x.shape)}: expected [N, 1, D, H, W] with D, H, W multiples of 16")
        if task_ids.shape != (x.shape[0],):
            raise ValueError(f"task ids shape {list(task_ids.shape)}: expected [{x.shape[0]}], one per sample")
        onehot = F.one_hot(task_ids, NUM_TASKS).float()
        h = self.conv1(x)
        skips = []
        for stage in self.enc:
            for block in stage:
                h = block(h, onehot)
            skips.append(h)
        skips.pop()  # the last stage is the bottleneck, not a skip
        h = self.fusion(h)
        pooled = F.adaptive_avg_pool3d(F.relu(self.gap_gn(h)), 1)
        params = self.controller(task_code(pooled, onehot)).flatten(1)
        for i, block in enumerate(self.dec):
            up = F.interpolate(h, scale_factor=2, mode="trilinear", align_corners=False)
            skip = skips.pop()
            if self.att is not None:
                skip = self.att[i](skip, up, onehot)
            h = block(up + skip, onehot)
        return dynamic_head(self.precls(h), params)


def loss_fn(logits, target):
    """DoDNet's partial-label loss: per sample and channel Dice (1 - 2 sum(p t) / (sum p + sum t + 1)) plus mean
    BCE; a target channel of -1 (unannotated for that sample's task) is left out; each channel is averaged over
    the samples that annotate it, then over the channels that any sample annotates."""
    probs = torch.sigmoid(logits)
    annotated = target[:, :, 0, 0, 0] != -1
    t = target.clamp(min=0)
    axes = (2, 3, 4)
    dice = 1 - 2 * (probs * t).sum(axes) / (probs.sum(axes) + t.sum(axes) + 1)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none").mean(axes)
    channels = []
    for c in range(2):
        rows = annotated[:, c]
        if rows.any():
            channels.append(dice[rows, c].mean() + bce[rows, c].mean())
    return torch.stack(channels).mean()


SAFETENSORS_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata=None):
    """Writes F32 / I64 tensors as safetensors (little-endian, row-major, header padded to 8 bytes)."""
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous().cpu()
        if tensor.dtype not in SAFETENSORS_DTYPES:
            raise ValueError(f"tensor {name}: dtype {tensor.dtype} is not float32 or int64")
        data = tensor.numpy().tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for data in blobs:
            f.write(data)


def load_safetensors(path):
    """Reads F32 / I64 safetensors into a dict of torch tensors."""
    import numpy
    with open(path, "rb") as f:
        raw = f.read()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    body = raw[8 + size:]
    kinds = {"F32": numpy.float32, "I64": numpy.int64}
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in kinds:
            raise ValueError(f"{path}: tensor {name} has dtype {entry['dtype']}, expected F32 or I64")
        start, end = entry["data_offsets"]
        array = numpy.frombuffer(body[start:end], dtype=kinds[entry["dtype"]]).reshape(entry["shape"])
        out[name] = torch.from_numpy(array.copy())
    return out


def golden(args):
    """Random weights (perturbed from the initialisation so no gate sits at its default) and a batch of two
    tasks -> one safetensors file: "model.*" weights, input, task_ids, target, logits, loss, "grad.*"."""
    torch.manual_seed(args.seed)
    net = TGNet(args.variant, args.width, args.task_guided_blocks)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    d, h, w = args.crop
    x = torch.randn(args.batch, 1, d, h, w)
    task_ids = torch.randint(0, NUM_TASKS, (args.batch,))
    target = (torch.rand(args.batch, 2, d, h, w) > 0.7).float()
    for i, task in enumerate(task_ids.tolist()):
        for c in range(2):
            if not LABELLED[task][c]:
                target[i, c] = -1
    logits = net(x, task_ids)
    loss = loss_fn(logits, target)
    loss.backward()
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    tensors.update({"input": x, "task_ids": task_ids, "target": target, "logits": logits, "loss": loss.reshape(1)})
    tensors.update({f"grad.{k}": p.grad for k, p in net.named_parameters()})
    save_safetensors(args.golden, tensors)
    print(json.dumps({"loss": float(loss), "logits_mean": float(logits.mean()), "file": args.golden}))


def variant_of(state):
    """Which variant and width a golden's "model.*" weights describe, from the names present."""
    width = state["conv1.weight"].shape[0]
    guided = [k for k in state if k.startswith("enc.") and ".gate." in k]
    spatial = any(k.startswith("att.") and ".spatial." in k for k in state)
    channel = any(k.startswith("att.") and ".gate." in k for k in state)
    if guided:
        blocks = "all" if any(k.startswith("enc.1.1.gate.") for k in guided) else "first"
        return "tgnet", width, blocks
    if spatial and channel:
        # serial and parallel have the same parameters: the golden file's name tells them apart
        return None, width, "first"
    return ("tgnet-a" if channel else "spatial" if spatial else "dodnet"), width, "first"


def check(args):
    """Loads a golden's weights by name (every key must match), runs its input and reports the largest logit,
    loss and gradient differences relative to the golden's largest value."""
    tensors = load_safetensors(args.check)
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    variant, width, blocks = variant_of(state)
    variant = args.variant or variant
    if variant is None:
        raise ValueError(f"{args.check}: serial or parallel weights; pass --variant")
    net = TGNet(variant, width, blocks)
    net.load_state_dict(state, strict=True)
    logits = net(tensors["input"], tensors["task_ids"])
    loss = loss_fn(logits, tensors["target"])
    loss.backward()

    def rel(got, want):
        return float((got.detach() - want).abs().max() / want.abs().max().clamp(min=1e-30))
    grads = {k: rel(p.grad, tensors[f"grad.{k}"]) for k, p in net.named_parameters()}
    print(json.dumps({
        "variant": variant, "width": width, "task_guided_blocks": blocks, "parameters": len(state),
        "logits_rel": rel(logits, tensors["logits"]), "loss_abs": abs(float(loss) - float(tensors["loss"][0])),
        "grad_rel_max": max(grads.values()), "logits_equal": bool(torch.equal(logits.detach(), tensors["logits"])),
    }))


def bench(args):
    """CUDA training step and forward per precision mode at the paper's configuration (one `<mode> {json}` line
    each, read by bench/gpu-summary.ts), then a summary line."""
    if not torch.cuda.is_available():
        raise SystemExit("tgnet_torch.py bench: no CUDA device (torch.cuda.is_available() is False)")
    dev = "cuda"
    torch.backends.cudnn.benchmark = True
    result = {}
    for mode in args.modes.split(","):
        if mode not in ("fp32", "tf32", "bf16", "fp16"):
            raise SystemExit(f"tgnet_torch.py: mode {mode!r} is not fp32, tf32, bf16 or fp16")
        torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
        torch.backends.cudnn.allow_tf32 = mode == "tf32"
        net = TGNet(args.variant, args.width, args.task_guided_blocks).to(dev)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
        d, h, w = args.crop
        x = torch.randn(args.batch, 1, d, h, w, device=dev)
        y = (torch.rand(args.batch, 2, d, h, w, device=dev) > 0.7).float()
        t = torch.randint(0, NUM_TASKS, (args.batch,), device=dev)
        # bf16: autocast alone; fp16: autocast with GradScaler (AMP as PyTorch documents it, what --precision f16 mirrors).
        autocast = mode in ("bf16", "fp16")
        half = torch.float16 if mode == "fp16" else torch.bfloat16
        scaler = torch.cuda.amp.GradScaler(enabled=mode == "fp16")

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=half, enabled=autocast):
                logits = net(x, t)
            scaler.scale(loss_fn(logits.float(), y)).backward()
            scaler.step(opt)
            scaler.update()

        def timed(fn):
            torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            return time.perf_counter() - start

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        steps = sorted(timed(step) for _ in range(args.iters))
        with torch.no_grad(), torch.autocast("cuda", dtype=half, enabled=autocast):
            for _ in range(2):
                net(x, t)
            forwards = sorted(timed(lambda: net(x, t)) for _ in range(args.iters))
        result[mode] = {"train_step_ms_median": 1000 * steps[len(steps) // 2],
                        "forward_ms_median": 1000 * forwards[len(forwards) // 2],
                        "peak_mem_GiB": torch.cuda.max_memory_allocated() / 2 ** 30}
        print(mode, json.dumps(result[mode]), flush=True)
        del net, opt
        torch.cuda.empty_cache()
    result["params"] = sum(p.numel() for p in TGNet(args.variant, args.width).parameters())
    result["params_dodnet"] = sum(p.numel() for p in TGNet("dodnet", args.width).parameters())
    result["crop"], result["batch"], result["variant"] = args.crop, args.batch, args.variant
    print(json.dumps(result))


def conv_bench():
    """cuDNN float32 (TF32 off) conv3d forward and backward (data + weight) on TGNet's full-size layer shapes."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    # N, Cin, Cout, D, H, W, stride (bench/conv3d.ts uses the same list)
    shapes = ((2, 32, 32, 64, 192, 192, 1), (2, 64, 64, 32, 96, 96, 1), (2, 128, 128, 16, 48, 48, 1),
              (2, 256, 256, 8, 24, 24, 1), (2, 32, 64, 64, 192, 192, 2))
    for n, cin, cout, d, h, w, s in shapes:
        x = torch.randn(n, cin, d, h, w, device="cuda", requires_grad=True)
        conv = nn.Conv3d(cin, cout, 3, s, 1, bias=False).cuda()
        for _ in range(3):
            y = conv(x)
            y.backward(torch.ones_like(y))
        torch.cuda.synchronize()
        fw, bw = [], []
        for _ in range(10):
            e0, e1, e2 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
            e0.record()
            y = conv(x)
            e1.record()
            y.backward(torch.ones_like(y))
            e2.record()
            torch.cuda.synchronize()
            fw.append(e0.elapsed_time(e1))
            bw.append(e1.elapsed_time(e2))
        fw.sort()
        bw.sort()
        flops = 2 * n * cout * y.shape[2] * y.shape[3] * y.shape[4] * cin * 27
        print(json.dumps({"shape": [n, cin, cout, d, h, w, s], "fwd_ms": fw[5], "bwd_ms": bw[5],
                          "fwd_TFLOPs": flops / fw[5] / 1e9, "bwd_TFLOPs": 2 * flops / bw[5] / 1e9}), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", choices=VARIANTS, default=None, help="default: tgnet (for --check: from the weights)")
    ap.add_argument("--task-guided-blocks", choices=("first", "all"), default="first",
                    help="tgnet's task-guided encoder blocks: the first of each stage (the paper's) or all nine")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--crop", type=int, nargs=3, default=[64, 192, 192])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--golden", help="write a golden safetensors file here (CPU)")
    ap.add_argument("--check", help="load this golden's weights and compare logits, loss and gradients (CPU)")
    ap.add_argument("--conv", action="store_true", help="cuDNN conv3d benchmark")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--modes", default="fp32,tf32,bf16")
    args = ap.parse_args(argv)
    if args.check:
        check(args)
        return
    args.variant = args.variant or "tgnet"
    if args.golden:
        golden(args)
    elif args.conv:
        conv_bench()
    else:
        bench(args)


if __name__ == "__main__":
    main(sys.argv[1:])
