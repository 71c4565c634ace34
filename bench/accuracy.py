"""Accuracy on real ABID photos (counts 1-5): `bincount train`'s recipes against the course's, by repeated stratified k-fold cross-validation.

Every recipe sees the same folds of the sample's photos with counts 1-5 (StratifiedKFold, 5 folds, repeated with
2 shuffles: 10 train/test splits of ~1,440/360 photos) and is scored on each fold's held-out photos. The table gives
mean accuracy, RMSE of the predicted count, within-one, and the paired difference to the course recipe on the same
folds with its standard error (sd of the per-fold differences / sqrt(folds); the folds overlap, so read it as a
lower bound of the noise). A recipe is better only when that difference is clear of two standard errors.

bincount's recipes train through the library, as `bincount train` trains them: the tail recipe with
`bincount.tail.TailRecipe`'s `map_learner` and `fit`, the head recipe with `bincount.recipes.HeadRecipe`'s learner,
each on the fold's training photos, validated on its held-out ones. Only the course recipe, the baseline, keeps a loop
of its own: it reproduces the course project's code (Adagrad, 5 epochs, no fastai). The frozen parts of the network
run once per input size over each photo and its mirror image, and are cached in `bincount.core.cache_dir()/bench`:
the pooled features of the whole body at 224 px (~4 min on 2 cores the first time) and the maps of the first five
stages at 320 px (~3 min). A tail recipe's training costs 2-8 min a tail on 2 cores, depending on the CPU: the
default, three tails, 60-240 min for the 10 folds (`bench/tail_search.py` trains the folds two at a time, and this
bench reads its trainings back: a training's test probabilities are kept in the cache, `remembered`).

The `EXPLORED` recipes run only when named with --recipes; `--repeats 1` runs the first 5 folds alone, the same as the
first 5 of the full run, and `--repeat 2` the other 5 (with the full run's seeds). With `--keep`, a run that measures a
few recipes keeps the others' figures (and the learning curve) already in `--out`. The figures of recipes no longer in
the bench, and how they were measured, are in `bench/results/accuracy_history_2026-12.json` and `bench/results/HISTORY.md`.

    python bench/accuracy.py [--repeats 2 | --repeat K] [--folds 5] [--recipes NAME ...] [--best NAME] [--keep] [--out FILE]
"""
import argparse, contextlib, functools, hashlib, inspect, io, json, os, time
from pathlib import Path
import numpy as np, pandas as pd, torch, timm
from torch import nn
from sklearn.model_selection import RepeatedStratifiedKFold
from bincount.core import atomic_write_bytes, atomic_write_text, cache_dir, image_path, read_labels, sample_dir, set_seed, tune_cpu
from bincount.archs import ARCHS, bin_net, load_body, split_body
from bincount.evaluate import read_photo
from fastai.losses import CrossEntropyLossFlat
import bincount.tail
from bincount.learner import FlipFeatures, part_learner, trained_part
from bincount.recipes import RECIPES as TRAIN_RECIPES
from bincount.handler import preprocess

CLASSES = [1, 2, 3, 4, 5]  # the counts the bench scores; a photo's class is its count - 1


def _body(arch:str) -> nn.Module:
    "The arch's timm network with its offline ImageNet weights, without a classifier."
    return load_body(timm.create_model(ARCHS[arch].timm, pretrained=False, num_classes=0), ARCHS[arch].weights())


def _cfg(arch:str, size:int) -> dict:
    "How the handler prepares a photo for `arch` at `size`: squashed, normalised with the weights' statistics."
    info = ARCHS[arch]
    return dict(size=[size, size], resize='squash', mean=list(info.mean), std=list(info.std), pad_mode='zeros')


def photos(df, size:int, arch:str='efficientnet_lite0') -> torch.Tensor:
    "The photos of `df` as the handler prepares them for `arch` at `size`: float32 [N, 3, size, size]."
    return torch.from_numpy(np.stack([preprocess(read_photo(image_path(sample_dir(), b)), _cfg(arch, size)) for b in df['id']]))


def features(df, size:int=224, arch:str='efficientnet_lite0', bs:int=16) -> np.ndarray:
    "The whole frozen body's mean-pooled features of each photo of `df` and its mirror image, what the head recipes see: [N, 2, C]."
    key = hashlib.sha1(f"pooled{arch}{size}{','.join(df['id'])}".encode()).hexdigest()[:12]
    path = cache_dir()/'bench'/f"{arch}_{size}_pooled_{key}.npy"
    if path.exists(): return np.load(path)
    body, out = _body(arch).eval(), None
    for s in range(0, len(df), bs):
        x = photos(df[s:s+bs], size, arch)
        with torch.inference_mode(): f = torch.stack([body.forward_features(xx).mean((2, 3)) for xx in (x, x.flip(-1))], 1).numpy()
        if out is None: out = np.zeros((len(df), *f.shape[1:]), np.float32)
        out[s:s+len(x)] = f
    path.parent.mkdir(parents=True, exist_ok=True); np.save(path, out)
    return out


def front_path(df, size:int, arch:str='efficientnet_lite0', frozen_blocks:int|None=None) -> Path:
    "Where `front_maps` keeps the maps of `df`'s photos in the cache."
    fb = frozen_blocks or ARCHS[arch].frozen_blocks
    key = hashlib.sha1(f"front{arch}{size}{','.join(df['id'])}{'' if fb == ARCHS[arch].frozen_blocks else f'fb{fb}'}".encode()).hexdigest()[:12]
    return cache_dir()/'bench'/f"{arch}_{size}_front_{key}.npy"


def front_maps(df, size:int=320, arch:str='efficientnet_lite0', bs:int=16, frozen_blocks:int|None=None) -> np.ndarray:
    "The maps out of the body's frozen front (`split_body` at `frozen_blocks`, default the arch's) for each photo and its mirror image: [N, 2, C, H, W], fp16."
    fb, path = frozen_blocks or ARCHS[arch].frozen_blocks, front_path(df, size, arch, frozen_blocks)
    if path.exists(): return np.load(path)
    front = split_body(_body(arch), fb)[0].eval()
    out = None
    for s in range(0, len(df), bs):
        x = photos(df[s:s+bs], size, arch)
        with torch.inference_mode(): m = torch.stack([front(x), front(x.flip(-1))], 1).half().numpy()
        if out is None: out = np.zeros((len(df), *m.shape[1:]), np.float16)
        out[s:s+len(x)] = m
    path.parent.mkdir(parents=True, exist_ok=True); np.save(path, out)
    return out


# ------------------------------------------------------------------ recipes: fit on rows `tr`, return the test probabilities of rows `te`
def course_mlp(X, y, tr, te, seed):
    "The course project's head, as its code trains it (the baseline, so a loop of its own): MLP 128-64-5 on the mean-pooled features, Adagrad lr 0.01, 5 epochs, bs 32, a photo or its mirror image at random each draw, no TTA."
    torch.manual_seed(seed); g = torch.Generator().manual_seed(seed)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    m = nn.Sequential(nn.Linear(X.shape[-1], 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 5))
    o, ce = torch.optim.Adagrad(m.parameters(), lr=.01), nn.CrossEntropyLoss()
    for _ in range(5):
        m.train(); perm = tr[torch.randperm(len(tr), generator=g).numpy()]
        for i in range(0, len(perm), 32):
            b = perm[i:i+32]
            if len(b) < 2: continue
            loss = ce(m(Xt[b, torch.randint(0, 2, (len(b),), generator=g)]), yt[b])
            o.zero_grad(); loss.backward(); o.step()
    m.eval()
    with torch.no_grad(): return m(Xt[te, 0]).softmax(-1).numpy()


def head_fit(X, y, tr, te, seed, lr=3e-3, arch='efficientnet_lite0'):
    "`bincount train --recipe head` through the library (`bincount.recipes.HeadRecipe`): its MLP trained on the pooled features of rows `tr` by `part_learner` and the recipe's `fit`, at `lr` (lr_find's suggestion is kept in 1e-3..3e-3); test probabilities, TTA over the mirror image."
    set_seed(seed)
    rec = TRAIN_RECIPES['head']
    net = bin_net(arch, len(CLASSES), rec.head)
    F = torch.from_numpy(X)[..., None, None]  # pooled already: 1x1 maps that the head's pooling keeps
    learn = part_learner(net[1], [FlipFeatures(F[tr], y[tr], True), FlipFeatures(F[te], y[te], False)], CLASSES, CrossEntropyLossFlat())
    with learn.no_bar(), learn.no_logging(): rec.fit(net, learn, rec.epochs, lr, seed)
    net[1].eval()
    with torch.no_grad(): return (sum(net[1](F[te, v]).softmax(-1) for v in range(2))/2).numpy()


def remembered(fit):
    "`fit`, its test probabilities kept in the bench's cache: a recipe that repeats a training another run made reads them back. The key: `fit`'s source, the library's version of the recipe, its inputs, the fold, the seed and the options."
    src = inspect.getsource(fit) + repr(TRAIN_RECIPES['tail']) + inspect.getsource(bincount.tail)
    @functools.wraps(fit)
    def fit_remembered(M, y, tr, te, seed, **kw):
        h = hashlib.sha1(f"{src}{M.shape}".encode())
        for a in (M, y, tr, te): h.update(np.ascontiguousarray(a).data)
        args = inspect.signature(fit).bind(M, y, tr, te, seed, **kw); args.apply_defaults()
        h.update(str(sorted((k, v) for k, v in args.arguments.items() if k not in ('M', 'y', 'tr', 'te'))).encode())
        path = cache_dir()/'bench'/'fits'/f"{fit.__name__}_{h.hexdigest()[:16]}.npy"
        if path.exists(): return np.load(path)
        p = fit(M, y, tr, te, seed, **kw)
        buf = io.BytesIO(); np.save(buf, p); atomic_write_bytes(path, buf.getvalue())
        return p
    return fit_remembered


@remembered
def tail_fit(M, y, tr, te, seed, arch='efficientnet_lite0', bs=32, **settings):
    "`bincount train`'s tail recipe through the library: `bincount.tail.TailRecipe` (with `settings` changed, e.g. `tails=1`, `epochs=8`, `window=0`) trains the network on the front's maps `M` of rows `tr` with its `map_learner` and `fit`, validated on rows `te`; the exported `Tails`' test probabilities, averaged with the mirror image's as the handler's TTA does."
    set_seed(seed)
    threads = torch.get_num_threads(); torch.set_num_threads(os.cpu_count())  # a network, not a small head: every core helps
    rec = TRAIN_RECIPES['tail'].options(**settings)
    fb = rec.frozen_blocks or ARCHS[arch].frozen_blocks
    net = bin_net(arch, len(CLASSES), rec.head, weights=ARCHS[arch].weights())
    Mt = torch.from_numpy(np.ascontiguousarray(M))
    trainer = rec.map_learner(trained_part(net, fb)[1], (Mt[tr], y[tr]), (Mt[te], y[te]), CLASSES, fb, bs=bs)
    with trainer.no_bar(), trainer.no_logging(): tails, _ = rec.fit(net, trainer, rec.epochs, rec.lr, seed)
    tails.eval()
    with torch.no_grad():
        p = torch.cat([sum(tails.count(Mt[te[i:i+64], v].float()).softmax(-1) for v in range(2))/2 for i in range(0, len(te), 64)]).numpy()
    torch.set_num_threads(threads)
    return p



@contextlib.contextmanager
def torch_init():
    "Heads initialised as PyTorch initialises a `Linear` (its `reset_parameters`) instead of fastai's `kaiming_normal_`, as the bench's own loop did before Dec 7 2026: the library's `apply_init` replaced for the while."
    def reset(m, func=None):
        for layer in m.modules():
            if isinstance(layer, nn.Linear): layer.reset_parameters()
    saved = bincount.archs.apply_init, bincount.tail.apply_init
    bincount.archs.apply_init = bincount.tail.apply_init = reset
    try: yield
    finally: bincount.archs.apply_init, bincount.tail.apply_init = saved


@remembered
def torch_init_fit(M, y, tr, te, seed, **settings):
    "`tail_fit` with the heads initialised as the bench's loop before Dec 7 2026 initialised them (`torch_init`)."
    with torch_init(): return tail_fit.__wrapped__(M, y, tr, te, seed, **settings)

# name -> (what it trains on: 'pooled' features or the front's 'maps', fit)
RECIPES = {
    "course: frozen backbone, MLP 128-64-5, Adagrad .01, 5 ep": ('pooled', course_mlp),
    "bincount train --recipe head: the same MLP, fastai's one cycle at 3e-3, AdamW, 5 ep, TTA": ('pooled', head_fit),
    "bincount train (the default, the tail recipe): last 2 stages + head conv (lr/3) + the MLP on the maps of the first 5, 320 px, "
    "one cycle at 3e-3, 5 ep, shifted windows, soft labels; three tails (seeds k, k + 100, k + 200) averaged, on the central window, TTA":
        ('maps', lambda *a: tail_fit(*a)),
}
# Variants of the default, each through the library (its settings changed): they run only when named with --recipes.
EXPLORED = {
    "one tail (bincount train --tails 1)": ('maps', lambda *a: tail_fit(*a, tails=1)),
    "two tails (--tails 2)": ('maps', lambda *a: tail_fit(*a, tails=2)),
    "three tails, 8 epochs": ('maps', lambda *a: tail_fit(*a, epochs=8)),
    "three tails, no shifted windows (window 0)": ('maps', lambda *a: tail_fit(*a, window=0)),
    "three tails, one-hot labels (count_sigma 0)": ('maps', lambda *a: tail_fit(*a, count_sigma=0.)),
}


def sample_folds(folds:int=5, repeats:int=2) -> tuple:
    "The sample's photos with counts 1-5 (`df`), those with more (`more`), their counts, classes (count - 1) and the bench's folds: every script compares on these."
    labels = read_labels(sample_dir())
    df, more = (labels[keep].reset_index(drop=True) for keep in (labels['count'].between(1, 5), labels['count'] > 5))
    counts = df['count'].to_numpy()
    return df, more, counts, counts - 1, list(RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=0).split(df, counts - 1))


def metrics(p, counts):
    pred = p.argmax(1) + 1
    return dict(acc=(pred == counts).mean(), rmse=np.sqrt(((pred - counts)**2).mean()), within_one=(abs(pred - counts) <= 1).mean(),
                rmse_expected=np.sqrt(((p @ np.arange(1, 6) - counts)**2).mean()))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--folds', type=int, default=5); ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--repeat', type=int, help="run only the K-th repeat's folds (1-based), with the seeds the full run gives them")
    ap.add_argument('--recipes', nargs='+', help='substrings of the recipe names to run (default: all but EXPLORED); the course recipe always runs')
    ap.add_argument('--best', help="the recipe (a substring of its name) to look at closer: its learning curve (25%%, 50%%, 100%% "
                                   "of the training photos) and its out-of-fold probabilities, for the docs' confusion and reliability plots")
    ap.add_argument('--keep', action='store_true', help="keep what --out already holds (measured on the same folds) and this run does not "
                    "measure: the other recipes' figures, and with --best the learning curve (it names the recipe it measured) instead of "
                    "training at 25%% and 50%% again")
    ap.add_argument('--out', default='bench/out/accuracy.json', help='where to write the per-fold figures (JSON, after each recipe)')
    a = ap.parse_args(argv)
    tune_cpu(); torch.set_num_threads(1)  # small heads: one thread is fastest, and never fights for cores
    df, more, counts, y, folds = sample_folds(a.folds, a.repeat or a.repeats)
    RECIPES.update({n: r for n, r in EXPLORED.items() if a.recipes and any(s in n for s in a.recipes)})
    names = [n for n in RECIPES if n.startswith('course') or not a.recipes or any(s in n for s in a.recipes)]
    inputs = {}
    for kind in sorted({RECIPES[n][0] for n in names}):
        t = time.time()
        inputs[kind] = front_maps(df) if kind == 'maps' else features(df)
        print(f"{kind} ({'the front at 320 px' if kind == 'maps' else 'the whole body at 224 px'}): {time.time()-t:.0f} s (cached after the first run)", flush=True)
    first_seed = (a.repeat - 1)*a.folds if a.repeat else 0  # a fold's seed is its place in the full run
    if a.repeat: folds = folds[first_seed:]
    print(f"ABID sample, counts 1-5: {len(df)} photos, {len(folds)} folds of ~{len(folds[0][1])} test photos; "
          f"one fold's accuracy has a standard error of ~{100*np.sqrt(.3*.7/len(folds[0][1])):.1f} points", flush=True)
    per, probs = {}, {}
    res = dict(folds=len(folds), photos=len(df), device='cpu', recipes={})
    kept = kept_figures(a.out, res) if a.keep else {}  # read before it is rewritten
    old = kept.get('curve')
    for n in names:
        X, fit, t = inputs[RECIPES[n][0]], RECIPES[n][1], time.time()
        probs[n] = [fit(X, y, tr, te, k) for k, (tr, te) in enumerate(folds, first_seed)]
        per[n] = pd.DataFrame([metrics(p, counts[te]) for p, (tr, te) in zip(probs[n], folds)])
        print(f"  {n}: {100*per[n]['acc'].mean():.1f}% ({time.time()-t:.0f} s)", flush=True)
        res['recipes'][n] = per[n].to_dict('list'); write(a.out, res, kept)
    base, k = per[names[0]], len(folds)
    rows = [dict(recipe="always '3'", accuracy=f"{100*(counts == 3).mean():.1f}", rmse=f"{np.sqrt(((3 - counts)**2).mean()):.2f}",
                 within_one=f"{100*(abs(3 - counts) <= 1).mean():.1f}", vs_course='')]
    for n in names:
        r, d = per[n], 100*(per[n]['acc'] - base['acc'])
        rows.append(dict(recipe=n, accuracy=f"{100*r['acc'].mean():.1f} ± {100*r['acc'].std()/np.sqrt(k):.1f}",
                         rmse=f"{r['rmse'].mean():.2f}", rmse_expected=f"{r['rmse_expected'].mean():.2f}",
                         within_one=f"{100*r['within_one'].mean():.1f}",
                         vs_course='' if n == names[0] else f"{d.mean():+.1f} ± {d.std()/np.sqrt(k):.1f}"))
    print(pd.DataFrame(rows).fillna("").to_string(index=False))
    if a.best:
        n = next(n for n in names if a.best in n)
        X, fit, curve, first = inputs[RECIPES[n][0]], RECIPES[n][1], {}, folds[:a.folds]  # the first repeat: each photo tested once
        if old: print(f"learning curve kept from {a.out}, measured with {old['recipe']!r}", flush=True)
        for share in () if old else (.25, .5, 1.):
            accs = []
            for j, (tr, te) in enumerate(first):
                keep = np.concatenate([np.random.default_rng(j).choice(tr[y[tr] == c], int(round(share*(y[tr] == c).sum())), replace=False) for c in range(5)])
                accs.append(per[n]['acc'][j] if share == 1 else metrics(fit(X, y, keep, te, j), counts[te])['acc'])
            curve[share] = accs
            print(f"learning curve, {n}: {int(share*100)}% of the training photos (~{int(share*len(first[0][0]))}): "
                  f"{100*np.mean(accs):.1f} ± {100*np.std(accs)/np.sqrt(len(first)):.1f}%", flush=True)
        res['curve'] = old or dict(recipe=n, train_photos=len(first[0][0]), **{str(s): v for s, v in curve.items()})
        oof = np.zeros((len(df), 5))
        for p, (tr, te) in zip(probs[n], first): oof[te] = p
        res['oof'] = dict(recipe=n, ids=df['id'].tolist(), counts=counts.tolist(), probs=np.round(oof, 5).tolist())
    write(a.out, res, kept)


def kept_figures(path, res:dict) -> dict:
    "What `--keep` keeps of the figures in `path`: its recipes that the bench still has, and its learning curve; an error if they were measured on other folds than `res`'s."
    if not Path(path).exists(): return {}
    old = json.loads(Path(path).read_text())
    if (old['folds'], old['photos']) != (res['folds'], res['photos']):
        raise SystemExit(f"--keep: {path} holds {old['folds']} folds of {old['photos']} photos, this run has {res['folds']} of {res['photos']}: nothing to keep")
    gone = [n for n in old['recipes'] if n not in RECIPES and n not in EXPLORED]
    if gone: print(f"not kept from {path} (no longer in the bench): {'; '.join(gone)}", flush=True)
    return {**{k: old[k] for k in ('curve', 'oof') if k in old}, 'recipes': {n: r for n, r in old['recipes'].items() if n not in gone}}


def write(path, res:dict, kept:dict|None=None):
    "The bench's figures into `path` (JSON), atomically: a run stopped while writing leaves the last whole file. `kept`: figures `--keep` kept, for the recipes this run did not measure (in the bench's order)."
    order = [*RECIPES, *EXPLORED]
    kept = kept or {}
    recipes = sorted({**kept.get('recipes', {}), **res['recipes']}.items(), key=lambda kv: order.index(kv[0]))
    out = {**res, 'recipes': dict(recipes), **{k: v for k, v in kept.items() if k not in res and k != 'recipes'}}
    atomic_write_text(path, json.dumps(out, indent=1, default=float))


if __name__ == '__main__': main()
