"""The tail recipe's settings, each trained with several seeds on the same 10 folds: which change is clear of one training's noise?

One training of `bincount train`'s tail recipe is one draw: on the same fold, two seeds differ by ~4.6 points (sd) for
one tail. This sweep trains each setting (`CONFIGS`: changes to `bincount.tail.TailRecipe`'s settings, through the
library, as `bench/accuracy.py`'s `tail_fit` does) with `--seeds` seeds on each of the same 10 folds as
`bench/accuracy.py` (5-fold stratified CV of the sample's counts 1-5, repeated twice), in `--workers` processes at
once, and prints, per setting, its accuracy averaged over seeds and folds and its paired difference to the default
(mean over folds of the seed-averaged difference, with its standard error), then seed ensembles (the seeds'
probabilities averaged). Every training's test probabilities go into `--out`/probs.npz as they finish, and into the
bench's cache (`accuracy.remembered`), so `bench/accuracy.py` reads them back instead of training again.

With `--seeds 1` the default's trainings are exactly `bench/accuracy.py`'s default row: run this first, two folds at a
time, then `bench/accuracy.py` prints the table. On 2 cores a training of the default (three tails) takes 10-25 minutes:

    python bench/tail_search.py --workers 2 [--seeds 3] [--configs NAME ...] [--repeats 1] [--out DIR]
"""
import argparse, io, json, multiprocessing as mp, os, sys, time
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
SEED_STEP = 1000  # the k-th seed of fold f is f + k*SEED_STEP (seed 0 is the one `bench/accuracy.py` gives the fold; the recipe's own tails take + 100, + 200)

# setting -> `TailRecipe` settings changed from the default (three 5-epoch tails at 3e-3, stages at lr/3, windows 2 cells smaller, soft labels .5)
CONFIGS = {
    'default': {},
    'one tail': dict(tails=1),
    'two tails': dict(tails=2),
    'epochs 8': dict(epochs=8),
    'lr 1.5e-3': dict(lr=1.5e-3),
    'lr 6e-3': dict(lr=6e-3),
    'body lr/10': dict(lr_div=10.),
    'body lr/1': dict(lr_div=1.),
    'batch 64': dict(bs=64),
    'sigma .3': dict(count_sigma=.3),
    'no shifts': dict(window=0),
    'shifts of 4': dict(window=4),
    'stage 5 trained too': dict(frozen_blocks=4),
    'heads: torch init': dict(fit='torch_init_fit'),  # the bench's loop before Dec 7 2026 initialised its heads so
}


def jobs(configs, seeds:int, folds:int) -> list:
    "Every (setting, seed index, fold), the first seed of every setting first: a run cut short has compared all settings."
    return [(c, k, f) for k in range(seeds) for c in configs for f in range(folds)]


def _init():
    "A worker: one CPU thread (two workers share two cores)."
    os.cpu_count = lambda: 1  # tail_fit asks for every core
    import torch
    from bincount.core import tune_cpu
    tune_cpu(); torch.set_num_threads(1)


def _train(job):
    "Train one job's setting on its fold: ((setting, seed index, fold), test probabilities)."
    import accuracy
    c, k, f, maps_path, y, tr, te = job
    M = np.load(maps_path, mmap_mode='r')  # shared by every worker through the page cache
    settings = dict(CONFIGS[c]); fit = getattr(accuracy, settings.pop('fit', 'tail_fit'))
    return (c, k, f), fit(M, y, tr, te, f + k*SEED_STEP, **settings)


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
    ap.add_argument('--workers', type=int, default=1)
    ap.add_argument('--seeds', type=int, default=3); ap.add_argument('--configs', nargs='+', help='settings to run (default: all)')
    ap.add_argument('--out', default='bench/out/tail_search'); ap.add_argument('--folds', type=int, default=5)
    ap.add_argument('--repeats', type=int, default=2)
    a = ap.parse_args(argv)
    import accuracy
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    df, _, counts, y, folds = accuracy.sample_folds(a.folds, a.repeats)
    configs = [c for c in CONFIGS if not a.configs or c in a.configs]
    maps = {}
    for fb in sorted({CONFIGS[c].get('frozen_blocks') or 0 for c in configs}):
        t = time.time(); accuracy.front_maps(df, frozen_blocks=fb or None)
        maps[fb] = accuracy.front_path(df, 320, frozen_blocks=fb or None)
        print(f"maps ({fb or 'default'} frozen stages): {time.time() - t:.0f} s", flush=True)
    todo = jobs(configs, a.seeds, len(folds))
    print(f"{len(todo)} trainings ({len(configs)} settings x {a.seeds} seeds x {len(folds)} folds) in {a.workers} workers", flush=True)
    probs, t0, last, trained = {}, time.time(), 0., 0
    meta = dict(folds=len(folds), seeds=a.seeds, seed_step=SEED_STEP, photos=len(df), configs={c: CONFIGS[c] for c in configs})
    with mp.get_context('spawn').Pool(a.workers, _init) as pool:
        for key, p in pool.imap_unordered(_train, [(c, k, f, maps[CONFIGS[c].get('frozen_blocks') or 0], y, tr, te) for c, k, f in todo
                                                    for tr, te in [folds[f]]]):
            probs[key] = p; trained += 1
            if time.time() - last > 20 or trained == len(todo):
                last = time.time(); meta.update(trained=trained, seconds=round(last - t0))
                save(out, probs, summarise(probs, counts, folds, configs, a.seeds), meta)
                print(f"  {trained}/{len(todo)} trainings, {last - t0:.0f} s", flush=True)
    print('\n'.join(summarise(probs, counts, folds, configs, a.seeds)))


if __name__ == '__main__': main()
