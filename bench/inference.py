"""The fast CPU path against PyTorch eager: images/s at batch 1 and the accuracy change, on real ABID photos.

    python bench/inference.py                      # trains a quick real model first (efficientnet_lite0, 128 px, 1 epoch)
    python bench/inference.py --model MODEL_DIR    # a model trained on real photos (`bincount train`)
    python bench/inference.py --speed-arch resnet50 --speed-only   # speed alone, randomly initialised weights

Runs each runtime (PyTorch eager fp32, ONNX Runtime fp32, ONNX Runtime int8 calibrated on `n_calib` train photos)
on the same real photos of the test split, one photo at a time, and prints a table: model images/s (preprocessed
input), end-to-end images/s (JPEG bytes -> count), speed-up over eager, accuracy against the labels, agreement with eager.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path
import numpy as np
import torch
from bincount.core import dataset_view, get_logger, image_path, read_labels, sample_dir
from bincount.handler import OnnxRuntime, Predictor, decode_image, read_config
from bincount.modeldir import load_torch_predictor
from bincount.export import export_int8, export_onnx

log = get_logger('bincount.bench')


def real_dataset(work:Path) -> Path:
    "A dataset dir over the real sample (images symlinked, own labels.csv), so training never writes into shared/."
    d = work/'abid'
    if not (d/'labels.csv').exists():
        dataset_view(sample_dir(), d)
    from bincount.data import ensure_split
    ensure_split(d)  # a train/valid/test split column in our copy of labels.csv: calibrate on train, score on test
    return d


def quick_model(data:Path, out:Path, arch:str, size:int, max_count:int) -> Path:
    "Train a quick model on the real photos (ImageNet weights, one epoch, all layers), unless `out` has one."
    if (out/'model.safetensors').exists(): return out
    from bincount.train import train_model
    t = time.time()
    m = train_model(data, out, arch=arch, epochs=1, freeze_epochs=0, lr=2e-3, bs=32, size=size, max_count=max_count,
                    tta=False, label_smoothing=.1)
    log.info(f"trained {arch} on real photos in {time.time()-t:.0f} s: {json.dumps(m)[:300]}")
    return out


def random_model(out:Path, arch:str, n_classes:int=6, size:int=224) -> Path:
    "A model dir of `arch` with random weights, in the learner's layout: for speed alone (speed does not depend on weights)."
    if (out/'model.safetensors').exists(): return out
    from fastai.vision.learner import create_timm_model
    from safetensors.torch import save_file
    from bincount.archs import get_arch
    info = get_arch(arch)
    model, _ = create_timm_model(info.timm, n_classes, pretrained=False)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out/'model.safetensors'))
    cfg = dict(arch=arch, timm=info.timm, classes=list(range(n_classes)), mean=list(info.mean), std=list(info.std), head={},
               size=[size, size], resize='squash', tta=False)
    (out/'config.json').write_text(json.dumps(cfg, indent=2))
    return out


def time_runtimes(preds:dict, xs:list, raw:list[bytes], warmup:int=5, block:int=10) -> dict:
    """Images/s at batch 1 of each predictor: the model alone (preprocessed arrays) and end to end (JPEG bytes -> counts).
    The runtimes take turns `block` photos at a time, so a change in the machine's load hits them all alike, while
    the thread pools of one runtime (which spin for a while after a call) rarely overlap the next one's calls."""
    for p in preds.values():
        for x in xs[:warmup]: p.probs(x[None])
    model_s, e2e_s, probs = dict.fromkeys(preds, 0.), dict.fromkeys(preds, 0.), {k: [] for k in preds}
    for i in range(0, len(xs), block):
        for k, p in preds.items():
            t = time.perf_counter()
            probs[k] += [p.probs(x[None]) for x in xs[i:i+block]]
            model_s[k] += time.perf_counter() - t
        for k, p in preds.items():
            t = time.perf_counter()
            for b in raw[i:i+block]: p.predict([decode_image(b)])
            e2e_s[k] += time.perf_counter() - t
    return {k: dict(model_ips=len(xs)/model_s[k], e2e_ips=len(raw)/e2e_s[k], probs=np.concatenate(probs[k])) for k in preds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', help='a model dir trained on real photos (default: train a quick one in --work)')
    p.add_argument('--work', default='/tmp/bincount-bench', help='where the quick model and the ONNX exports go')
    p.add_argument('--arch', default='efficientnet_lite0', help='arch of the quick model')
    p.add_argument('--size', type=int, default=128, help='image size of the quick model')
    p.add_argument('--max-count', type=int, default=5, help='the quick model counts 0..max_count')
    p.add_argument('--n', type=int, default=150, help='test photos to time and score')
    p.add_argument('--n-calib', type=int, default=64, help='train photos to calibrate int8 on')
    p.add_argument('--threads', type=int, default=os.cpu_count(), help='CPU threads for every runtime')
    p.add_argument('--speed-arch', default=None, help='also time this arch with random weights (e.g. resnet50)')
    p.add_argument('--speed-only', action='store_true', help='only the --speed-arch timing')
    p.add_argument('--reexport', action='store_true', help='export and quantize again even if the files in --work are newer')
    a = p.parse_args(argv)
    torch.set_flush_denormal(True)
    work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
    data = real_dataset(work)
    runs = []
    if not a.speed_only:
        model = Path(a.model) if a.model else quick_model(data, work/f'{a.arch}-{a.size}', a.arch, a.size, a.max_count)
        runs.append(('trained', model))
    if a.speed_arch: runs.append(('random', random_model(work/f'{a.speed_arch}-random', a.speed_arch)))
    for kind, model in runs:
        cfg = json.loads((model/'config.json').read_text())
        df = read_labels(data)
        test = df[(df['split'] == 'test') & (df['count'] <= max(cfg['classes']))].head(a.n)
        raw = [image_path(data, i).read_bytes() for i in test['id']]
        labels = test['count'].to_numpy()
        eager = load_torch_predictor(model, a.threads)
        xs = [eager.preprocess(decode_image(b)) for b in raw]
        fresh = lambda p: p.exists() and p.stat().st_mtime > (model/'model.safetensors').stat().st_mtime and not a.reexport
        fp32, int8 = work/f'{model.name}.onnx', work/f'{model.name}.int8.onnx'
        if not fresh(fp32): export_onnx(model, fp32)
        t = time.time()
        if not fresh(int8): export_int8(model, int8, data, a.n_calib, fp32=fp32)
        log.info(f"int8 quantization, {a.n_calib} calibration photos: {time.time()-t:.0f} s")
        onnx = lambda path: Predictor(read_config(model), OnnxRuntime(path, a.threads))
        res = time_runtimes({'torch eager fp32': eager, 'onnxruntime fp32': onnx(fp32), 'onnxruntime int8': onnx(int8)}, xs, raw)
        classes = np.array(cfg['classes'])
        base = res['torch eager fp32']
        print(f"\n{cfg['arch']} ({kind} weights), {cfg['size'][0]}x{cfg['size'][1]}, {len(raw)} real test photos, batch 1, "
              f"{a.threads} threads, {torch.get_num_threads()} torch threads")
        print(f"{'runtime':<18} {'model img/s':>11} {'e2e img/s':>10} {'speed-up':>9} {'accuracy':>9} {'agree':>7}")
        for name, r in res.items():
            pred = classes[r['probs'].argmax(1)]
            acc, agree = (pred == labels).mean(), (pred == classes[base['probs'].argmax(1)]).mean()
            print(f"{name:<18} {r['model_ips']:>11.1f} {r['e2e_ips']:>10.1f} {r['model_ips']/base['model_ips']:>8.1f}x "
                  f"{acc:>9.1%} {agree:>7.1%}")
        acc0 = (classes[base['probs'].argmax(1)] == labels).mean()
        acc8 = (classes[res['onnxruntime int8']['probs'].argmax(1)] == labels).mean()
        print(f"int8 vs eager: {res['onnxruntime int8']['model_ips']/base['model_ips']:.1f}x the images/s, "
              f"accuracy {100*(acc8-acc0):+.1f} points ({'weights random: accuracy meaningless' if kind == 'random' else 'real labels'})")


if __name__ == '__main__': sys.exit(main())
