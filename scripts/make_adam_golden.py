#!/usr/bin/env python3
"""PyTorch golden for the fused Adam / AdamW kernels: test/golden/adam.safetensors (small, seeded, float32).

Run with Debian's PyTorch:  /usr/bin/python3 scripts/make_adam_golden.py [--out test/golden]

Cases `adam` (torch.optim.Adam, L2 weight decay) and `adamw` (torch.optim.AdamW, decoupled decay), three
parameters of odd sizes, five steps with a changing lr (a warm-up ramp). Tensors per case:
`<case>.hparams` = [beta1, beta2, eps, weight_decay], `<case>.lr` [steps], `<case>.init.p<i>`, and per step k
`<case>.step<k>.grad.p<i>` (the gradient fed in), `<case>.step<k>.p<i>`, `.exp_avg.p<i>`, `.exp_avg_sq.p<i>`
(the state after the step). eps is large (1e-3) so that where it is added (after the sqrt) shows in the numbers.
"""
import argparse
import os

import torch

from make_op_goldens import save_safetensors

SIZES = [37, 5, 130]
LRS = [0.002, 0.004, 0.006, 0.008, 0.01]


def case(name, cls, out, gen):
    betas, eps, wd = (0.9, 0.99), 1e-3, 0.1
    params = [torch.nn.Parameter(torch.randn(n, generator=gen)) for n in SIZES]
    for i, p in enumerate(params):
        out[f"{name}.init.p{i}"] = p.detach().clone()
    opt = cls(params, lr=LRS[0], betas=betas, eps=eps, weight_decay=wd, foreach=False)
    for k, lr in enumerate(LRS):
        for g in opt.param_groups:
            g["lr"] = lr
        for i, p in enumerate(params):
            p.grad = torch.randn(p.shape, generator=gen)
            out[f"{name}.step{k}.grad.p{i}"] = p.grad.clone()
        opt.step()
        for i, p in enumerate(params):
            st = opt.state[p]
            out[f"{name}.step{k}.p{i}"] = p.detach().clone()
            out[f"{name}.step{k}.exp_avg.p{i}"] = st["exp_avg"].clone()
            out[f"{name}.step{k}.exp_avg_sq.p{i}"] = st["exp_avg_sq"].clone()
    out[f"{name}.hparams"] = torch.tensor([betas[0], betas[1], eps, wd], dtype=torch.float32)
    out[f"{name}.lr"] = torch.tensor(LRS, dtype=torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "golden"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(args.seed)
    out = {}
    case("adam", torch.optim.Adam, out, gen)
    case("adamw", torch.optim.AdamW, out, gen)
    path = os.path.join(args.out, "adam.safetensors")
    save_safetensors(path, out)
    print(f"wrote {path} ({len(out)} tensors, torch {torch.__version__})")


if __name__ == "__main__":
    main()
