"""Accuracy on real ABID photos (counts 1-5): the course reference recipe against bincount's, side by side.

Same split (bincount.data.split_labels, seed 42, stratified 80/10/10), same pretrained backbone
(efficientnet_lite0, offline ImageNet weights, 224x224 squash, normalised once with mean=std=0.5).
The backbone is frozen in the head recipes, so its pooled features are computed once (photo and mirror image)
and cached; every head then trains in seconds, and seeds can be repeated to see the noise.

  python bench/accuracy.py                 # head recipes (feature extraction ~4 min on 2 idle cores, then cached)
  python bench/accuracy.py --full          # also `bincount train` itself: its default (head) and fine_tune recipes
"""
import argparse, hashlib, json, shutil, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch, timm
from torch import nn
from bincount.core import cache_dir, dataset_view, image_path, read_labels, sample_dir, write_labels
from bincount.data import split_labels
from bincount.archs import ARCHS, load_state, match_state
from bincount.evaluate import open_image
from bincount.handler import preprocess
from bincount.train import train_model

def features(data, df, arch='efficientnet_lite0', size=224, bs=32):
    "Concat-pooled (max, avg) features of each photo and its mirror image: [N, 2, 2*C], cached."
    key = hashlib.sha1((arch + str(size) + ','.join(df['id'])).encode()).hexdigest()[:12]
    p = cache_dir()/'bench'/f'{arch}_{size}_{key}.npz'
    if p.exists(): return np.load(p)['f']
    info = ARCHS[arch]
    body = timm.create_model(info.timm, pretrained=False, num_classes=0)
    body.load_state_dict(match_state(load_state(info.weights()), body.state_dict())); body.eval()
    cfg = dict(size=[size, size], resize='squash', mean=list(info.mean), std=list(info.std), pad_mode='zeros')
    out = np.zeros((len(df), 2, 2*body.num_features), dtype=np.float32)
    for i in range(0, len(df), bs):
        x = torch.from_numpy(np.stack([preprocess(open_image(image_path(data, b)), cfg) for b in df['id'][i:i+bs]]))
        with torch.inference_mode():
            for j, xx in enumerate((x, x.flip(-1))):
                f = body.forward_features(xx)
                out[i:i+len(x), j] = torch.cat([f.amax((2, 3)), f.mean((2, 3))], 1).numpy()
    p.parent.mkdir(parents=True, exist_ok=True); np.savez(p, f=out)
    return out

def course_head(C): return nn.Sequential(nn.Linear(C, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 5))
def fastai_head(nf, lin=512, ps=.5):  # fastai's vision_learner head, on concat-pooled features
    return nn.Sequential(nn.BatchNorm1d(nf), nn.Dropout(ps/2), nn.Linear(nf, lin, bias=False), nn.ReLU(),
                         nn.BatchNorm1d(lin), nn.Dropout(ps), nn.Linear(lin, 5, bias=False))

RECIPES = {  # name -> (head on C channels, which features, optimiser, epochs, one-cycle max lr, label smoothing, TTA)
    'course: MLP 128-64-5, Adagrad .01, 5 ep, flip': (lambda C: course_head(C), 'avg', lambda p: torch.optim.Adagrad(p, lr=.01), 5, None, 0., False),
    'bincount head: fastai head, AdamW 1cycle 3e-3, 10 ep, flip': (lambda C: fastai_head(2*C), 'cat', lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=.01), 10, 3e-3, 0., False),
    'bincount head + TTA (flip)': (lambda C: fastai_head(2*C), 'cat', lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=.01), 10, 3e-3, 0., True),
    'bincount head + TTA + label smoothing .1, 20 ep, 1e-2': (lambda C: fastai_head(2*C), 'cat', lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=.01), 20, 1e-2, .1, True),
}

def run_head(F, y, tr, idx_eval, recipe, seed, bs=32):
    head, which, opt_f, epochs, max_lr, ls, tta = recipe
    C = F.shape[-1]//2
    F = torch.tensor(F[..., C:] if which == 'avg' else F)
    torch.manual_seed(seed); g = torch.Generator().manual_seed(seed)
    m = head(C); opt = opt_f(m.parameters())
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=epochs*((len(tr)+bs-1)//bs), pct_start=.25) if max_lr else None
    loss = nn.CrossEntropyLoss(label_smoothing=ls)
    for _ in range(epochs):
        m.train(); perm = tr[torch.randperm(len(tr), generator=g).numpy()]
        for i in range(0, len(perm), bs):
            b = perm[i:i+bs]; flip = torch.randint(0, 2, (len(b),), generator=g).numpy()
            l = loss(m(F[b, flip]), torch.tensor(y[b])); opt.zero_grad(); l.backward(); opt.step()
            if sched: sched.step()
    m.eval()
    with torch.no_grad():
        p = m(F[idx_eval, 0]).softmax(-1)
        if tta: p = (p + m(F[idx_eval, 1]).softmax(-1))/2
    return p.numpy()

def metrics(probs, counts):
    pred, ex = probs.argmax(1) + 1, probs @ np.arange(1, 6)
    return dict(acc=float((pred == counts).mean()), rmse=float(np.sqrt(((pred - counts)**2).mean())),
                rmse_expected=float(np.sqrt(((ex - counts)**2).mean())))

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('--seeds', type=int, default=3); ap.add_argument('--full', action='store_true')
    ap.add_argument('--epochs', type=int, default=3, help='unfrozen epochs of --recipe fine_tune')
    ap.add_argument('--recipes', nargs='+', default=['head', 'fine_tune'], help='bincount train recipes run by --full')
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    data = sample_dir()
    df = read_labels(data); df = df[df['count'].between(1, 5)].reset_index(drop=True)[['id', 'count']]
    df = split_labels(df, seed=42)
    tr, va, te = (np.where(df['split'] == s)[0] for s in ('train', 'valid', 'test'))
    y, counts = df['count'].to_numpy() - 1, df['count'].to_numpy()
    print(f"ABID counts 1-5: train {len(tr)}, valid {len(va)}, test {len(te)}; test noise ~ +/-{100*np.sqrt(.3*.7/len(te)):.1f} pts (1 s.e.)")
    t = time.time(); F = features(data, df); print(f"features (photo + mirror, lite0 224): {time.time()-t:.0f} s (cached after the first run)")
    rows = [dict(recipe="always '3' (baseline)", **metrics(np.eye(5)[np.full(len(te), 2)], counts[te]), seconds=0.)]
    for name, rec in RECIPES.items():
        rs = []
        for s in range(a.seeds):
            t = time.time(); p = run_head(F, y, tr, te, rec, s); rs.append({**metrics(p, counts[te]), 'seconds': time.time() - t})
        rows.append(dict(recipe=f"{name} (mean of {a.seeds} seeds)", **pd.DataFrame(rs).mean().to_dict()))
    if a.full:  # `bincount train` itself on the same split: its default (head on cached features) and fine_tune
        with tempfile.TemporaryDirectory() as d:
            ds = dataset_view(data, Path(d)/'abid15', ids=df['id'])
            write_labels(df, ds)
            for recipe, kw in (('head', dict(lr='auto')), ('fine_tune', dict(epochs=a.epochs, lr=2e-3))):
                if recipe not in a.recipes: continue
                t = time.time(); m = train_model(ds, Path(d)/recipe, arch='efficientnet_lite0', recipe=recipe, **kw)
                rows.append(dict(recipe=f"bincount train --recipe {recipe} ({m['epochs']} ep, lr {m['lr']:.1e}, lite0 224, TTA)",
                                 acc=m['test_accuracy'], rmse=m['test_rmse'], rmse_expected=m['test_rmse_expected'],
                                 seconds=time.time() - t))
    print(pd.DataFrame(rows).round(3).to_string(index=False))

if __name__ == '__main__': main()
