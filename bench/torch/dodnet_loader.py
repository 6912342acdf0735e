"""The yardstick of `npm run bench -- --only loader`: a PyTorch Dataset that does per item what DoDNet's training
dataset (MOTSDataSet) does, through torch.utils.data.DataLoader with `--workers` worker processes, timed like
bench/loader.ts times tgnet's StreamingBatchSampler.

Per item, as DoDNet does it: read the case's image and label NIfTI with nibabel (the whole .nii.gz, every item),
draw a zoom (0.7-1.4 with probability 0.2: a region of crop x s is cut and resized back to the crop, trilinear for
the image, nearest for the label), place the region on a random foreground voxel 80 % of the time (else anywhere),
cut it (padding where it leaves the volume), clip HU to [-325, 325] and divide by 325, flip by DoDNet's table (no
flip 0.3; each of the seven non-empty sets of axes 0.1) and make the two-channel organ/tumour target (-1 where the
task does not annotate the channel). The volumes are read as stored: DoDNet resamples its NIfTI offline, as tgnet's
preprocessing cache does, so neither side's timing includes resampling.

Prints one JSON line: {"ok": true, "cropsPerS": ..., ...} or {"ok": false, "reason": ...}.
"""
import argparse
import json
import resource
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--list', required=True, help='JSON file: [{"image": path, "label": path, "task": key}, ...]')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--crop', type=int, nargs=3, default=[64, 192, 192], metavar=('D', 'H', 'W'))
    p.add_argument('--batches', type=int, default=5, help='batches timed after the warm-up')
    p.add_argument('--warmup', type=int, default=1, help='batches drawn before the clock starts')
    p.add_argument('--seed', type=int, default=1)
    return p.parse_args(argv)


# The organ/tumour channels each task annotates, from its label values (tgnet's labelToTarget).
def make_target(label, task, np):
    organ = np.full(label.shape, -1.0, dtype=np.float32)
    tumour = np.full(label.shape, -1.0, dtype=np.float32)
    if task in ('liver', 'kidney', 'pancreas'):
        organ = (label >= 1).astype(np.float32)
        tumour = (label == 2).astype(np.float32)
    elif task == 'hepatic_vessel':
        organ = (label == 1).astype(np.float32)
        tumour = (label == 2).astype(np.float32)
    elif task in ('colon', 'lung'):
        tumour = (label == 1).astype(np.float32)
    elif task == 'spleen':
        organ = (label == 1).astype(np.float32)
    else:
        raise ValueError(f'task is {task!r}; expected one of liver, kidney, hepatic_vessel, pancreas, colon, lung, spleen')
    return np.stack([organ, tumour])


def build_dataset(cases, crop, length):
    import nibabel as nib
    import numpy as np
    import torch
    import torch.nn.functional as F

    # The flip table: after "no flip" (0.3), the sets of (D, H, W) axes each drawn with probability 0.1.
    flip_sets = [(2,), (1,), (0,), (1, 2), (0, 2), (0, 1), (0, 1, 2)]

    class DodnetLikeDataset(torch.utils.data.Dataset):
        def __len__(self):
            return length

        def __getitem__(self, index):
            rng = np.random  # seeded per worker by the DataLoader's worker_init_fn
            c = cases[rng.randint(len(cases))]
            # NIfTI [x, y, z] -> [D, H, W] = [z, y, x] views; the whole file is read and decompressed, as DoDNet does.
            image = np.asarray(nib.load(c['image']).get_fdata(dtype=np.float32)).transpose(2, 1, 0)
            label = np.asarray(nib.load(c['label']).dataobj).astype(np.uint8).transpose(2, 1, 0)
            scale = rng.uniform(0.7, 1.4) if rng.uniform() < 0.2 else 1.0
            region = [max(1, int(round(n * scale))) for n in crop]
            shape = image.shape
            if rng.uniform() < 0.8 and label.any():
                fg = np.flatnonzero(label)
                centre = np.unravel_index(fg[rng.randint(len(fg))], shape)
                start = []
                for a in range(3):
                    jitter = region[a] // 4
                    s = int(centre[a]) + rng.randint(-jitter, jitter + 1) - region[a] // 2
                    s = min(shape[a] - region[a], max(0, s)) if shape[a] >= region[a] else min(0, max(shape[a] - region[a], s))
                    start.append(s)
            else:
                start = [rng.randint(0, shape[a] - region[a] + 1) if shape[a] >= region[a] else rng.randint(shape[a] - region[a], 1) for a in range(3)]
            # Cut the region, padding (air for the image, background for the label) where it leaves the volume.
            img = np.full(region, -325.0, dtype=np.float32)
            lab = np.zeros(region, dtype=np.uint8)
            src = tuple(slice(max(0, s), min(n, s + r)) for s, r, n in zip(start, region, shape))
            dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start))
            img[dst] = image[src]
            lab[dst] = label[src]
            img = np.clip(img, -325.0, 325.0) / 325.0
            if scale != 1.0:
                img = F.interpolate(torch.from_numpy(img)[None, None], size=tuple(crop), mode='trilinear', align_corners=False)[0, 0].numpy()
                lab = F.interpolate(torch.from_numpy(lab.astype(np.float32))[None, None], size=tuple(crop), mode='nearest')[0, 0].numpy().astype(np.uint8)
            u = rng.uniform()
            if u >= 0.3:
                axes = flip_sets[min(len(flip_sets) - 1, int((u - 0.3) / 0.1))]
                img = np.flip(img, axes)
                lab = np.flip(lab, axes)
            target = make_target(lab, c['task'], np)
            return torch.from_numpy(np.ascontiguousarray(img)[None]), torch.from_numpy(np.ascontiguousarray(target))

    return DodnetLikeDataset()


def main(argv):
    args = parse_args(argv)
    try:
        import nibabel  # noqa: F401
        import numpy as np
        import torch
    except ImportError as e:
        print(json.dumps({'ok': False, 'reason': f'{e} (install python3-torch, python3-nibabel, python3-scipy)'}))
        return 0
    with open(args.list) as f:
        cases = json.load(f)
    if not cases:
        print(json.dumps({'ok': False, 'reason': f'{args.list} lists no cases'}))
        return 0
    total = (args.warmup + args.batches) * args.batch
    dataset = build_dataset(cases, args.crop, total)

    def seed_worker(worker_id):
        np.random.seed((args.seed * 1000 + worker_id) % 2**32)

    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=False, num_workers=args.workers, drop_last=True,
        worker_init_fn=seed_worker, persistent_workers=False,
    )
    it = iter(loader)
    t_start = time.perf_counter()
    for _ in range(args.warmup):
        image, target = next(it)
    t0 = time.perf_counter()
    for _ in range(args.batches):
        image, target = next(it)
    seconds = time.perf_counter() - t0
    assert tuple(image.shape) == (args.batch, 1, *args.crop), image.shape
    assert tuple(target.shape) == (args.batch, 2, *args.crop), target.shape
    del it
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({
        'ok': True, 'torch': torch.__version__, 'workers': args.workers, 'batches': args.batches,
        'seconds': seconds, 'warmupSeconds': t0 - t_start, 'cropsPerS': args.batches * args.batch / seconds,
        'peakRssMB': own, 'peakWorkerRssMB': child,
    }))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
