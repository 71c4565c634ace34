"""Load test of `bincount serve`: N concurrent clients x P real photos on 127.0.0.1; and the SageMaker container stack.

    python bench/serve.py --model MODEL_DIR|model.tar.gz [--clients 8] [--photos 25] [--onnx|--int8] [--workers 1]
    python bench/serve.py --torchserve model.tar.gz     # the archive in AWS's serving stack (TorchServe + Java)

Load test: starts a real `bincount serve` subprocess on a free port, warms it up, then runs `clients` threads that
each POST `photos` distinct real JPEGs, one request at a time: a warm-up round, then `rounds` measured ones. Prints
throughput, p50/p99 latency and errors per round, and the RSS of every server process after each: memory must stay
flat (under 10% growth over the measured rounds). Ends with SIGTERM and checks a clean exit.

--torchserve: extracts the archive as /opt/ml/model would be, writes the TorchServe config that AWS's
`sagemaker-pytorch-inference` writes (its own code generates it), starts TorchServe with AWS's handler service and
`code/` on PYTHONPATH (and `bincount` shadowed by a package that fails to import, as the container has none), and
sends real photos and bad requests to its /invocations.
"""
from __future__ import annotations
import argparse, base64, json, os, re, signal, subprocess, sys, tarfile, tempfile, threading, time
import urllib.error, urllib.request
from pathlib import Path
import numpy as np
import psutil
from bincount.core import free_port, image_path, read_labels, sample_dir


def post(url:str, body:bytes, content_type:str='image/jpeg') -> tuple[int, bytes, float]:
    "POST to /invocations: (status, body, seconds)."
    t = time.perf_counter()
    req = urllib.request.Request(url + '/invocations', data=body, headers={'Content-Type': content_type})
    try:
        with urllib.request.urlopen(req, timeout=120) as r: return r.status, r.read(), time.perf_counter() - t
    except urllib.error.HTTPError as e: return e.code, e.read(), time.perf_counter() - t


def wait_ping(url:str, proc=None, timeout:float=300):
    t = time.time()
    while time.time() - t < timeout:
        if proc is not None and proc.poll() is not None: raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(url + '/ping', timeout=2).status == 200: return
        except OSError: pass
        time.sleep(.2)
    raise SystemExit(f"{url} did not answer /ping in {timeout} s")


def rss_mb(pid:int) -> float:
    "The resident memory of a process and its children, in MB."
    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])/2**20


def load_round(url:str, photos:list[bytes], clients:int, per_client:int) -> dict:
    "Each of `clients` threads sends `per_client` photos in turn; latencies, errors, throughput."
    lat, errors, lock = [], [], threading.Lock()
    def client(i):
        for j in range(per_client):
            status, body, s = post(url, photos[(i*per_client + j) % len(photos)])
            with lock:
                lat.append(s)
                if status != 200 or 'count' not in json.loads(body): errors.append((status, body[:200]))
    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads: th.start()
    for th in threads: th.join()
    wall = time.perf_counter() - t
    lat = np.array(lat)*1e3
    return dict(requests=len(lat), errors=len(errors), first_errors=errors[:3], seconds=wall, rps=len(lat)/wall,
                p50_ms=float(np.percentile(lat, 50)), p99_ms=float(np.percentile(lat, 99)))


def load_test(a) -> int:
    ids = read_labels(sample_dir())['id'].tolist()
    photos = [image_path(sample_dir(), i).read_bytes() for i in ids[:a.clients*a.photos]]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(Path(sys.executable).parent/'bincount'), 'serve', '--model', a.model, '--port', str(port), '--workers', str(a.workers)]
    cmd += ['--onnx'] if a.onnx else ['--int8'] if a.int8 else []
    log = open(tempfile.mkstemp(suffix='.log')[1], 'w+')
    proc = subprocess.Popen(cmd, stderr=log)
    try:
        wait_ping(url, proc)
        time.sleep(2 if a.workers > 1 else 0)  # the other workers finish loading
        warm = load_round(url, photos, a.clients, a.photos)  # warm up: every batch size, every thread, the allocators' pools
        before = rss_mb(proc.pid)
        rounds, rss = [], []
        for _ in range(a.rounds):
            rounds.append(load_round(url, photos, a.clients, a.photos))
            rss.append(rss_mb(proc.pid))
        after = rss[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    log.seek(0)
    lines = log.read().splitlines()
    runtime = 'int8' if a.int8 else 'onnx' if a.onnx else 'torch'
    print(f"\nbincount serve --model {a.model} ({runtime}, {a.workers} worker{'s'*(a.workers > 1)}), {os.cpu_count()} CPUs, "
          f"{a.clients} clients x {a.photos} real photos per round")
    for i, r in enumerate(rounds, 1):
        print(f"round {i}: {r['requests']} requests in {r['seconds']:.1f} s = {r['rps']:.1f} photos/s, "
              f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, errors {r['errors']} {r['first_errors'] or ''}")
    print(f"server RSS: {before:.0f} MB after a warm-up round, then {', '.join(f'{m:.0f}' for m in rss)} MB after each round "
          f"({after-before:+.0f} MB)")
    logged = sum(' POST /invocations ' in l for l in lines)
    print(f"request log lines: {logged} (requests sent: {warm['requests'] + sum(r['requests'] for r in rounds)}); "
          f"exit status after SIGTERM: {code}; warm-up errors: {warm['errors']}")
    ok = code == 0 and all(r['errors'] == 0 for r in rounds) and after - before < max(50, .1*before)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def torchserve(a) -> int:
    "Serve the archive with AWS's SageMaker PyTorch serving stack: TorchServe, its Java front end, AWS's handler service."
    import importlib.resources, importlib.util, shutil, types
    if importlib.util.find_spec('pkg_resources') is None:  # setuptools>=81 dropped it; AWS's module only needs this one function
        sys.modules['pkg_resources'] = types.SimpleNamespace(
            resource_filename=lambda pkg, name: str(importlib.resources.files(pkg)/name.lstrip('/')))
    from sagemaker_pytorch_serving_container import handler_service, torchserve as ts
    base = Path(tempfile.mkdtemp(prefix='sm-'))
    model_dir = base/'model'
    with tarfile.open(a.torchserve) as tar: tar.extractall(model_dir, filter='data')
    port = free_port()
    blocker = base/'no-bincount'/'bincount'  # shadows the installed bincount: the container has none
    blocker.mkdir(parents=True)
    (blocker/'__init__.py').write_text("raise ImportError('bincount is not installed in the serving container')\n")
    env = {**os.environ, 'SAGEMAKER_BIND_TO_PORT': str(port), 'PYTHONPATH': f"{model_dir/'code'}:{base/'no-bincount'}",
           'SAGEMAKER_MODEL_SERVER_WORKERS': '1', 'LOG_LOCATION': str(base/'logs'), 'METRICS_LOCATION': str(base/'logs')}
    os.environ.update({k: env[k] for k in ('SAGEMAKER_BIND_TO_PORT', 'SAGEMAKER_MODEL_SERVER_WORKERS')})
    props = base/'sagemaker-ts.properties'  # the container writes it to /etc; same text, generated by AWS's code
    props.write_text(ts._generate_ts_config_properties(handler_service.__file__))
    (base/'store').mkdir()
    cmd = ['torchserve', '--start', '--foreground', '--model-store', str(base/'store'), '--ts-config', str(props),
           '--log-config', ts.DEFAULT_TS_LOG_FILE, '--models', f"model={model_dir}"]
    print(' '.join(cmd))
    out = open(base/'torchserve.out', 'w+')
    proc = subprocess.Popen(cmd, cwd=base, env={**env, 'PATH': f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
                            stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ping(url, proc, timeout=240)
        for _ in range(240):  # /ping answers before the model's worker is up
            s, body, _ = post(url, b'x', 'text/plain')
            if s != 503 and b'not found' not in body.lower(): break
            time.sleep(.5)
        ids = read_labels(sample_dir())['id'].tolist()[:8]
        res = [post(url, image_path(sample_dir(), i).read_bytes()) for i in ids]
        batch = post(url, json.dumps([base64.b64encode(image_path(sample_dir(), i).read_bytes()).decode() for i in ids[:3]]).encode(),
                     'application/json')
        bad = [post(url, b'hello', 'image/jpeg')[0], post(url, b'a,b', 'text/csv')[0], post(url, b'', 'image/png')[0]]
    finally:
        subprocess.run(['torchserve', '--stop'], env={**env, 'PATH': f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
                       cwd=base, capture_output=True)
        try: proc.wait(timeout=60)
        except subprocess.TimeoutExpired: proc.kill()
    print(f"TorchServe + AWS handler service + code/inference.py from {a.torchserve}:")
    for i, (s, body, sec) in zip(ids, res): print(f"  {i}.jpg -> {s} {body[:120].decode()} ({sec*1e3:.0f} ms)")
    print(f"  JSON batch of 3 -> {batch[0]} {[r['count'] for r in json.loads(batch[1])] if batch[0] == 200 else batch[1][:200]}")
    print(f"  bad requests (not an image, text/csv, empty) -> {bad}")
    ok = all(s == 200 for s, _, _ in res) and batch[0] == 200 and bad == [400, 415, 400]
    if not ok:
        out.seek(0); print(out.read()[-4000:])
    shutil.rmtree(base, ignore_errors=True)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', help='a model directory or model.tar.gz')
    p.add_argument('--clients', type=int, default=8, help='concurrent clients')
    p.add_argument('--photos', type=int, default=25, help='real photos per client per round')
    p.add_argument('--rounds', type=int, default=3, help='measured rounds, after a warm-up round (memory after each)')
    p.add_argument('--workers', type=int, default=1, help='server worker processes')
    p.add_argument('--onnx', action='store_true', help='serve with ONNX Runtime')
    p.add_argument('--int8', action='store_true', help='serve the int8 graph')
    p.add_argument('--torchserve', metavar='MODEL_TAR_GZ', help="serve a packaged model with AWS's TorchServe stack instead")
    a = p.parse_args(argv)
    if a.torchserve: return torchserve(a)
    if not a.model: p.error('--model is required')
    return load_test(a)


if __name__ == '__main__': sys.exit(main())
