"""Benchmark `bincount fetch` against a sequential boto3 `download_file` loop and the AWS CLI.

All methods download the same real ABID photos and their metadata from the same local S3 server (moto) behind a
proxy that adds ~30 ms to every request, as S3 takes tens of milliseconds per small object (without it the ratio
would only measure CPU). Each method's files are counted and compared byte for byte with the bucket's (the photos
with the sample's); a method that misses or changes a file fails the bench.

- boto3 loop (the course notebooks): `download_file` per object, a HEAD and a GET, one object at a time.
- `aws s3 cp --recursive s3://BUCKET/ DEST --exclude '*' --include bin-images/ID.jpg --include metadata/ID.json ...`,
  as users fetch a list of ids: one listing of the bucket, then 10 concurrent GETs (the CLI's default). The bench
  bucket holds only the chosen objects; the real ABID bucket (~1M objects) takes ~1,000 listing requests first.
- `aws s3 cp` per object, as a shell loop would: CLI start-up dominates, so it runs on `--per-object` ids only
  and its objects/s is comparable to the others'.
- `bincount fetch` (library call and command): plain GETs concurrently over one pooled client, every file verified.

The AWS CLI (`awscli` v1 on PyPI) pins botocore, so install it in its own venv, not the project's:

    python3 -m venv ~/awscli-venv && ~/awscli-venv/bin/pip install awscli

and pass `--aws ~/awscli-venv/bin/aws` (default: `aws` on PATH; without it the aws rows are skipped). It is run with
`--endpoint-url` at the proxy, dummy credentials, a fixed region, no config or credentials file and no instance
metadata, so it never reaches real AWS. It signs its requests (as the boto3 loop does): moto refuses anonymous
HEADs with 403 despite the bucket's public-read policy, and `aws s3 cp` of one object starts with a HEAD.

    .venv/bin/python bench/ingest.py [--n 200] [--latency 0.03] [--workers 32] [--aws PATH] [--per-object 20]
"""
import argparse, multiprocessing as mp, os, queue, shutil, subprocess, sys, tempfile, time
from pathlib import Path

BUCKET = 'aft-vbi-pds'
AWS_HINT = ("python3 -m venv ~/awscli-venv && ~/awscli-venv/bin/pip install awscli, "
            "then pass --aws ~/awscli-venv/bin/aws")


def serve_moto(q, stop):
    "Child process: moto's S3 server."
    import logging
    logging.getLogger('werkzeug').setLevel(logging.ERROR)
    from bincount.testing import moto_server
    with moto_server() as url:
        q.put(url)
        stop.wait()


def serve_proxy(upstream, latency, asks, q, stop):
    "Child process: the latency proxy in front of moto; answers each message on `asks` with its request count."
    from bincount.testing import FaultProxy
    with FaultProxy(upstream, latency=latency) as px:
        q.put(px.url)
        while not stop.is_set():
            try: asks.get(timeout=0.1)
            except queue.Empty: continue
            q.put(sum(px.stats.values()))


def start(target, *args):
    ctx = mp.get_context('spawn')
    q, stop = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=target, args=(*args, q, stop), daemon=True)
    p.start()
    return p, stop, q, q.get(timeout=60)


def course_loop(ids, out, endpoint):
    "What the course notebooks do: boto3 `download_file` per object (HEAD + GET), one at a time."
    import boto3
    s3 = boto3.client('s3', endpoint_url=endpoint)
    for d in ('images', 'metadata'): (out/d).mkdir(parents=True, exist_ok=True)
    for i in ids:
        s3.download_file(BUCKET, f'bin-images/{i}.jpg', str(out/'images'/f'{i}.jpg'))
        s3.download_file(BUCKET, f'metadata/{i}.json', str(out/'metadata'/f'{i}.json'))


def find_aws(path):
    "The AWS CLI's path and version, or None after saying how to install it."
    exe = shutil.which(path)
    r = subprocess.run([exe, '--version'], capture_output=True, text=True, timeout=60) if exe else None
    if r is None or r.returncode != 0:
        print(f"aws CLI not found or not working ({path}): skipping the aws rows; install it in its own venv: {AWS_HINT}")
        return None
    return exe, (r.stdout or r.stderr).split()[0]


def aws_env(endpoint):
    "Environment that keeps the AWS CLI on the local endpoint: dummy credentials, no user config, no instance metadata."
    env = {k: v for k, v in os.environ.items() if k not in ('AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_DEFAULT_PROFILE')}
    return {**env, 'AWS_ENDPOINT_URL': endpoint, 'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': 'testing',
            'AWS_DEFAULT_REGION': 'us-east-1', 'AWS_REGION': 'us-east-1', 'AWS_CONFIG_FILE': os.devnull,
            'AWS_SHARED_CREDENTIALS_FILE': os.devnull, 'AWS_EC2_METADATA_DISABLED': 'true'}


def run_aws(aws, args, endpoint):
    "Run one `aws s3 ...` command against `endpoint`; fail loudly on an error."
    cmd = [aws, 's3', *args, '--endpoint-url', endpoint]
    r = subprocess.run(cmd, capture_output=True, text=True, env=aws_env(endpoint), timeout=600)
    if r.returncode != 0: sys.exit(f"FAILED: {' '.join(cmd[:8])} ... exited {r.returncode}:\n{r.stderr[-2000:]}")
    return r


def aws_recursive(aws, ids, out, endpoint, chunk=1000):
    "`aws s3 cp --recursive` of the bucket with an include filter per object, `chunk` ids per command."
    for k in range(0, len(ids), chunk):
        incl = [a for i in ids[k:k+chunk] for a in ('--include', f'bin-images/{i}.jpg', '--include', f'metadata/{i}.json')]
        run_aws(aws, ['cp', '--recursive', f's3://{BUCKET}/', str(out), '--exclude', '*', *incl], endpoint)


def aws_per_object(aws, ids, out, endpoint):
    "One `aws s3 cp` per object, as `for i in ...; do aws s3 cp ...; done` would."
    for i in ids:
        for key in (f'bin-images/{i}.jpg', f'metadata/{i}.json'):
            run_aws(aws, ['cp', f's3://{BUCKET}/{key}', str(out/key)], endpoint)


def verify(name, out, expected):
    "Fail unless `out` holds exactly the files of `expected` (relative path -> bytes), besides labels.csv."
    got = {str(p.relative_to(out)) for p in Path(out).rglob('*') if p.is_file()} - {'labels.csv'}
    missing, extra = set(expected) - got, got - set(expected)
    wrong = [f for f in set(expected) & got if (Path(out)/f).read_bytes() != expected[f]]
    if missing or extra or wrong:
        sys.exit(f"FAILED: {name} got {len(got)} of {len(expected)} files: {len(missing)} missing, {len(extra)} extra, "
                 f"{len(wrong)} differ, e.g. {sorted(missing | extra | set(wrong))[:3]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=200, help='photos (each with its metadata: 2 files)')
    ap.add_argument('--latency', type=float, default=0.03, help='seconds added to every request')
    ap.add_argument('--workers', type=int, default=32, help='bincount fetch workers')
    ap.add_argument('--aws', default='aws', help='the AWS CLI (install it in its own venv, see above)')
    ap.add_argument('--per-object', type=int, default=20, help='photos for the one-`aws s3 cp`-per-object loop')
    args = ap.parse_args()

    import boto3
    from bincount.core import read_labels, sample_dir
    from bincount.testing import patched_env, seed_bucket
    from bincount.s3 import s3_client
    from bincount.ingest import fetch

    aws = find_aws(args.aws)
    moto, stop_moto, _, url = start(serve_moto)
    asks = mp.get_context('spawn').Queue()
    proxy, stop_proxy, answers, purl = start(serve_proxy, url, args.latency, asks)
    def requests(): asks.put(1); return answers.get(timeout=30)
    tmp = Path(tempfile.mkdtemp(prefix='bench-ingest-'))
    rows = []  # (method, objects, seconds, requests, note)
    def timed(name, nobj, f, *a, note='', **kw):
        r0, t0 = requests(), time.time()
        out = f(*a, **kw)
        rows.append((name, nobj, time.time() - t0, requests() - r0, note))
        return out
    try:
        with patched_env(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing',
                         AWS_SESSION_TOKEN=None, AWS_PROFILE=None, AWS_DEFAULT_REGION='us-east-1',
                         AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull):
            ids = sorted(read_labels(sample_dir()).sample(args.n, random_state=0).id)
            s3 = boto3.client('s3')
            seed_bucket(s3, sample_dir(), ids)
            data = {f'{d}/{i}{x}': s3.get_object(Bucket=BUCKET, Key=f'{d}/{i}{x}')['Body'].read()
                    for i in ids for d, x in (('bin-images', '.jpg'), ('metadata', '.json'))}
            for i in ids: assert data[f'bin-images/{i}.jpg'] == (sample_dir()/'images'/f'{i}.jpg').read_bytes(), i
            as_dataset = lambda ii: {k.replace('bin-images/', 'images/'): v for k, v in data.items() if k.split('/')[1].split('.')[0] in ii}
            as_bucket = lambda ii: {k: v for k, v in data.items() if k.split('/')[1].split('.')[0] in ii}
            nfiles, sub = 2 * len(ids), ids[:args.per_object]
            print(f"{len(ids)} real ABID photos + metadata ({nfiles} files) on moto S3 behind a "
                  f"{args.latency*1000:.0f} ms/request proxy; {os.cpu_count()} CPUs" + (f"; {aws[1]}" if aws else ''), flush=True)

            timed('boto3 download_file loop (course)', nfiles, course_loop, ids, tmp/'course', purl)
            verify('boto3 loop', tmp/'course', as_dataset(set(ids)))

            if aws:
                timed('aws s3 cp --recursive --include ...', nfiles, aws_recursive, aws[0], ids, tmp/'aws', purl)
                verify('aws s3 cp --recursive', tmp/'aws', as_bucket(set(ids)))
                timed('aws s3 cp per object (shell loop)', 2 * len(sub), aws_per_object, aws[0], sub, tmp/'aws1', purl,
                      note=f'first {len(sub)} ids only')
                verify('aws s3 cp per object', tmp/'aws1', as_bucket(set(sub)))

            res = timed('bincount fetch (library call)', nfiles, fetch, ids, tmp/'bincount',
                        s3_client(endpoint_url=purl, workers=args.workers), workers=args.workers, progress=False)
            assert not res.failed and len(res.downloaded) == len(ids), res.summary()
            verify('bincount fetch', tmp/'bincount', as_dataset(set(ids)))

            cli = timed('bincount fetch (command, incl. start-up)', nfiles, subprocess.run,
                        [sys.executable, '-c', 'import sys; from bincount.cli import main; sys.exit(main(sys.argv[1:]))',
                         'fetch', '--out', str(tmp/'cli'), '--endpoint-url', purl, '--workers', str(args.workers),
                         '--no-progress', '--ids', *ids], capture_output=True, text=True)
            assert cli.returncode == 0, cli.stderr
            verify('bincount fetch command', tmp/'cli', as_dataset(set(ids)))

        rate = lambda r: r[1] / r[2]
        fetch_rate = rate(next(r for r in rows if r[0] == 'bincount fetch (library call)'))
        print(f"{'method':42}{'objects':>8}{'seconds':>9}{'objects/s':>11}{'requests':>10}{'fetch is':>10}")
        for r in rows:
            print(f"{r[0]:42}{r[1]:8d}{r[2]:9.1f}{rate(r):11.1f}{r[3]:10d}{fetch_rate/rate(r):9.1f}x  {r[4]}".rstrip())
        print("all files present and byte-identical to the bucket's (photos to the sample's) for every method")
        for r in rows:
            if not r[0].startswith('bincount'):
                print(f"bincount fetch is {fetch_rate/rate(r):.1f}x the {r[0]}" + (f" ({r[4]})" if r[4] else ''))
        if not aws: print(f"aws rows skipped: no aws CLI; {AWS_HINT}")
    finally:
        for stop, p in ((stop_proxy, proxy), (stop_moto, moto)):
            stop.set(); p.join(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
