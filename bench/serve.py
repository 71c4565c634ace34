"""`bincount serve` beside AWS's SageMaker serving stack (TorchServe + AWS's handler service), same archive, photos and load.

    python bench/serve.py --model model.tar.gz [--clients 8] [--photos 25] [--rounds 3] [--onnx]   # both, side by side
    python bench/serve.py --model MODEL_DIR|model.tar.gz --only bincount [--onnx|--int8] [--workers 1]
    python bench/serve.py --model model.tar.gz --only torchserve [--onnx]
    python bench/serve.py --torchserve model.tar.gz     # a smoke check of the archive in AWS's stack: a few photos, bad requests

Load test: start both servers on free ports of 127.0.0.1 and wait until each answers; then `clients` threads each POST
`photos` distinct real JPEGs, one request at a time, to one server: a warm-up round per server, then `rounds`
measured rounds per server, taking turns (never both loaded at once; the first of each pair alternates, so a drift in
the machine's load hits both alike). Per server: throughput, p50/p99 latency, errors, the server's CPU per photo and
the CPU other processes took meanwhile (noise: the figures are only comparable on an otherwise quiet machine), and
the RSS of the whole server process tree after every round (a sum over its processes: with --workers > 1 it counts the
pages that bincount's forked workers share with their parent once per process; PSS would not help, as the two
servers, up at the same time, share library pages too). Then a JSON batch of 3 and bad requests (not an image,
text/csv, an empty body, a JSON list of a number), which must all get a 4xx.

The two servers:
- `bincount serve --model ARCHIVE --workers N [--onnx]`: one process (a pre-fork parent and N workers when N > 1);
  it batches the photos of concurrent requests (up to 8) on one thread.
- TorchServe with AWS's `sagemaker-pytorch-inference` handler service and the archive's `code/inference.py`, as the
  SageMaker PyTorch container runs it: the archive extracted as /opt/ml/model would be, the TorchServe config that
  AWS's code generates (`SAGEMAKER_MODEL_SERVER_WORKERS=N`, TorchServe's default batch size of 1), the `torchserve`
  launcher, its Java front end and N Python workers. Its pid file and temp files go to a directory of its own, and its
  metrics port is a free one, so it does not meet another TorchServe on the machine.

Both run the same runtime on the same number of threads (`BINCOUNT_RUNTIME`, `BINCOUNT_THREADS` for the handler):
- `--onnx`: ONNX Runtime on the archive's own `model.onnx`, on both. TorchServe's workers see no `bincount` (it is
  shadowed by a package that fails to import), as in the container; `BINCOUNT_RUNTIME=onnx` (the container's default, auto, picks the same there).
- default, torch: PyTorch eager from `model.safetensors`, on both. The handler's torch path builds the network with
  bincount, so here TorchServe's workers import the installed `bincount` (the container has none: this is the
  serving stack's cost with the same model code, not a container that would work as is).
On a machine whose cores other processes keep busy, PyTorch's OpenMP threads spin-wait on each other: inference on
a process's main thread (TorchServe's worker) then costs many times the CPU, on another thread (bincount's batcher)
far less; `other processes (cores)` says when this may weigh on the torch figures.
The answers must agree: the same count for every photo, probabilities within 1e-4 (bincount batches concurrent
photos, TorchServe runs them one by one). Both servers are stopped at the end, on failure too (SIGTERM, then SIGKILL
for whatever of the process tree is left).
"""
from __future__ import annotations
import argparse, base64, contextlib, json, os, signal, subprocess, sys, tarfile, tempfile, threading, time
import urllib.error, urllib.request
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import psutil
from bincount.core import free_port, image_path, read_labels, sample_dir

BIN = Path(sys.executable).parent


def post(url:str, body:bytes, content_type:str='image/jpeg') -> tuple[int, bytes, float]:
    "POST to /invocations: (status, body, seconds)."
    t = time.perf_counter()
    req = urllib.request.Request(url + '/invocations', data=body, headers={'Content-Type': content_type})
    try:
        with urllib.request.urlopen(req, timeout=120) as r: return r.status, r.read(), time.perf_counter() - t
    except urllib.error.HTTPError as e: return e.code, e.read(), time.perf_counter() - t
    except OSError as e: return 0, repr(e).encode(), time.perf_counter() - t  # refused, reset, timed out: an error, status 0


def wait_ping(url:str, proc=None, timeout:float=300):
    t = time.time()
    while time.time() - t < timeout:
        if proc is not None and proc.poll() is not None: raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(url + '/ping', timeout=2).status == 200: return
        except OSError: pass
        time.sleep(.2)
    raise RuntimeError(f"{url} did not answer /ping in {timeout} s")


def tree(pid:int) -> list[psutil.Process]:
    p = psutil.Process(pid)
    return [p, *p.children(recursive=True)]


def _label(p:psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        cmd = ' '.join(p.cmdline())
        if 'org.pytorch.serve.ModelServer' in cmd: return 'java front end'
        if 'model_service_worker' in cmd: return 'python worker'
        if 'torchserve' in cmd: return 'torchserve launcher'
        if ' serve ' in cmd: return 'bincount serve'
    return p.name()


def rss_mb(pid:int) -> float:
    "The resident memory of a process and its children, in MB."
    return sum(q.memory_info().rss for q in tree(pid))/2**20


def rss_parts(pid:int) -> list[tuple[str, float]]:
    out = []
    for q in tree(pid):
        with contextlib.suppress(psutil.Error): out.append((_label(q), q.memory_info().rss/2**20))
    return out


def cpu_s(pid:int) -> np.ndarray:
    "CPU seconds [user, system] of a process tree so far (children that exited are not counted)."
    s = np.zeros(2)
    for q in tree(pid):
        with contextlib.suppress(psutil.Error): t = q.cpu_times(); s += (t.user, t.system)
    return s


def busy_s() -> float:
    "CPU seconds the whole machine has been busy, all processes (user, nice, system, interrupts; not idle, I/O wait, steal)."
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0) for f in ('user', 'nice', 'system', 'irq', 'softirq'))


def own_s() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def uses_onnxruntime(pid:int) -> bool:
    "Whether a process of the tree has ONNX Runtime's native library mapped."
    for q in tree(pid):
        with contextlib.suppress(psutil.Error):
            if any('onnxruntime_pybind11_state' in m.path for m in q.memory_maps()): return True
    return False


def _count(body:bytes):
    try: r = json.loads(body)
    except ValueError: return None
    return r if isinstance(r, dict) and 'count' in r else None


def load_round(url:str, photos:list[bytes], clients:int, per_client:int) -> dict:
    "Each of `clients` threads sends `per_client` photos in turn; latencies, errors, throughput, the answer per photo."
    lat, errors, answers, lock = [], [], {}, threading.Lock()
    def client(i):
        for j in range(per_client):
            k = (i*per_client + j) % len(photos)
            status, body, s = post(url, photos[k])
            r = _count(body) if status == 200 else None
            with lock:
                lat.append(s)
                if r is None: errors.append((status, body[:200]))
                else: answers[k] = r
    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads: th.start()
    for th in threads: th.join()
    wall = time.perf_counter() - t
    ms = np.array(lat)*1e3
    return dict(requests=len(ms), errors=len(errors), first_errors=errors[:3], seconds=wall, rps=len(ms)/wall, lat_ms=ms,
                p50_ms=float(np.percentile(ms, 50)), p99_ms=float(np.percentile(ms, 99)), answers=answers)


BAD = [('not an image', b'hello', 'image/jpeg'), ('text/csv', b'a,b', 'text/csv'), ('empty', b'', 'image/png'),
       ('JSON [1]', b'[1]', 'application/json')]

def checks(url:str, photos:list[bytes]) -> dict:
    "A JSON batch of 3 photos and the bad requests of `BAD`."
    s, body, _ = post(url, json.dumps([base64.b64encode(p).decode() for p in photos[:3]]).encode(), 'application/json')
    batch = [r.get('count') for r in json.loads(body)] if s == 200 else body[:200]
    return dict(batch_status=s, batch=batch, bad=[post(url, b, ct)[0] for _, b, ct in BAD])


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen
    startup_s: float = 0.
    log: str = ''
    code: int|str|None = None


def _stop(proc:subprocess.Popen, first=None, grace:float=60) -> int|str:
    "SIGTERM `first` (default: `proc`), wait for `proc`, then SIGKILL whatever of the process tree is left."
    try: procs = tree(proc.pid)
    except psutil.Error: procs = []
    with contextlib.suppress(ProcessLookupError, psutil.Error): (first or proc).send_signal(signal.SIGTERM)
    try: code = proc.wait(timeout=grace)
    except subprocess.TimeoutExpired: code = 'killed after SIGTERM timed out'
    _, alive = psutil.wait_procs([p for p in procs if p.pid != proc.pid], timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error): p.kill()
    if proc.poll() is None: proc.kill(); proc.wait()
    if alive: code = f"{code}; {len(alive)} process(es) killed"
    return code


@contextlib.contextmanager
def bincount_server(model, runtime:str='torch', workers:int=1):
    "`bincount serve` on a free port; stopped with SIGTERM (its exit status in `.code`)."
    port = free_port()
    cmd = [str(BIN/'bincount'), 'serve', '--model', str(model), '--port', str(port), '--workers', str(workers)]
    cmd += {'onnx': ['--onnx'], 'int8': ['--int8']}.get(runtime, [])
    with tempfile.TemporaryFile('w+') as log:
        t = time.perf_counter()
        srv = Server('bincount serve', f"http://127.0.0.1:{port}", subprocess.Popen(cmd, stderr=log))
        try:
            wait_ping(srv.url, srv.proc)
            if workers > 1: time.sleep(2)  # the other workers finish loading
            srv.startup_s = time.perf_counter() - t
            yield srv
        finally:
            srv.code = _stop(srv.proc)
            log.seek(0); srv.log = log.read()


def _aws_ts_config(port:int, workers:int) -> tuple[str, str]:
    "The TorchServe config that AWS's `sagemaker-pytorch-inference` writes, generated by its own code."
    import importlib.resources, importlib.util, types
    if importlib.util.find_spec('pkg_resources') is None:  # setuptools>=81 dropped it; AWS's module only needs this one function
        sys.modules['pkg_resources'] = types.SimpleNamespace(
            resource_filename=lambda pkg, name: str(importlib.resources.files(pkg)/name.lstrip('/')))
    from sagemaker_pytorch_serving_container import handler_service, torchserve as ts
    from bincount.testing import patched_env
    with patched_env(SAGEMAKER_BIND_TO_PORT=port, SAGEMAKER_MODEL_SERVER_WORKERS=workers):
        return ts._generate_ts_config_properties(handler_service.__file__), ts.DEFAULT_TS_LOG_FILE


@contextlib.contextmanager
def torchserve_server(archive, runtime:str='onnx', workers:int=1, threads:int|None=None):
    "TorchServe + AWS's handler service + the archive's code/inference.py on a free port, until the model answers."
    import shutil
    base = Path(tempfile.mkdtemp(prefix='sm-'))
    try:
        model_dir = base/'model'
        with tarfile.open(archive) as tar: tar.extractall(model_dir, filter='data')
        port = free_port()
        path = [str(model_dir/'code')]
        if runtime == 'onnx':  # the container has no bincount: shadow the installed one
            blocker = base/'no-bincount'/'bincount'
            blocker.mkdir(parents=True)
            (blocker/'__init__.py').write_text("raise ImportError('bincount is not installed in the serving container')\n")
            path.append(str(base/'no-bincount'))
        env = {**os.environ, 'SAGEMAKER_BIND_TO_PORT': str(port), 'SAGEMAKER_MODEL_SERVER_WORKERS': str(workers),
               'PYTHONPATH': ':'.join(path), 'LOG_LOCATION': str(base/'logs'), 'METRICS_LOCATION': str(base/'logs'),
               'BINCOUNT_RUNTIME': runtime, **({'BINCOUNT_THREADS': str(threads)} if threads else {}),
               'TMPDIR': str(base), 'TEMP': str(base),  # its pid file (tempfile.gettempdir()/.model_server.pid), Java's tmp
               'PATH': f"{BIN}:{os.environ['PATH']}"}
        props, log_config = _aws_ts_config(port, workers)
        # TorchServe's metrics endpoint defaults to 127.0.0.1:8082, which another TorchServe may hold
        props += f"\nmetrics_address=http://127.0.0.1:{free_port()}\n"
        (base/'sagemaker-ts.properties').write_text(props)
        (base/'store').mkdir()
        cmd = ['torchserve', '--start', '--foreground', '--model-store', str(base/'store'), '--ts-config',
               str(base/'sagemaker-ts.properties'), '--log-config', log_config, '--models', f"model={model_dir}"]
        with open(base/'torchserve.out', 'w+') as out:
            t = time.perf_counter()
            srv = Server('TorchServe + AWS', f"http://127.0.0.1:{port}",
                         subprocess.Popen(cmd, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT))
            try:
                wait_ping(srv.url, srv.proc, timeout=240)
                for _ in range(480):  # /ping answers before the model's worker is up: 503 or 'model not found' until then
                    s, body, _ = post(srv.url, b'x', 'text/plain')
                    if s not in (0, 503) and b'not found' not in body.lower(): break
                    if srv.proc.poll() is not None: raise RuntimeError(f"torchserve exited with {srv.proc.returncode}")
                    time.sleep(.25)
                else: raise RuntimeError("TorchServe's model worker did not come up in 120 s")
                srv.startup_s = time.perf_counter() - t
                yield srv
            finally:
                try: java = [p for p in tree(srv.proc.pid) if _label(p) == 'java front end']
                except psutil.Error: java = []
                srv.code = _stop(srv.proc, java[0] if java else None)  # as `torchserve --stop` does: SIGTERM to Java
                out.seek(0); srv.log = out.read()
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Load:
    "The load test of one server: `warm_up` once, `measured` rounds (possibly interleaved with another server's), `result`."
    def __init__(self, srv:Server, photos:list[bytes], a):
        self.srv, self.pid, self.photos, self.a = srv, srv.proc.pid, photos, a
        self.rounds, self.rss, self.cpu, self.busy, self.own = [], [], np.zeros(2), 0., 0.

    def warm_up(self):
        self.warm = load_round(self.srv.url, self.photos, self.a.clients, self.a.photos)  # every batch size, thread, pool
        self.rss_before = rss_mb(self.pid)

    def measured(self):
        "One measured round: its latencies, the server's CPU, the machine's, and the server's RSS after it."
        c, b, o = cpu_s(self.pid), busy_s(), own_s()
        self.rounds.append(load_round(self.srv.url, self.photos, self.a.clients, self.a.photos))
        self.cpu += cpu_s(self.pid) - c; self.busy += busy_s() - b; self.own += own_s() - o
        self.rss.append(rss_mb(self.pid))

    def result(self) -> dict:
        "The figures of the measured rounds, the answers per photo, then `checks`."
        rounds, (user, sys_) = self.rounds, self.cpu
        cpu = user + sys_
        lat = np.concatenate([r['lat_ms'] for r in rounds])
        n, secs = sum(r['requests'] for r in rounds), sum(r['seconds'] for r in rounds)
        answers = {}
        for r in [self.warm, *rounds]:
            for k, v in r['answers'].items(): answers.setdefault(k, []).append(v)
        unsteady = sum(len({v['count'] for v in vs}) > 1 for vs in answers.values())  # a photo answered two ways
        return dict(warm=self.warm, rounds=rounds, rss_before=self.rss_before, rss=self.rss, parts=rss_parts(self.pid),
                    onnxruntime=uses_onnxruntime(self.pid), rps=n/secs, p50_ms=float(np.percentile(lat, 50)),
                    p99_ms=float(np.percentile(lat, 99)), errors=sum(r['errors'] for r in rounds), warm_errors=self.warm['errors'],
                    n=n, cpu_ms=cpu/n*1e3, sys_share=sys_/cpu if cpu else 0., cores=cpu/secs, clients_cores=self.own/secs,
                    others_cores=max(0., self.busy - cpu - self.own)/secs, answers={k: vs[-1] for k, vs in answers.items()},
                    unsteady=unsteady, **checks(self.srv.url, self.photos))


def load_test(srv:Server, photos:list[bytes], a) -> dict:
    "A warm-up round, `a.rounds` measured rounds (RSS after each), then `checks`."
    ld = Load(srv, photos, a)
    ld.warm_up()
    for _ in range(a.rounds): ld.measured()
    return ld.result()


def report(srv:Server, m:dict):
    print(f"\n{srv.name}: up in {srv.startup_s:.1f} s; ONNX Runtime loaded: {'yes' if m['onnxruntime'] else 'no'}")
    for i, r in enumerate(m['rounds'], 1):
        print(f"  round {i}: {r['requests']} requests in {r['seconds']:.1f} s = {r['rps']:.1f} photos/s, "
              f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, errors {r['errors']} {r['first_errors'] or ''}")
    print(f"  CPU over the measured rounds: server {m['cores']:.2f} cores ({m['sys_share']:.0%} in the kernel), "
          f"the clients (this process) {m['clients_cores']:.2f}, other processes {m['others_cores']:.2f}")
    print(f"  RSS: {m['rss_before']:.0f} MB after a warm-up round, then {', '.join(f'{x:.0f}' for x in m['rss'])} MB after each "
          f"round ({m['rss'][-1]-m['rss_before']:+.0f} MB); " + ', '.join(f"{n} {x:.0f}" for n, x in m['parts']))
    print(f"  JSON batch of 3 -> {m['batch_status']} {m['batch']}; bad requests ({', '.join(n for n, _, _ in BAD)}) -> {m['bad']}; "
          f"warm-up errors {m['warm_errors']}; photos answered two ways across rounds: {m['unsteady']}; exit: {srv.code}")


def server_ok(m:dict) -> bool:
    return (m['errors'] == 0 and m['batch_status'] == 200 and all(400 <= s < 500 for s in m['bad']) and m['unsteady'] == 0)


def photo_bytes(a) -> list[bytes]:
    ids = read_labels(sample_dir())['id'].tolist()
    return [image_path(sample_dir(), i).read_bytes() for i in ids[:a.clients*a.photos]]


def archive_info(archive) -> str:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        cfg = json.load(tar.extractfile('config.json'))
        meta = json.load(tar.extractfile('onnx.json')) if 'onnx.json' in names else {}
    return (f"{cfg.get('arch')} at {'x'.join(map(str, cfg.get('size', [])))} px, {len(cfg.get('classes', []))} classes, "
            f"tta {bool(cfg.get('tta'))}, model.onnx {meta.get('precision', 'yes') if 'model.onnx' in names else 'none'}")


def ensure_archive(model, tmp:Path) -> Path:
    "`model` if it is an archive, else a `package` of the model directory."
    if Path(model).is_file(): return Path(model)
    from bincount.export import package
    print(f"packaging {model} ...", flush=True)
    return package(model, tmp/'model.tar.gz')


def side_by_side(a) -> int:
    runtime = 'onnx' if a.onnx else 'torch'
    threads = max(1, (os.cpu_count() or 1)//a.workers)  # what `bincount serve` gives each worker
    photos = photo_bytes(a)
    with tempfile.TemporaryDirectory() as tmp:
        archive = ensure_archive(a.model, Path(tmp))
        info = archive_info(archive)
        print(f"{archive}: {info}\nruntime {runtime} on both, {a.workers} worker(s) each, {threads} threads per worker, "
              f"{os.cpu_count()} CPUs; {a.clients} clients x {a.photos} real photos per round, a warm-up round, "
              f"{a.rounds} measured rounds", flush=True)
        servers = {'bincount': lambda: bincount_server(archive, runtime, a.workers),
                   'torchserve': lambda: torchserve_server(archive, runtime, a.workers, threads)}
        res, loads = {}, {}
        with contextlib.ExitStack() as stack:  # stops both servers, on failure too
            for key, start in servers.items():
                if a.only and a.only != key: continue
                srv = stack.enter_context(start())
                print(f"{srv.name} up in {srv.startup_s:.1f} s", flush=True)
                loads[key] = Load(srv, photos, a)
            for ld in loads.values(): ld.warm_up()
            print(f"warmed up; {a.rounds} measured rounds{', taking turns' * (len(loads) > 1)} ...", flush=True)
            for r in range(a.rounds):  # in turns, the first one alternating: drifts of the machine's load hit both alike
                for ld in (list(loads.values()) if r % 2 == 0 else list(loads.values())[::-1]): ld.measured()
            ms = {key: ld.result() for key, ld in loads.items()}
        for key, ld in loads.items():
            report(ld.srv, ms[key])
            if not server_ok(ms[key]): print(ld.srv.log[-4000:])
            res[key] = (ld.srv, ms[key])
    if len(res) < 2:
        (srv, m), = res.values()
        ok = server_ok(m) and (a.only != 'bincount' or (srv.code == 0 and m['rss'][-1] - m['rss_before'] < max(50, .1*m['rss_before'])))
        print("OK" if ok else "FAILED")
        return 0 if ok else 1
    (b, mb), (t, mt) = res['bincount'], res['torchserve']
    common = sorted(set(mb['answers']) & set(mt['answers']))
    same = sum(mb['answers'][k]['count'] == mt['answers'][k]['count'] for k in common)
    dp = max((abs(mb['answers'][k]['probabilities'][c] - mt['answers'][k]['probabilities'][c])
              for k in common for c in mb['answers'][k]['probabilities']), default=float('nan'))
    dist = np.bincount([mb['answers'][k]['count'] for k in common]).tolist() if common else []
    rows = [('throughput (photos/s)', 'rps', '{:.1f}', 'higher is better'), ('p50 latency (ms)', 'p50_ms', '{:.0f}', 'lower'),
            ('p99 latency (ms)', 'p99_ms', '{:.0f}', 'lower'), ('server CPU per photo (ms)', 'cpu_ms', '{:.1f}', 'lower'),
            ('server CPU busy (cores)', 'cores', '{:.2f}', ''), ('other processes (cores)', 'others_cores', '{:.2f}', 'noise'),
            ('RSS after warm-up (MB)', 'rss_before', '{:.0f}', 'lower'), ('RSS after last round (MB)', 'rss_last', '{:.0f}', 'lower'),
            ('start-up to first answer (s)', 'startup', '{:.1f}', 'lower'), ('errors (measured rounds)', 'errors', '{}', ''),
            ('processes', 'procs', '{}', '')]
    for m, s in ((mb, b), (mt, t)): m.update(rss_last=m['rss'][-1], startup=s.startup_s, procs=len(m['parts']))
    print(f"\nSide by side: {a.model} ({info}); runtime {runtime} on both; "
          f"{a.workers} worker(s), {threads} threads; {a.clients} clients x {a.photos} photos x {a.rounds} rounds "
          f"({mb['n']} vs {mt['n']} measured requests)")
    print(f"{'':30}{'bincount serve':>16}{'TorchServe+AWS':>16}{'bincount/TS':>14}")
    for label, k, fmt, better in rows:
        x, y = mb[k], mt[k]
        ratio = f"{x/y:.2f}x" if k not in ('errors', 'procs', 'others_cores') and y else ''
        print(f"{label:30}{fmt.format(x):>16}{fmt.format(y):>16}{ratio:>14}  {better}")
    print(f"{'bad requests -> status':30}{','.join(map(str, mb['bad'])):>16}{','.join(map(str, mt['bad'])):>16}"
          f"{'':14}  {', '.join(n for n, _, _ in BAD)}")
    print(f"same answers: {same}/{len(common)} photos have the same count (photos per count 0, 1, ...: {dist}); "
          f"largest probability difference {dp:.1e}")
    if max(mb['others_cores'], mt['others_cores']) > .2:
        print(f"NOTE: other processes kept {max(mb['others_cores'], mt['others_cores']):.2f} of {os.cpu_count()} cores busy during "
              f"the rounds: the servers took turns, so both met it, but the figures are noisier than on a quiet machine")
    ok = (server_ok(mb) and server_ok(mt) and b.code == 0 and same == len(common) == len(photos) and dp < 1e-4
          and mb['rss'][-1] - mb['rss_before'] < max(50, .1*mb['rss_before']))
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def torchserve_smoke(a) -> int:
    "The archive in AWS's stack: a few photos one by one, a JSON batch, bad requests."
    ids = read_labels(sample_dir())['id'].tolist()[:8]
    photos = [image_path(sample_dir(), i).read_bytes() for i in ids]
    runtime = 'onnx' if a.onnx or not a.torch else 'torch'
    with torchserve_server(a.torchserve, runtime, a.workers) as srv:
        res = [post(srv.url, p) for p in photos]
        c = checks(srv.url, photos)
    print(f"TorchServe + AWS handler service + code/inference.py from {a.torchserve} ({runtime}), up in {srv.startup_s:.1f} s:")
    for i, (s, body, sec) in zip(ids, res): print(f"  {i}.jpg -> {s} {body[:120].decode()} ({sec*1e3:.0f} ms)")
    print(f"  JSON batch of 3 -> {c['batch_status']} {c['batch']}")
    print(f"  bad requests ({', '.join(n for n, _, _ in BAD)}) -> {c['bad']}; exit: {srv.code}")
    ok = all(s == 200 for s, _, _ in res) and c['batch_status'] == 200 and c['bad'] == [400, 415, 400, 400]
    if not ok: print(srv.log[-4000:])
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', help='a model.tar.gz from `bincount package` (or a model directory, packaged first)')
    p.add_argument('--clients', type=int, default=8, help='concurrent clients')
    p.add_argument('--photos', type=int, default=25, help='real photos per client per round')
    p.add_argument('--rounds', type=int, default=3, help='measured rounds, after a warm-up round (memory after each)')
    p.add_argument('--workers', type=int, default=1, help='server worker processes, on both servers')
    p.add_argument('--onnx', action='store_true', help="ONNX Runtime on the archive's model.onnx, on both (default: PyTorch)")
    p.add_argument('--int8', action='store_true', help='with --only bincount: serve the int8 graph')
    p.add_argument('--only', choices=['bincount', 'torchserve'], help='load-test one server only')
    p.add_argument('--torchserve', metavar='MODEL_TAR_GZ', help="a smoke check of a packaged model in AWS's TorchServe stack")
    p.add_argument('--torch', action='store_true', help='with --torchserve: the handler runs PyTorch (needs bincount installed)')
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally`s that stop the servers
    if a.torchserve: return torchserve_smoke(a)
    if not a.model: p.error('--model is required')
    if a.int8:
        if a.only != 'bincount': p.error("--int8 needs --only bincount; to compare int8, `bincount package --int8` and use --onnx")
        a.onnx = False
    if a.only == 'bincount' and (a.int8 or not Path(a.model).is_file()):  # no archive needed
        rt = 'int8' if a.int8 else 'onnx' if a.onnx else 'torch'
        with bincount_server(a.model, rt, a.workers) as srv: m = load_test(srv, photo_bytes(a), a)
        report(srv, m)
        ok = server_ok(m) and srv.code == 0 and m['rss'][-1] - m['rss_before'] < max(50, .1*m['rss_before'])
        print("OK" if ok else "FAILED")
        return 0 if ok else 1
    return side_by_side(a)


if __name__ == '__main__': sys.exit(main())
