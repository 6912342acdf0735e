# f32 -> f16 rounding as PyTorch (Debian python3-torch) does it: the fixture torch-half.json the precision tests read.
# Run: /usr/bin/python3 test/golden/half/make_torch_half.py > test/golden/half/torch-half.json
import torch, json, sys
torch.manual_seed(0)
vals = [0.0, -0.0, 1.0, -2.5, 65504.0, 65519.99, 65520.0, 1e6, -1e6, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9, 0.1, 1/3, 2049.0, 2051.0, 4097.0]
x = torch.cat([torch.tensor(vals, dtype=torch.float32), torch.randn(200) * torch.logspace(-9, 6, 200), torch.rand(100)])
h = x.half()
bits = h.view(torch.int16).to(torch.int32) & 0xffff
print(json.dumps({"x": x.tolist(), "bits": bits.tolist()}))
