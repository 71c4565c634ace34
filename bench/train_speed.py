"""Training images/s: bincount's fastai loop against a plain PyTorch loop, same model, data, batch size and threads.

  python bench/train_speed.py [--n 192] [--size 160] [--bs 32]

Both loops take their batches from the same fastai DataLoader (decoding, resize, augmentation included), train
efficientnet_lite0 with the whole network unfrozen, AdamW and cross-entropy; only the train phase is timed,
after one warm-up batch each. The two are run alternately, twice, and the best of each is kept.
"""
import argparse, tempfile, time
from pathlib import Path
import torch
from torch import nn
from fastai.callback.core import Callback
from bincount.core import dataset_view, read_labels, sample_dir, write_labels, tune_cpu
from bincount.data import bin_dls, plain_batches
from bincount.learner import bin_learner

class TrainTimer(Callback):
    order = 100
    def before_epoch(self): self.n, self.t = 0, None
    def after_batch(self):
        if not self.training: return
        if self.t is None: self.t = time.perf_counter()  # the first batch is the warm-up
        else: self.n += len(self.yb[0])
    def after_train(self): self.ips = self.n/(time.perf_counter() - self.t)

def fastai_ips(learn):
    learn.fit(1, 1e-3)
    return learn.train_timer.ips

def plain_ips(model, dl):
    opt, loss, n, t = torch.optim.AdamW(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(), 0, None
    model.train()
    for xb, yb in plain_batches(dl):
        l = loss(model(xb), yb); opt.zero_grad(); l.backward(); opt.step()
        if t is None: t = time.perf_counter()
        else: n += len(yb)
    return n/(time.perf_counter() - t)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=192); ap.add_argument('--size', type=int, default=160); ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--num-workers', type=int, default=0); ap.add_argument('--threads', type=int, default=torch.get_num_threads())
    a = ap.parse_args()
    tune_cpu(); torch.set_num_threads(a.threads)
    df = read_labels(sample_dir()); df = df[df['count'].between(1, 5)].head(a.n + a.bs)[['id', 'count']]
    df['split'] = ['train']*a.n + ['valid']*a.bs
    with tempfile.TemporaryDirectory() as d:
        ds = dataset_view(sample_dir(), Path(d)/'ds', ids=df['id']); write_labels(df, ds)
        dls = bin_dls(ds, bs=a.bs, size=a.size, num_workers=a.num_workers)
        learn = bin_learner(dls, 'efficientnet_lite0', cbs=TrainTimer(), metrics=[])
        learn.unfreeze()
        res = {'fastai': [], 'plain': []}
        for _ in range(2):
            res['fastai'].append(fastai_ips(learn))
            res['plain'].append(plain_ips(learn.model, dls.train))
    f, p = max(res['fastai']), max(res['plain'])
    print(f"efficientnet_lite0 {a.size}px, bs {a.bs}, {a.n} photos, {a.threads} threads, num_workers {a.num_workers}")
    print(f"fastai loop: {f:.1f} img/s   plain PyTorch loop: {p:.1f} img/s   fastai/plain = {f/p:.3f} (overhead {100*(1-f/p):.1f}%)")
    print('all runs:', {k: [round(v, 1) for v in vs] for k, vs in res.items()})

if __name__ == '__main__': main()
