"""Accuracy on real ABID photos (counts 1-5): recipes compared by repeated stratified k-fold cross-validation.

Every recipe sees the same folds of the sample's photos with counts 1-5 (StratifiedKFold, 5 folds, repeated with
2 shuffles: 10 train/test splits of ~1,440/360 photos) and is scored on each fold's held-out photos. The table gives
mean accuracy, RMSE of the predicted count, within-one, and the paired difference to the course recipe on the same
folds with its standard error (sd of the per-fold differences / sqrt(folds); the folds overlap, so read it as a
lower bound of the noise). A recipe is better only when that difference is clear of two standard errors.

The backbone (EfficientNet-Lite0, offline ImageNet weights) is frozen in the head recipes, so its features are
computed once per input size, for each photo and its mirror image, and cached in `bincount.core.cache_dir()/bench`:
pooled (max and mean) outputs of the last five blocks and of the head, and a 2x2 grid of the head's map (on 2 cores:
~4 min at 224 px, ~15 min at 448 px, the first time). The tail recipe (`bincount train`'s default) freezes only the
body's first five stages: their maps are cached the same way (~3 min at 320 px), and the last stages are trained
in each fold, three times with three seeds, 5 epochs each (on 2 cores with nothing else running, 2-8 min a training
depending on the CPU: 60-240 min for the 10 folds; `bench/tail_search.py` trains them two at a time and this bench
reads them back).

The `EXPLORED` recipes (the steps to the tail recipe, and the variants of it tried since) run only when named with
--recipes; `--repeats 1` runs the first 5 folds alone, the same as the first 5 of the full run, and `--repeat 2` the
other 5 (with the full run's seeds). A tail training's test probabilities are kept in the cache too (`remembered`), so
an ensemble of seeds, or a re-run, trains only what no earlier run did. With `--keep`, a run that measures a few recipes
keeps the others' figures (and the learning curve) already in `--out`, so only the rows that changed are trained again.

The "GPU:" recipes fine-tune the whole network on the photos: with `--device cuda`, seconds a fold (the tail recipe and
the features run there too); on 2 cores, hours.

    python bench/accuracy.py [--repeats 2 | --repeat K] [--folds 5] [--recipes NAME ...] [--best NAME] [--keep] [--out FILE] [--device cuda]
"""
import argparse, functools, hashlib, inspect, io, json, math, os, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, torch, timm
from torch import nn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.preprocessing import StandardScaler
from fastai.data.core import DataLoaders
from bincount.core import atomic_write_bytes, atomic_write_text, cache_dir, image_path, read_labels, sample_dir, set_seed, tune_cpu
from bincount.archs import ARCHS, load_state, match_state, partner_net, split_body
from bincount.evaluate import open_image
from bincount.learner import CountSmoothingCrossEntropy, FlipFeatures, partner_learner
from bincount.train import RECIPES as TRAIN_RECIPES
from bincount.handler import preprocess

BLOCKS = (2, 3, 4, 5, 6)  # the EfficientNet stages whose outputs are pooled besides the head's
DEVICE = torch.device('cpu')  # where the networks run: `--device`


def _body(arch:str, drop_path:float=0.) -> nn.Module:
    "The arch's timm network with its offline ImageNet weights, without a classifier (`drop_path`: timm's stochastic depth)."
    info = ARCHS[arch]
    body = timm.create_model(info.timm, pretrained=False, num_classes=0, drop_path_rate=drop_path)
    body.load_state_dict(match_state(load_state(info.weights()), body.state_dict()))
    return body


def _cfg(arch:str, size:int) -> dict:
    "How the handler prepares a photo for `arch` at `size`: squashed, normalised with the weights' statistics."
    info = ARCHS[arch]
    return dict(size=[size, size], resize='squash', mean=list(info.mean), std=list(info.std), pad_mode='zeros')


def photos(df, size:int, arch:str='efficientnet_lite0') -> torch.Tensor:
    "The photos of `df` as the handler prepares them for `arch` at `size`: float32 [N, 3, size, size]."
    return torch.from_numpy(np.stack([preprocess(open_image(image_path(sample_dir(), b)), _cfg(arch, size)) for b in df['id']]))


def features(df, size:int, arch:str='efficientnet_lite0', bs:int=16) -> dict:
    "Pooled features of each photo of `df` and its mirror image, by layer: {'b2'..'b6', 'head', 'grid2'} -> [N, 2, C]."
    key = hashlib.sha1(f"{arch}{size}{','.join(df['id'])}".encode()).hexdigest()[:12]
    path = cache_dir()/'bench'/f"{arch}_{size}_{key}.npz"
    if path.exists(): return dict(np.load(path))
    body, taps = _body(arch).eval().to(DEVICE), {}
    for i in BLOCKS: body.blocks[i].register_forward_hook(lambda m, a, o, i=i: taps.__setitem__(f'b{i}', o))
    out = {}
    for s in range(0, len(df), bs):
        x = photos(df[s:s+bs], size, arch).to(DEVICE)
        with torch.inference_mode():
            for v, xx in enumerate((x, x.flip(-1))):
                f = body.forward_features(xx)
                pooled = {k: torch.cat([m.amax((2, 3)), m.mean((2, 3))], 1) for k, m in {**taps, 'head': f}.items()}
                pooled['grid2'] = nn.functional.adaptive_avg_pool2d(f, 2).flatten(1)
                for k, p in pooled.items(): out.setdefault(k, np.zeros((len(df), 2, p.shape[1]), np.float32))[s:s+len(x), v] = p.cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True); np.savez(path, **out)
    return out


def flipped(x:torch.Tensor, v:int) -> torch.Tensor:
    "View `v` of a batch of images: bit 1 mirrors left-right, bit 2 top-bottom (0: as is, 1: mirror, 2: upside down, 3: both)."
    return x.flip([d for bit, d in ((1, -1), (2, -2)) if v & bit]) if v else x


def front_path(df, size:int, arch:str='efficientnet_lite0', views:int=2, frozen_blocks:int|None=None) -> Path:
    "Where `front_maps` keeps the maps of `df`'s photos in the cache."
    fb = frozen_blocks or ARCHS[arch].frozen_blocks
    key = hashlib.sha1(f"front{arch}{size}{','.join(df['id'])}{'' if views == 2 else views}{'' if fb == ARCHS[arch].frozen_blocks else f'fb{fb}'}".encode()).hexdigest()[:12]
    return cache_dir()/'bench'/f"{arch}_{size}_front_{key}.npy"


def front_maps(df, size:int, arch:str='efficientnet_lite0', bs:int=16, views:int=2, frozen_blocks:int|None=None) -> np.ndarray:
    "The maps out of the body's frozen front (`split_body` at `frozen_blocks`, default the arch's) for each photo's first `views` `flipped` views: [N, views, C, H, W], fp16."
    fb, path = frozen_blocks or ARCHS[arch].frozen_blocks, front_path(df, size, arch, views, frozen_blocks)
    if path.exists(): return np.load(path)
    front = split_body(_body(arch), fb)[0].eval().to(DEVICE)
    out = None
    for s in range(0, len(df), bs):
        x = photos(df[s:s+bs], size, arch).to(DEVICE)
        with torch.inference_mode(): m = torch.stack([front(flipped(x, v)) for v in range(views)], 1).half().cpu().numpy()
        if out is None: out = np.zeros((len(df), *m.shape[1:]), np.float16)
        out[s:s+len(x)] = m
    path.parent.mkdir(parents=True, exist_ok=True); np.save(path, out)
    return out


def back_features(M:np.ndarray, arch:str='efficientnet_lite0', bs:int=64) -> np.ndarray:
    "The frozen body's last stages run on the front's maps `M` [N, V, C, H, W] and mean-pooled: what the head recipe sees at the maps' size, [N, V, 1280]; cached."
    h = hashlib.sha1(arch.encode()); h.update(np.ascontiguousarray(M).data)
    path = cache_dir()/'bench'/f"{arch}_back_{h.hexdigest()[:12]}.npy"
    if path.exists(): return np.load(path)
    back, out = split_body(_body(arch), ARCHS[arch].frozen_blocks)[1].eval().to(DEVICE), np.zeros((*M.shape[:2], 1280), np.float32)
    with torch.inference_mode():
        for i in range(0, len(M), bs):
            for v in range(M.shape[1]): out[i:i+bs, v] = back(torch.from_numpy(M[i:i+bs, v]).to(DEVICE).float()).mean((2, 3)).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True); np.save(path, out)
    return out


def view(F:dict, layers:tuple, pool:str='both') -> np.ndarray:
    "The features of `layers` side by side: [N, 2, sum C]; `pool` 'avg' keeps only the mean half of each pooled layer."
    parts = []
    for k in layers:
        a = F[k]
        if pool == 'avg' and k != 'grid2': a = a[..., a.shape[-1]//2:]
        parts.append(a)
    return np.concatenate(parts, -1)


# ------------------------------------------------------------------ heads: fit on train rows, return test probabilities
def course_mlp(X, y, tr, te, seed):
    "The course project's head: MLP 128-64-5 on the average-pooled features, Adagrad lr 0.01, 5 epochs, bs 32, flips."
    return torch_head(X, y, tr, te, seed, lambda C: nn.Sequential(nn.Linear(C, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 5)),
                      opt=lambda p: torch.optim.Adagrad(p, lr=.01), epochs=5, one_cycle=None, tta=False)


def fastai_head(nf, lin=512, ps=.5):
    "fastai's `create_head` on concatenated pooled features (BatchNorm, dropout, linear 512, ReLU, BatchNorm, dropout, linear)."
    return nn.Sequential(nn.BatchNorm1d(nf), nn.Dropout(ps/2), nn.Linear(nf, lin, bias=False), nn.ReLU(),
                         nn.BatchNorm1d(lin), nn.Dropout(ps), nn.Linear(lin, 5, bias=False))


def plain_mlp(C):
    "The course's MLP 128-64-5 (no BatchNorm, no dropout): `bincount train`'s head recipe since Dec 2026 (`bincount.archs.bin_head`, bn=False)."
    return nn.Sequential(nn.Linear(C, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 5))


def torch_head(X, y, tr, te, seed, make, opt=None, epochs=10, one_cycle=1e-2, tta=True, bs=32, ls=0., count_loss=0.):
    "Train `make(C)` on rows `tr` (photo or mirror at random each draw); probabilities of rows `te` (averaged with mirrors if `tta`)."
    torch.manual_seed(seed); g = torch.Generator().manual_seed(seed)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    m = make(X.shape[-1])
    o = (opt or (lambda p: torch.optim.AdamW(p, lr=one_cycle, weight_decay=.01)))(m.parameters())
    steps = epochs*((len(tr) + bs - 1)//bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(o, max_lr=one_cycle, total_steps=steps, pct_start=.25) if one_cycle else None
    ce, cls = nn.CrossEntropyLoss(label_smoothing=ls), torch.arange(5, dtype=torch.float32)
    for _ in range(epochs):
        m.train(); perm = tr[torch.randperm(len(tr), generator=g).numpy()]
        for i in range(0, len(perm), bs):
            b = perm[i:i+bs]
            if len(b) < 2: continue
            out = m(Xt[b, torch.randint(0, 2, (len(b),), generator=g)])
            loss = ce(out, yt[b])
            if count_loss: loss = loss + count_loss*((out.softmax(-1) @ cls - yt[b].float())**2).mean()
            o.zero_grad(); loss.backward(); o.step()
            if sched: sched.step()
    m.eval()
    with torch.no_grad():
        p = m(Xt[te, 0]).softmax(-1)
        if tta: p = (p + m(Xt[te, 1]).softmax(-1))/2
    return p.numpy()


def test_windows(windows:str|None, crop:int) -> list:
    "What the tail sees of a test map: None the whole map; 'centre' its central window of the trained size (`crop` cells smaller); 'five' that and the four corner windows."
    def win(dy, dx): return lambda x: x[..., dy:dy + x.shape[-2] - crop, dx:dx + x.shape[-1] - crop]
    if windows is None: return [lambda x: x]
    return [win(crop//2, crop//2)] + ([win(0, 0), win(0, crop), win(crop, 0), win(crop, crop)] if windows == 'five' else [])


def remembered(fit):
    "`fit`, its test probabilities kept in the bench's cache: a recipe that repeats a training another one ran (an ensemble's member, the default's) reads them back. The key: `fit`'s source, its inputs, the fold, the seed, the options, the device. A tuple of `windows` trains once and remembers each window's probabilities as if it had been asked for alone."
    src = inspect.getsource(fit)
    @functools.wraps(fit)
    def fit_remembered(M, y, tr, te, seed, **kw):
        data = hashlib.sha1(f"{src}{DEVICE}{M.shape}".encode())
        for a in (M, y, tr, te): data.update(np.ascontiguousarray(a).data)
        def path(**kw):
            args = inspect.signature(fit).bind(M, y, tr, te, seed, **kw); args.apply_defaults()
            h = data.copy(); h.update(str(sorted((k, v) for k, v in args.arguments.items() if k not in ('M', 'y', 'tr', 'te'))).encode())
            return cache_dir()/'bench'/'fits'/f"{fit.__name__}_{h.hexdigest()[:16]}.npy"
        many = isinstance(kw.get('windows'), tuple)
        paths = [path(**{**kw, 'windows': w}) for w in kw['windows']] if many else [path(**kw)]
        if all(p.exists() for p in paths): return np.stack([np.load(p) for p in paths]) if many else np.load(paths[0])
        p = fit(M, y, tr, te, seed, **kw)
        for pp, one in zip(paths, p if many else [p]):
            buf = io.BytesIO(); np.save(buf, one); atomic_write_bytes(pp, buf.getvalue())
        return p
    return fit_remembered


@remembered
def tail_fit(M, y, tr, te, seed, epochs=8, lr=3e-3, lr_div=3., crop=2, bs=32, arch='efficientnet_lite0', drop_path=0., frozen_blocks=None,
             mixup=0., sigma=0., wd=.01, ema=0., windows=None):
    "`bincount train`'s tail recipe: the body's last blocks (at lr/lr_div) and the plain MLP head trained on the front's maps, one cycle; flips, shifts; soft labels (`sigma`); TTA over the flips; `ema`: predict with an exponential moving average of the weights (this decay per step); `windows`: TTA over `test_windows` too (a tuple of them: one set of probabilities each, stacked, from the one training)."
    torch.manual_seed(seed); g = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads(); torch.set_num_threads(os.cpu_count())  # a network, not a small head: every core helps
    tail, head = split_body(_body(arch, drop_path), frozen_blocks or ARCHS[arch].frozen_blocks)[1], nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), plain_mlp(1280))
    tail, head = tail.to(DEVICE), head.to(DEVICE)
    Mt, yt, targets = torch.from_numpy(M), torch.tensor(y), CountSmoothingCrossEntropy(range(1, 6), sigma).targets.to(DEVICE)  # sigma 0: one-hot
    o = torch.optim.AdamW([dict(params=tail.parameters(), lr=lr/lr_div), dict(params=head.parameters(), lr=lr)], weight_decay=wd)
    steps = epochs*((len(tr) + bs - 1)//bs)
    net = nn.Sequential(tail, head)
    avg = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema),
                                              use_buffers=True) if ema else None
    sched = torch.optim.lr_scheduler.OneCycleLR(o, max_lr=[lr/lr_div, lr], total_steps=steps, pct_start=.25)
    for _ in range(epochs):
        tail.train(); head.train(); perm = tr[torch.randperm(len(tr), generator=g).numpy()]
        for i in range(0, len(perm), bs):
            b = perm[i:i+bs]
            if len(b) < 2: continue
            x = Mt[b, torch.randint(0, M.shape[1], (len(b),), generator=g)].to(DEVICE).float()
            if crop:
                dy, dx = torch.randint(0, crop + 1, (2,), generator=g).tolist(); x = x[..., dy:dy + x.shape[-2] - crop, dx:dx + x.shape[-1] - crop]
            t = targets[yt[b]]
            if mixup:  # fastai's MixUp: each map blended with another of the batch, the larger share its own
                lam = torch.distributions.Beta(mixup, mixup).sample((len(b),)).to(DEVICE); lam = torch.max(lam, 1 - lam)
                j = torch.randperm(len(b), generator=g).to(DEVICE)
                x = torch.lerp(x[j], x, lam[:, None, None, None]); t = torch.lerp(t[j], t, lam[:, None])
            loss = nn.functional.cross_entropy(head(tail(x)), t)
            o.zero_grad(); loss.backward(); o.step(); sched.step()
            if avg: avg.update_parameters(net)
    if avg: tail, head = avg.module[0], avg.module[1]
    tail.eval(); head.eval()
    def predict(windows):
        ws = test_windows(windows, crop)
        with torch.no_grad():
            return torch.cat([sum(head(tail(w(Mt[te[i:i+64], v].to(DEVICE).float()))).softmax(-1) for v in range(M.shape[1]) for w in ws)/(M.shape[1]*len(ws))
                              for i in range(0, len(te), 64)]).cpu().numpy()
    p = np.stack([predict(w) for w in windows]) if isinstance(windows, tuple) else predict(windows)
    torch.set_num_threads(threads)
    return p


def partner_fit(M, y, tr, te, seed, arch='efficientnet_lite0', epochs=5):
    "The tail's frozen partner (`Recipe.partner_epochs`, off by default since Dec 2026), trained by the package's own `partner_net` and `partner_learner` with the tail recipe's head and rate for `epochs`, on the frozen back's pooled maps (`back_features`, computed once for all folds): test probabilities, TTA over the mirror."
    set_seed(seed)
    rec, F = TRAIN_RECIPES['tail'], torch.from_numpy(back_features(M, arch))[..., None, None]  # pooled already: 1x1 maps the head's pooling keeps
    head = partner_net(_body(arch), ARCHS[arch].frozen_blocks, 5, **rec.head)[1]
    dls = DataLoaders.from_dsets(FlipFeatures(F[tr], y[tr], flip=True), FlipFeatures(F[te], y[te], flip=False), bs=32)
    learn = partner_learner(nn.Sequential(nn.Identity(), head), dls)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, rec.partner_lr)
    with torch.no_grad(): return (sum(head(F[te, v]).softmax(-1) for v in range(F.shape[1]))/F.shape[1]).numpy()


def augment(x:torch.Tensor, g:torch.Generator, zoom:float=.8, degrees:float=10.) -> torch.Tensor:
    "fastai-style augmentation of a batch on its device, one affine warp each: mirrored at random, a window of `zoom`-1 of the side, shifted, turned up to `degrees`."
    n, u = len(x), lambda lo, hi: torch.empty(len(x)).uniform_(lo, hi, generator=g)
    s, a = u(zoom, 1.), u(-degrees, degrees)*math.pi/180
    flip = torch.where(torch.rand(n, generator=g) < .5, -1., 1.)
    row0 = torch.stack([a.cos()*s*flip, -a.sin()*s, u(-1, 1)*(1 - s)], 1)
    row1 = torch.stack([a.sin()*s*flip, a.cos()*s, u(-1, 1)*(1 - s)], 1)
    grid = nn.functional.affine_grid(torch.stack([row0, row1], 1).to(x), list(x.shape), align_corners=False)
    return nn.functional.grid_sample(x, grid, padding_mode='reflection', align_corners=False)


def finetune_fit(P, y, tr, te, seed, epochs=15, lr=2e-3, lr_div=4., bs=64, sigma=.5, wd=.01, arch='efficientnet_lite0'):
    "The whole network fine-tuned on the photos `P` (a GPU recipe: seconds a fold there, hours on 2 cores): body at lr/lr_div, the plain MLP head at lr, one cycle; `augment` on the device; soft labels (`sigma`); TTA over the mirror image; bf16 autocast on a GPU."
    torch.manual_seed(seed); g = torch.Generator().manual_seed(seed)
    body, head = _body(arch), plain_mlp(1280)
    net = nn.Sequential(body, head).to(DEVICE).to(memory_format=torch.channels_last)
    o = torch.optim.AdamW([dict(params=body.parameters(), lr=lr/lr_div), dict(params=head.parameters(), lr=lr)], weight_decay=wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(o, max_lr=[lr/lr_div, lr], total_steps=epochs*((len(tr) + bs - 1)//bs), pct_start=.25)
    Pd, yt, targets = P.to(DEVICE), torch.tensor(y), CountSmoothingCrossEntropy(range(1, 6), sigma).targets.to(DEVICE)
    amp = dict(device_type=DEVICE.type, dtype=torch.bfloat16, enabled=DEVICE.type == 'cuda')
    t, seen = time.time(), 0
    for _ in range(epochs):
        net.train(); perm = tr[torch.randperm(len(tr), generator=g).numpy()]
        for i in range(0, len(perm), bs):
            b = perm[i:i+bs]
            if len(b) < 2: continue
            x = augment(Pd[torch.from_numpy(b).to(DEVICE)].float(), g).contiguous(memory_format=torch.channels_last)
            with torch.autocast(**amp): out = net(x)
            loss = nn.functional.cross_entropy(out.float(), targets[yt[b]])
            o.zero_grad(); loss.backward(); o.step(); sched.step(); seen += len(b)
    if DEVICE.type == 'cuda': torch.cuda.synchronize()
    print(f"    fine-tune (seed {seed}): {seen/(time.time() - t):.0f} photos/s in training", flush=True)
    net.eval()
    with torch.no_grad(), torch.autocast(**amp):
        p = [sum(net(xx).float().softmax(-1) for xx in (x, x.flip(-1)))/2
             for x in (Pd[torch.from_numpy(te[i:i+256]).to(DEVICE)].float().contiguous(memory_format=torch.channels_last) for i in range(0, len(te), 256))]
    return torch.cat(p).cpu().numpy()


def logreg(X, y, tr, te, seed, C=.05):
    "Multinomial logistic regression on standardised features, trained on photos and mirrors; test probabilities averaged over both."
    Xtr, ytr = X[tr].reshape(-1, X.shape[-1]), np.repeat(y[tr], 2)
    sc = StandardScaler().fit(Xtr)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        lr = LogisticRegression(C=C, max_iter=300, random_state=seed).fit(sc.transform(Xtr), ytr)
    return (lr.predict_proba(sc.transform(X[te, 0])) + lr.predict_proba(sc.transform(X[te, 1])))/2


def with_more(fit):
    "`fit`, trained also on the sample's photos with more than 5 objects (labelled 5: '5 or more'); every fold tests on the same photos."
    def fit_more(*a, **k): return fit(*a, **k)
    fit_more.more = True  # main() adds those photos' maps to X, label 5 to y, their rows to every fold's training rows
    return fit_more


def ensemble(*fits):
    "The mean of several heads' probabilities."
    return lambda X, y, tr, te, seed: np.mean([f(X, y, tr, te, seed + k) for k, f in enumerate(fits)], 0)


def seeds(n:int=2, **kw):
    "The tail trained `n` times, with the fold's seed, seed + 100, seed + 200, ... (`kw`: its options), probabilities averaged."
    return lambda X, y, tr, te, seed: sum(tail_fit(X, y, tr, te, seed + 100*k, **kw) for k in range(n))/n


# name -> (input size, layers, pooling, head); layers ('front', V, F, A): the maps of V `flipped` views (default 2) out of the first F
# stages (default, or 0: the arch's `frozen_blocks`) of arch A (default EfficientNet-Lite0)
RECIPES = {
    "course: frozen backbone, MLP 128-64-5, Adagrad .01, 5 ep": (224, ('head',), 'avg', course_mlp),
    "fastai head, 1cycle 1e-2, 10 ep, TTA": (224, ('head',), 'both', lambda *a: torch_head(*a, make=fastai_head)),
    "bincount train before Dec 2026: the same with label smoothing .1": (224, ('head',), 'both', lambda *a: torch_head(*a, make=fastai_head, ls=.1)),
    "course MLP (no BatchNorm, no dropout), AdamW 1cycle 1e-3, 5 ep, TTA": (224, ('head',), 'avg', lambda *a: torch_head(*a, make=plain_mlp, one_cycle=1e-3, epochs=5)),
    "bincount train --recipe head: the same at 3e-3": (224, ('head',), 'avg', lambda *a: torch_head(*a, make=plain_mlp, one_cycle=3e-3, epochs=5)),
    "logistic regression, 224 px, head": (224, ('head',), 'both', logreg),
    "fastai head, 448 px, head": (448, ('head',), 'both', lambda *a: torch_head(*a, make=fastai_head)),
    "logistic regression, 448 px, head": (448, ('head',), 'both', logreg),
    "logistic regression, 448 px, blocks 4-6 + head": (448, ('b4', 'b5', 'b6', 'head'), 'both', logreg),
    "fastai head, 448 px, blocks 4-6 + head": (448, ('b4', 'b5', 'b6', 'head'), 'both', lambda *a: torch_head(*a, make=fastai_head)),
    "fastai head + count loss, 448 px, blocks 4-6 + head": (448, ('b4', 'b5', 'b6', 'head'), 'both',
                                                            lambda *a: torch_head(*a, make=fastai_head, count_loss=.5)),
    "ensemble: logreg + 2 fastai heads, 448 px, blocks 4-6 + head": (448, ('b4', 'b5', 'b6', 'head'), 'both',
        ensemble(logreg, lambda *a: torch_head(*a, make=fastai_head), lambda *a: torch_head(*a, make=fastai_head))),
    "bincount train's tail: last 2 stages + head conv (lr/3) + the MLP on the maps of the first 5, 320 px, 1cycle 3e-3, 5 ep, shifts, soft labels, "
    "TTA over the mirror, counting on the central window of the maps; trained three times (seeds k, k + 100, k + 200), averaged":
        (320, ('front',), None, seeds(3, sigma=.5, epochs=5, windows='centre')),
}
# The steps that led to the tail recipe, and the variants of it tried since (on 2 cores, 2-12 min a fold): they run only when
# named with --recipes. "tail, ..." is the tail before soft labels (one-hot targets, sigma 0). Figures: bench/README.md.
EXPLORED = {
    "two 8-epoch tails on the whole maps, averaged (the default before the central window, Dec 2026)": (320, ('front',), None, seeds(2, sigma=.5)),
    "5-epoch tail on the central window (one seed)": (320, ('front',), None, lambda *a: tail_fit(*a, sigma=.5, epochs=5, windows='centre')),
    "two 5-epoch tails on the central window, averaged": (320, ('front',), None, seeds(2, sigma=.5, epochs=5, windows='centre')),
    "three 5-epoch tails on the whole maps, averaged": (320, ('front',), None, seeds(3, sigma=.5, epochs=5)),
    "tail alone, soft labels (the default before its partner, Dec 2026)": (320, ('front',), None, lambda *a: tail_fit(*a, sigma=.5)),
    "tail averaged with its partner (an MLP on the pretrained last stages' pooled maps, 5 ep; the default before the second tail, Dec 2026)":
        (320, ('front',), None, lambda *a: (tail_fit(*a, sigma=.5) + partner_fit(*a))/2),
    "the tail's partner alone (bincount.learner.partner_learner)": (320, ('front',), None, partner_fit),
    "tail, one-hot labels (the default before soft labels)": (320, ('front',), None, tail_fit),
    "tail, body at lr/10, 6 ep, no shifts": (320, ('front',), None, lambda *a: tail_fit(*a, epochs=6, lr_div=10., crop=0)),
    "tail, one rate for body and head": (320, ('front',), None, lambda *a: tail_fit(*a, lr_div=1.)),
    "tail, 4 flips (mirror, upside down, both) in training and TTA": (320, ('front', 4), None, tail_fit),
    "tail at 448 px": (448, ('front',), None, tail_fit),
    "tail, 5 epochs": (320, ('front',), None, lambda *a: tail_fit(*a, epochs=5)),
    "tail with stochastic depth .2 in the trained stages": (320, ('front',), None, lambda *a: tail_fit(*a, drop_path=.2)),
    "tail training stage 5 too (4 stages frozen)": (320, ('front', 2, 4), None, lambda *a: tail_fit(*a, frozen_blocks=4)),
    "tail, MixUp .4 on the maps": (320, ('front',), None, lambda *a: tail_fit(*a, mixup=.4)),
    "tail, more photos (6 or more objects, trained as 5)": (320, ('front',), None, with_more(tail_fit)),
    "tail, soft labels + MixUp + more photos": (320, ('front',), None, with_more(lambda *a: tail_fit(*a, mixup=.4, sigma=.5))),
    "tail, soft labels sigma .75": (320, ('front',), None, lambda *a: tail_fit(*a, sigma=.75)),
    "tail, soft labels, 12 epochs": (320, ('front',), None, lambda *a: tail_fit(*a, sigma=.5, epochs=12)),
    "tail, soft labels, weight decay .1": (320, ('front',), None, lambda *a: tail_fit(*a, sigma=.5, wd=.1)),
    "tail, soft labels, EMA of the weights (decay .99 a step)": (320, ('front',), None, lambda *a: tail_fit(*a, sigma=.5, ema=.99)),
    "tail, soft labels, TTA over the central window of the maps (the size trained on)": (320, ('front',), None, lambda *a: tail_fit(*a, sigma=.5, windows='centre')),
    "tail, soft labels, TTA over five windows of the maps (centre and corners)": (320, ('front',), None, lambda *a: tail_fit(*a, sigma=.5, windows='five')),
    "tail on EfficientNet-Lite2 (its first 5 stages frozen), soft labels": (320, ('front', 2, 0, 'efficientnet_lite2'), None,
                                                                          lambda *a: tail_fit(*a, sigma=.5, arch='efficientnet_lite2')),
    "tail, two seeds averaged": (320, ('front',), None, seeds(2)),
    "tail, soft labels, other seeds (each fold's + 100)": (320, ('front',), None, lambda X, y, tr, te, seed: tail_fit(X, y, tr, te, seed + 100, sigma=.5)),
    "tail, soft labels, three seeds averaged (each fold's, + 100, + 200)": (320, ('front',), None, seeds(3, sigma=.5)),
    "tail, soft labels, two seeds averaged, then with the partner": (320, ('front',), None, lambda *a: (seeds(2, sigma=.5)(*a) + partner_fit(*a))/2),
    "GPU: fine-tune the whole network on the photos, 320 px, 15 ep, body at lr/4": (320, ('photos',), None, finetune_fit),
    "GPU: fine-tune the whole network, 30 ep": (320, ('photos',), None, lambda *a: finetune_fit(*a, epochs=30)),
}


def sample_folds(folds:int=5, repeats:int=2) -> tuple:
    "The sample's photos with counts 1-5 (`df`), those with more (`more`, for `with_more`), their counts, classes (count - 1) and the bench's folds: every script compares on these."
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
    ap.add_argument('--device', default='cpu', help="where the networks run: 'cpu', or 'cuda' for the GPU recipes (fine-tuning the whole network)")
    a = ap.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(a.device); torch.backends.cudnn.benchmark = DEVICE.type == 'cuda'
    tune_cpu(); torch.set_num_threads(1)  # small heads: one thread is fastest, and never fights for cores
    df, more, counts, y, folds = sample_folds(a.folds, a.repeat or a.repeats)
    RECIPES.update({n: r for n, r in EXPLORED.items() if a.recipes and any(s in n for s in a.recipes)})
    names = [n for n in RECIPES if n.startswith('course') or not a.recipes or any(s in n for s in a.recipes)]
    def source(n):  # what recipe `n` trains on: (size, views, stages, arch) of the front's maps, (size, -1, 0, arch) for the photos, (size, 0, 0, '') for pooled features
        size, layers = RECIPES[n][:2]
        if layers[0] == 'photos': return size, -1, 0, 'efficientnet_lite0'
        if layers[0] != 'front': return size, 0, 0, ''
        views = layers[1] if len(layers) > 1 else 2
        stages = layers[2] if len(layers) > 2 else 0  # 0: the arch's frozen_blocks
        return size, views, stages, layers[3] if len(layers) > 3 else 'efficientnet_lite0'
    inputs = {}
    for size, views, fb, arch in sorted({source(n) for n in names}):
        t = time.time()
        inputs[size, views, fb, arch] = (photos(df, size, arch).half() if views < 0 else front_maps(df, size, arch, views=views, frozen_blocks=fb or None)
                                         if views else features(df, size))
        what = 'photos' if views < 0 else f'{arch} front maps ({views} views)' if views else 'features'
        print(f"{what} at {size} px: {time.time()-t:.0f} s{' (cached after the first run)' if views >= 0 else ''}", flush=True)
    def X_of(n):
        size, layers, pool, _ = RECIPES[n]
        return inputs[source(n)] if layers[0] in ('front', 'photos') else view(inputs[size, 0, 0, ''], layers, pool)
    first_seed = (a.repeat - 1)*a.folds if a.repeat else 0  # a fold's seed is its place in the full run
    if a.repeat: folds = folds[first_seed:]
    print(f"ABID sample, counts 1-5: {len(df)} photos, {len(folds)} folds of ~{len(folds[0][1])} test photos; "
          f"one fold's accuracy has a standard error of ~{100*np.sqrt(.3*.7/len(folds[0][1])):.1f} points", flush=True)
    per, probs = {}, {}
    res = dict(folds=len(folds), photos=len(df), device=str(DEVICE), recipes={})
    kept = kept_figures(a.out, res) if a.keep else {}  # read before it is rewritten
    old = kept.get('curve')
    for n in names:
        X, yy, fit, t = X_of(n), y, RECIPES[n][3], time.time()
        extra = np.arange(len(df), len(df) + len(more)) if getattr(fit, 'more', False) else np.arange(0)
        if len(extra):
            size, views, fb, arch = source(n)
            X, yy = np.concatenate([X, front_maps(more, size, arch, views=views, frozen_blocks=fb or None)]), np.concatenate([y, np.full(len(more), 4)])
        probs[n] = [fit(X, yy, np.concatenate([tr, extra]), te, k) for k, (tr, te) in enumerate(folds, first_seed)]
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
        X, fit, curve, first = X_of(n), RECIPES[n][3], {}, folds[:a.folds]  # the first repeat: each photo tested once
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
