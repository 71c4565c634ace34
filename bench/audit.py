"""How well `bincount audit` finds wrong inventory records, on real ABID photos the model never trained on.

The sample's photos with counts 1-5 are split in two halves (stratified by count). A model is trained on each half
with `bincount train` (EfficientNet-Lite0, offline ImageNet weights, `--recipe head`, calibrated on its own
valid split) and audits the other half, so every photo is audited by a model that did not see it. Then, in each of
`--draws` draws, half of the bins get a wrong record: their true count moved by 1 or 2, up or down, kept within 1-5.
Each ranking is scored against which records are wrong:

- AUROC: the chance that a wrong record ranks above a right one (0.5 is chance);
- caught at 10% / 20%: the share of all wrong records found when checking the 10% / 20% of bins ranked most
  suspicious (at most 20% / 40%, since half the records are wrong; chance 10% / 20%);
- hit rate at 10%: the share of the bins checked that were wrong (chance 50%).

Rankings, side by side on the same draws: `bincount audit` (calibrated `p_expected`, lowest first); the same on the
raw probabilities (temperature 1); the naive one, |top-class count - record| (ties in random order); the distance
of the expected count from the record; and chance. Figures are mean and standard deviation over draws; the
difference to the naive ranking is paired, draw by draw.

Models and probabilities are cached in `bincount.core.cache_dir()/bench/audit` (training both: ~10 min on 2 cores).
The head recipe keeps the figures comparable with those first published; the default tail recipe counts better.

    python bench/audit.py [--draws 20] [--out bench/results/audit.json]
"""
import argparse, hashlib, json, tempfile, time, warnings
from pathlib import Path
import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from bincount.audit import audit_table
from bincount.cli import main as bincount
from bincount.core import cache_dir, dataset_view, read_labels, sample_dir
from bincount.evaluate import predict_rows
from bincount.export import load_predictor
from bincount.handler import calibrate
from bincount.train import RECIPES


def held_out_probs(df, arch='efficientnet_lite0', seed=0) -> tuple[np.ndarray, np.ndarray, list, list]:
    "Calibrated and raw class probabilities of every row of `df`, each from the model trained on the other half; classes; temperatures."
    folds = list(StratifiedKFold(2, shuffle=True, random_state=seed).split(df, df['count']))
    key = hashlib.sha1(f"{arch}{seed}{RECIPES['head']}{','.join(df['id'])}".encode()).hexdigest()[:12]  # retrain when the recipe changes
    root = cache_dir()/'bench'/'audit'/key
    cal, raw, temps = np.zeros((len(df), 5)), np.zeros((len(df), 5)), []
    for k, (tr, te) in enumerate(folds):
        model, cached = root/f'model{k}', root/f'probs{k}.npz'
        if not (model/'config.json').exists():
            with tempfile.TemporaryDirectory() as d:
                data = dataset_view(sample_dir(), Path(d)/'data', df['id'].iloc[tr])
                t = time.time()
                assert bincount(['train', '--data', str(data), '--out', str(model), '--arch', arch, '--recipe', 'head', '--seed', str(seed)]) == 0
                print(f"fold {k}: trained on {len(tr)} photos in {time.time()-t:.0f} s")
        if not cached.exists():
            predictor = load_predictor(model, 'torch')
            rows = df.iloc[te].reset_index(drop=True).assign(line=lambda r: np.arange(len(r)) + 2)
            p, skipped = predict_rows(predictor, sample_dir(), rows)
            assert not skipped and predictor.classes == [1, 2, 3, 4, 5], (skipped, predictor.classes)
            np.savez(cached, probs=p, temperature=predictor.config['temperature'])
        z = np.load(cached)
        T = float(z['temperature']); temps.append(T)
        cal[te] = z['probs']
        raw[te] = calibrate(z['probs'], 1/T)  # undo the temperature: softmax(log p * T) is the uncalibrated answer
    return cal, raw, [1, 2, 3, 4, 5], temps


def corrupt(counts, rng, share=.5, lo=1, hi=5) -> tuple[np.ndarray, np.ndarray]:
    "Records with `share` of them wrong: the count moved by 1 or 2 either way, within lo-hi. Returns (records, wrong)."
    wrong = np.zeros(len(counts), bool); wrong[rng.choice(len(counts), int(len(counts)*share), replace=False)] = True
    rec = counts.copy()
    for i in np.flatnonzero(wrong):
        options = [c for d in (-2, -1, 1, 2) if lo <= (c := counts[i] + d) <= hi]
        rec[i] = rng.choice(options)
    return rec, wrong


def catch_rate(suspicion, wrong, top) -> float:
    "The share of all wrong records found among the `top` share of bins with the highest suspicion."
    n = int(round(len(wrong)*top))
    return float(wrong[np.argsort(-suspicion, kind='stable')[:n]].sum()/wrong.sum())


def hit_rate(suspicion, wrong, top) -> float:
    "The share of wrong records among the `top` share of bins with the highest suspicion."
    n = int(round(len(wrong)*top))
    return float(wrong[np.argsort(-suspicion, kind='stable')[:n]].mean())


def rankings(ids, rec, cal, raw, classes, rng) -> dict:
    "Suspicion scores (higher: check first) of each ranking; random tie-breaks come from `rng`."
    t = audit_table(ids, rec, cal, classes).set_index('id').loc[ids]  # what `bincount audit` writes
    jitter = rng.random(len(ids))*1e-6  # random order among ties of the coarse rankings
    return {'bincount audit (calibrated p_expected)': -t['rank'].to_numpy(dtype=float),
            'raw p_expected (temperature 1)': -raw[np.arange(len(ids)), rec - 1],
            'naive |top count - record|': np.abs(t['predicted'].to_numpy(dtype=float) - rec) + jitter,
            '|expected count - record|': np.abs(t['expected_count'].to_numpy() - rec),
            'chance': rng.random(len(ids))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--draws', type=int, default=20)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', type=Path, help='write the figures here as JSON (e.g. bench/results/audit.json)')
    a = ap.parse_args()
    warnings.filterwarnings('ignore')
    df = read_labels(sample_dir())
    df = df[df['count'].between(1, 5)].reset_index(drop=True)
    cal, raw, classes, temps = held_out_probs(df, seed=a.seed)
    ids, counts = df['id'].tolist(), df['count'].to_numpy()
    acc = float((np.asarray(classes)[cal.argmax(1)] == counts).mean())
    print(f"{len(df)} real photos (counts 1-5), each audited by the model trained on the other half; "
          f"held-out accuracy {acc:.1%}, temperatures {', '.join(f'{t:.2f}' for t in temps)}; {a.draws} draws, half the records wrong\n")
    rng, res = np.random.default_rng(a.seed), {}
    for _ in range(a.draws):
        rec, wrong = corrupt(counts, rng)
        for name, s in rankings(ids, rec, cal, raw, classes, rng).items():
            r = res.setdefault(name, {'auroc': [], 'caught_10': [], 'caught_20': [], 'hit_10': []})
            r['auroc'].append(roc_auc_score(wrong, s)); r['caught_10'].append(catch_rate(s, wrong, .1))
            r['caught_20'].append(catch_rate(s, wrong, .2)); r['hit_10'].append(hit_rate(s, wrong, .1))
    base = res['naive |top count - record|']
    print(f"{'ranking':42s} {'AUROC':>13s} {'vs naive':>14s} {'caught @10%':>13s} {'caught @20%':>13s} {'hit rate @10%':>13s} {'AUROC / naive':>14s}")
    table = {}
    for name, r in res.items():
        d = np.subtract(r['auroc'], base['auroc'])
        row = {k: [float(np.mean(v)), float(np.std(v))] for k, v in r.items()}
        row['auroc_minus_naive'] = [float(d.mean()), float(d.std()/np.sqrt(len(d)))]
        table[name] = row
        print(f"{name:42s} {np.mean(r['auroc']):.3f} ± {np.std(r['auroc']):.3f} {d.mean():+.3f} ± {d.std()/np.sqrt(len(d)):.3f} "
              f"{np.mean(r['caught_10']):6.1%} ± {np.std(r['caught_10']):4.1%} {np.mean(r['caught_20']):6.1%} ± {np.std(r['caught_20']):4.1%} "
              f"{np.mean(r['hit_10']):6.1%} ± {np.std(r['hit_10']):4.1%} "
              f"{np.mean(r['auroc'])/np.mean(base['auroc']):13.2f}x")
    print("\nHalf of all records are wrong: a perfect ranking catches 20% / 40% of them at 10% / 20% of bins checked, with a hit rate of 100%;"
          "\nchance catches 10% / 20%, with a hit rate of 50%.")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({'n': len(df), 'draws': a.draws, 'held_out_accuracy': acc, 'temperatures': temps,
                                     'rankings': table}, indent=1))
        print(f"wrote {a.out}")


if __name__ == '__main__':
    main()
