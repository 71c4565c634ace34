"""The tail recipe's settings, each trained with several seeds on the same 10 folds: which change is clear of one training's noise?

One training of `bincount train`'s tail recipe is one draw: on the same fold, two seeds differ by ~4.6 points (sd), as
much as every variant `bench/accuracy.py` compared with one seed. This sweep trains each setting (`CONFIGS`, changes to
`accuracy.tail_fit`'s defaults) with `--seeds` seeds on each of the same 10 folds as `bench/accuracy.py` (5-fold
stratified CV of the sample's counts 1-5, repeated twice), in `--workers` processes at once, and prints, per setting,
its accuracy averaged over seeds and folds and its paired difference to the default (mean over folds of the seed-averaged
difference, with its standard error), then seed ensembles (the seeds' probabilities averaged). Every training's test
probabilities go into `--out`/probs.npz as they finish, so a run cut short keeps what it trained and a later analysis
needs no retraining.

A fold takes seconds on a GPU and 5-12 minutes on 2 cores, so this is a GPU bench:

    python bench/tail_search.py --device cuda --workers 10 [--seeds 3] [--configs NAME ...] [--out DIR]
"""
import argparse, io, json, multiprocessing as mp, os, sys, time
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
SEED_STEP = 100  # the k-th seed of fold f is f + k*SEED_STEP: seed 0 is the one `bench/accuracy.py` gives the fold

# setting -> (tail_fit's options beyond the default's, the maps' (views, frozen stages)); 'default': one tail as `tail_fit` trains it, soft
# labels .5, 8 ep, 3e-3, body lr/3, whole maps (bincount train's default since Dec 6 2026: three of 'epochs 5, TTA central window')
CONFIGS = {
    'default': ({}, (2, 0)),
    'epochs 5': (dict(epochs=5), (2, 0)),
    'epochs 5, TTA central window': (dict(epochs=5, windows='centre'), (2, 0)),
    'epochs 12': (dict(epochs=12), (2, 0)),
    'lr 1.5e-3': (dict(lr=1.5e-3), (2, 0)),
    'lr 6e-3': (dict(lr=6e-3), (2, 0)),
    'body lr/10': (dict(lr_div=10.), (2, 0)),
    'body lr/1': (dict(lr_div=1.), (2, 0)),
    'batch 16': (dict(bs=16), (2, 0)),
    'batch 64': (dict(bs=64), (2, 0)),
    'sigma .3': (dict(sigma=.3), (2, 0)),
    'MixUp .4': (dict(mixup=.4), (2, 0)),
    'weight decay .1': (dict(wd=.1), (2, 0)),
    'no shifts': (dict(crop=0), (2, 0)),
    'shifts of 4': (dict(crop=4), (2, 0)),
    'stochastic depth .1': (dict(drop_path=.1), (2, 0)),
    'TTA central window': (dict(windows='centre'), (2, 0)),
    'stage 5 trained too': (dict(frozen_blocks=4), (2, 4)),
    '4 flips': ({}, (4, 0)),
}


def trainings(configs) -> list:
    "The settings that differ only in their TTA `windows` share a training: groups of (setting, its windows), in `configs`' order."
    groups = {}
    for c in configs:
        opts, maps = CONFIGS[c]
        groups.setdefault((str(sorted((k, v) for k, v in opts.items() if k != 'windows')), maps), []).append((c, opts.get('windows')))
    return list(groups.values())


def jobs(configs, seeds:int, folds:int) -> list:
    "Every (settings sharing a training, seed index, fold), the first seed of every setting first: a run cut short has compared all settings."
    return [(g, k, f) for k in range(seeds) for g in trainings(configs) for f in range(folds)]


def _init(device:str):
    "A worker: one CPU thread (the GPU does the work, and workers must not fight for cores), networks on `device`."
    os.cpu_count = lambda: 1  # tail_fit asks for every core: on a GPU one each is enough
    import torch, accuracy
    from bincount.core import tune_cpu
    tune_cpu(); torch.set_num_threads(1); accuracy.DEVICE = torch.device(device); torch.backends.cudnn.benchmark = device != 'cpu'


def _train(job):
    "Train one job's tail on its fold, once for the settings of its group: [((setting, seed index, fold), test probabilities)]."
    import accuracy
    group, k, f, maps_path, y, tr, te = job
    opts = {**CONFIGS[group[0][0]][0], 'windows': tuple(w for _, w in group)}
    M = np.load(maps_path, mmap_mode='r')  # shared by every worker through the page cache
    # on a CPU `remembered`, so `bench/accuracy.py` reads these trainings back; on a GPU hashing the maps costs more than a training
    fit = accuracy.tail_fit if accuracy.DEVICE.type == 'cpu' else accuracy.tail_fit.__wrapped__
    p = fit(M, y, tr, te, f + k*SEED_STEP, sigma=.5, **opts)
    return [((c, k, f), pc) for (c, _), pc in zip(group, p)]


def summarise(probs:dict, counts, folds, configs, seeds:int) -> list:
    "Lines of the table: each setting's accuracy (mean over seeds and folds), paired difference to the default, seed ensembles."
    def acc(p, te): return (p.argmax(1) + 1 == counts[te]).mean()
    def per_fold(c, members):  # accuracy of the average of `members` seeds' probabilities, per fold (None if any is missing)
        if any((c, k, f) not in probs for k in members for f in range(len(folds))): return None
        return np.array([100*acc(np.mean([probs[c, k, f] for k in members], 0), te) for f, (tr, te) in enumerate(folds)])
    def single(c):  # per fold, the mean over the seeds trained on every fold
        ks = [k for k in range(seeds) if all((c, k, f) in probs for f in range(len(folds)))]
        return (np.mean([per_fold(c, [k]) for k in ks], 0), len(ks)) if ks else (None, 0)
    base, _ = single('default')
    lines = [f"{'setting':<28} {'seeds':>5} {'accuracy':>12} {'vs default':>12}"]
    for c in configs:
        a, n = single(c)
        if a is None: continue
        d = '' if c == 'default' or base is None else f"{(a - base).mean():+.1f} ± {(a - base).std(ddof=1)/np.sqrt(len(a)):.1f}"
        lines.append(f"{c:<28} {n:>5} {a.mean():>6.1f} ± {a.std(ddof=1)/np.sqrt(len(a)):.1f} {d:>12}")
    for c in configs:
        for m in range(2, seeds + 1):
            e = per_fold(c, list(range(m)))
            if e is None: continue
            lines.append(f"{c + f', {m} seeds averaged':<34} {e.mean():>6.1f} ± {e.std(ddof=1)/np.sqrt(len(e)):.1f}"
                         + (f"   vs default's single: {(e - base).mean():+.1f} ± {(e - base).std(ddof=1)/np.sqrt(len(e)):.1f}" if base is not None else ''))
    return lines


def save(out:Path, probs:dict, lines:list, meta:dict):
    "The probabilities (one array per setting, seed and fold) and the table, atomically."
    from bincount.core import atomic_write_bytes, atomic_write_text
    buf = io.BytesIO(); np.savez(buf, **{f"{c}|{k}|{f}": p for (c, k, f), p in probs.items()})
    atomic_write_bytes(out/'probs.npz', buf.getvalue())
    atomic_write_text(out/'table.txt', '\n'.join(lines) + '\n')
    atomic_write_text(out/'meta.json', json.dumps(meta, indent=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cpu'); ap.add_argument('--workers', type=int, default=1)
    ap.add_argument('--seeds', type=int, default=3); ap.add_argument('--configs', nargs='+', help='settings to run (default: all)')
    ap.add_argument('--out', default='bench/out/tail_search'); ap.add_argument('--folds', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args(argv)
    import torch, accuracy
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    accuracy.DEVICE = torch.device(a.device)
    df, _, counts, y, folds = accuracy.sample_folds(a.folds, a.repeats)
    configs = [c for c in CONFIGS if not a.configs or c in a.configs]
    maps = {}
    for views, fb in sorted({CONFIGS[c][1] for c in configs}):
        t = time.time(); accuracy.front_maps(df, 320, views=views, frozen_blocks=fb or None)
        maps[views, fb] = accuracy.front_path(df, 320, views=views, frozen_blocks=fb or None)
        print(f"maps ({views} views, {fb or 'default'} frozen stages): {time.time() - t:.0f} s", flush=True)
    todo = jobs(configs, a.seeds, len(folds))
    print(f"{len(todo)} trainings ({len(configs)} settings, {len(trainings(configs))} trainings a seed and fold, x {a.seeds} seeds x {len(folds)} folds) "
          f"in {a.workers} workers on {a.device}", flush=True)
    probs, t0, last, trained = {}, time.time(), 0., 0
    meta = dict(device=a.device, folds=len(folds), seeds=a.seeds, seed_step=SEED_STEP, photos=len(df), configs={c: CONFIGS[c][0] for c in configs})
    with mp.get_context('spawn').Pool(a.workers, _init, (a.device,)) as pool:
        for done in pool.imap_unordered(_train, [(g, k, f, maps[CONFIGS[g[0][0]][1]], y, tr, te) for g, k, f in todo for tr, te in [folds[f]]]):
            probs.update(done); trained += 1
            if time.time() - last > 20 or trained == len(todo):
                last = time.time(); meta.update(trained=trained, seconds=round(last - t0))
                save(out, probs, summarise(probs, counts, folds, configs, a.seeds), meta)
                print(f"  {trained}/{len(todo)} trainings, {last - t0:.0f} s", flush=True)
    print('\n'.join(summarise(probs, counts, folds, configs, a.seeds)))


if __name__ == '__main__': main()
