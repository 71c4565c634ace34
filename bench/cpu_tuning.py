"""`tune_malloc`'s settings: `bincount train` with them (the default) and without (`BINCOUNT_MALLOC_TUNING=0`).

    python bench/cpu_tuning.py [--n 300] [--recipe tail] [--epochs 2] [--rounds 2]

Each run is a fresh `bincount train` process on the same private view of `--n` real sample photos (counts 1-5),
EfficientNet-Lite0 from its offline ImageNet weights, with an empty cache (so the frozen front runs over every photo).
The two settings take turns, `--rounds` times each; the best time of each is kept. Prints wall seconds, the kernel's
share of CPU time (page faults), peak RSS, and the ratios. Both flush denormals to zero: only malloc differs.
"""
import argparse, os, subprocess, sys, tempfile, time
from pathlib import Path
from bincount.core import dataset_view, read_labels, sample_dir

def train_once(data, d, tuned, a):
    "Wall seconds, user and system CPU seconds, and peak RSS (MB) of one `bincount train` process."
    home, out = tempfile.mkdtemp(dir=d), tempfile.mkdtemp(dir=d)
    env = {**os.environ, 'BINCOUNT_HOME': home, 'BINCOUNT_LOG_LEVEL': 'WARNING', 'BINCOUNT_MALLOC_TUNING': '1' if tuned else '0'}
    cmd = [sys.executable, '-c', 'import sys; from bincount.cli import main; sys.exit(main())', 'train', '--data', str(data), '--out', out, '--arch', 'efficientnet_lite0',
           '--recipe', a.recipe, '--epochs', str(a.epochs), '--seed', '0']
    with open(Path(out)/'stderr.txt', 'w+') as err:  # a file, not a pipe: nothing reads a pipe while wait4 waits
        t0 = time.perf_counter()
        _, status, ru = os.wait4(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err).pid, 0)
        wall = time.perf_counter() - t0
        if code := os.waitstatus_to_exitcode(status): err.seek(0); sys.exit(f"bincount train failed ({code}): {err.read()[-2000:]}")
    return dict(wall=wall, user=ru.ru_utime, sys=ru.ru_stime, rss=ru.ru_maxrss/1024)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=300); ap.add_argument('--recipe', default='tail')
    ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--rounds', type=int, default=2)
    a = ap.parse_args()
    labels = read_labels(sample_dir())
    ids = labels[labels['count'].between(1, 5)]['id'][:a.n]
    runs = {False: [], True: []}
    with tempfile.TemporaryDirectory() as d:
        data = dataset_view(sample_dir(), Path(d)/'data', ids)
        for _ in range(a.rounds):
            for tuned in (False, True): runs[tuned].append(train_once(data, d, tuned, a))
    best = {k: min(v, key=lambda r: r['wall']) for k, v in runs.items()}
    print(f"bincount train --recipe {a.recipe} --epochs {a.epochs}, EfficientNet-Lite0, {a.n} real photos, {os.cpu_count()} CPUs, best of {a.rounds}")
    for tuned, r in best.items():
        print(f"  {'tuned malloc' if tuned else 'glibc default':14s} {r['wall']:6.1f} s wall, CPU {r['user']:6.1f} s user + {r['sys']:6.1f} s kernel, "
              f"peak RSS {r['rss']:6.0f} MB")
    b, t = best[False], best[True]
    print(f"  tuned/default: time {t['wall']/b['wall']:.2f}x (speed-up {b['wall']/t['wall']:.2f}x), kernel CPU {t['sys']/b['sys']:.2f}x, "
          f"peak RSS {t['rss']/b['rss']:.2f}x")
    print('  all runs (wall s):', {('tuned' if k else 'default'): [round(r['wall'], 1) for r in v] for k, v in runs.items()})

if __name__ == '__main__': main()
