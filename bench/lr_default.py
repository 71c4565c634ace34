"""`bincount train`'s default learning rate, before and after the redesign, on the real ABID sample.

Before: `--lr auto` took the 'valley' of a 50-step lr_find, unclipped. After: the head recipe reads a 200-step curve
with the 'slide' rule and keeps the rate in 1e-3..3e-2. Everything else is `bincount train`'s default recipe
(EfficientNet-Lite0 from its offline ImageNet weights, the head on cached features, 10 epochs, TTA), on counts 0-5
(`--max-count 5`, the issue's command) of the whole sample, split by each seed (a different split each).

    python bench/lr_default.py [--seeds 42 1 2] [--arch efficientnet_lite0]

Prints, per seed, the learning rate each default chose and its test accuracy, then the mean and standard deviation
of each, and the paired difference with its standard error. The body's features are computed once per split and
cached (bench/out/home), so the two runs of a seed differ only in the learning rate.
"""
import argparse, json, os, statistics, tempfile, time
from pathlib import Path

OUT = Path(__file__).resolve().parent/'out'
os.environ.setdefault('BINCOUNT_HOME', str(OUT/'home'))
from bincount.core import dataset_view, sample_dir, tune_cpu
from bincount.train import train_model

BEFORE = dict(lr_find_its=50, lr_rule='valley', lr_range=None)  # the default until the redesign
AFTER = {}  # today's default: the recipe's

def run(seed, arch, settings, d):
    data = dataset_view(sample_dir(), Path(d)/f'data-{seed}')  # a private view: the split is written there, not in the sample
    t0 = time.time()
    m = train_model(data, Path(d)/f'model-{seed}-{len(settings)}', arch=arch, max_count=5, seed=seed, **settings)
    cfg = json.loads((Path(d)/f'model-{seed}-{len(settings)}'/'config.json').read_text())
    return dict(lr=cfg['lr'], test=m['test_accuracy'], valid=m['valid_accuracy'], n=m['test_n'], seconds=time.time() - t0)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[42, 1, 2])
    p.add_argument('--arch', default='efficientnet_lite0')
    a = p.parse_args()
    tune_cpu()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for seed in a.seeds:
            b, f = run(seed, a.arch, BEFORE, d), run(seed, a.arch, AFTER, d)
            rows.append((seed, b, f))
            print(f"seed {seed:>3}: before lr {b['lr']:.2e} test {b['test']:.1%} | after lr {f['lr']:.2e} test {f['test']:.1%} "
                  f"(n={b['n']}; {b['seconds']:.0f} s, {f['seconds']:.0f} s)", flush=True)
    bt, ft = [r[1]['test'] for r in rows], [r[2]['test'] for r in rows]
    diffs = [f - b for b, f in zip(bt, ft)]
    sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else float('nan')
    print(f"\nbefore (valley, 50 steps, unclipped): test accuracy {statistics.mean(bt):.1%} +- {sd(bt):.1%} (sd over {len(bt)} splits); "
          f"lr {min(r[1]['lr'] for r in rows):.1e}..{max(r[1]['lr'] for r in rows):.1e}")
    print(f"after  (slide, 200 steps, 1e-3..3e-2): test accuracy {statistics.mean(ft):.1%} +- {sd(ft):.1%}; "
          f"lr {min(r[2]['lr'] for r in rows):.1e}..{max(r[2]['lr'] for r in rows):.1e}")
    print(f"after - before, paired: {statistics.mean(diffs):+.1%} +- {sd(diffs)/len(diffs)**.5:.1%} (standard error)")

if __name__ == '__main__': main()
