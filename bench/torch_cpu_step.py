"""The TGNet training step on the CPU with PyTorch (the repository's twin, bench/torch/tgnet_torch.py), for
`npm run bench` to compare against.

Usage: /usr/bin/python3 bench/torch_cpu_step.py --batch 2 --crop 16 32 32 --width 8 [--variant tgnet]
Prints one JSON line: {"ok": true, "stepMs": ..., "stepCpuMs": ..., "forwardMs": ..., "threads": ..., "torch": ...}, or
{"ok": false, "reason": "..."} when torch or the twin is missing (exit status 0 either way, so the bench can
report why it has no PyTorch figure).
"""
import argparse
import importlib.util
import json
import os
import sys
import time


def fail(reason):
    print(json.dumps({"ok": False, "reason": reason}), flush=True)
    sys.exit(0)


TWIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch", "tgnet_torch.py")


def load_twin(path):
    if not os.path.isfile(path):
        fail(f"the PyTorch twin is not at {path}")
    spec = importlib.util.spec_from_file_location("tgnet_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="tgnet", help="a TGNET_VARIANTS name (default tgnet)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--crop", type=int, nargs=3, default=[16, 32, 32])
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads (default: PyTorch's own choice, which is 1 on some VMs)")
    a = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        fail(f"torch is not importable: {e}")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    twin = load_twin(TWIN)
    if a.variant not in twin.VARIANTS:
        fail(f"--variant {a.variant} is not one of {', '.join(twin.VARIANTS)}")
    torch.manual_seed(0)
    net = twin.TGNet(a.variant, a.width)
    # The same optimiser as the TypeScript bench (SGD, Nesterov momentum 0.99, weight decay 3e-5).
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    d, h, w = a.crop
    x = torch.randn(a.batch, 1, d, h, w)
    y = (torch.rand(a.batch, 2, d, h, w) > 0.7).float()
    t = torch.tensor([i % 4 for i in range(a.batch)])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = twin.loss_fn(net(x, t), y)
        loss.backward()
        opt.step()

    step()
    times = []
    cpu = []
    for _ in range(a.iters):
        s = time.perf_counter()
        c = time.process_time()
        step()
        times.append(1000 * (time.perf_counter() - s))
        cpu.append(1000 * (time.process_time() - c))
    fw = []
    with torch.no_grad():
        net(x, t)
        for _ in range(a.iters):
            s = time.perf_counter()
            net(x, t)
            fw.append(1000 * (time.perf_counter() - s))
    print(json.dumps({
        "ok": True, "stepMs": median(times), "stepCpuMs": median(cpu), "forwardMs": median(fw), "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }), flush=True)


if __name__ == "__main__":
    main()
