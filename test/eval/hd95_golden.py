"""Golden HD95 values for test/eval/metrics.test.ts, computed exactly as medpy.metric.binary.hd95
(medpy 0.5's __surface_distances, inlined so that medpy itself is not needed). Run: python3 test/eval/hd95_golden.py"""
import json
import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

SHAPE = (9, 11, 13)  # [D, H, W]


def surface_distances(result, reference, spacing):
    footprint = generate_binary_structure(result.ndim, 1)
    result_border = result ^ binary_erosion(result, structure=footprint, iterations=1)
    reference_border = reference ^ binary_erosion(reference, structure=footprint, iterations=1)
    dt = distance_transform_edt(~reference_border, sampling=spacing)
    return dt[result_border]


def hd95(result, reference, spacing):
    return float(np.percentile(np.hstack((surface_distances(result, reference, spacing), surface_distances(reference, result, spacing))), 95))


z, y, x = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing='ij')
i = np.arange(np.prod(SHAPE)).reshape(SHAPE)
masks = {
    'ellipsoid': ((z - 4) / 3.5) ** 2 + ((y - 5) / 4) ** 2 + ((x - 6) / 5) ** 2 <= 1,
    'box': (z >= 2) & (z < 7) & (y >= 3) & (y < 10) & (x >= 1) & (x < 9),
    'hashA': (i * 2654435761) % 2**32 % 7 < 3,
    'hashB': (i * 40503 + 17) % 65536 % 5 < 2,
    'sparseA': (i * 2654435761) % 2**32 % 29 == 0,
    'sparseB': (i * 40503 + 17) % 65536 % 23 == 0,
    'shifted': ((z - 3) / 2.5) ** 2 + ((y - 7) / 3) ** 2 + ((x - 9) / 3.5) ** 2 <= 1,
}
out = {}
for a, b in [('ellipsoid', 'box'), ('hashA', 'hashB'), ('box', 'hashA'), ('sparseA', 'sparseB'), ('ellipsoid', 'shifted'), ('shifted', 'sparseB')]:
    for spacing in [(1.0, 1.0, 1.0), (2.5, 0.8, 0.7)]:
        out[f'{a}|{b}|{spacing[0]}'] = hd95(masks[a], masks[b], spacing)
values = [0.0, 1.0, 1.0, 1.4142135623730951, 2.0, 2.23606797749979, 3.0, 3.1622776601683795, 7.5]
out['percentiles'] = {str(q): float(np.percentile(values, q)) for q in [0, 5, 50, 90, 95, 99, 100]}
print(json.dumps(out, indent=1))
