"""Benchmark `bincount fetch` against the course's sequential `download_file` loop.

Both download the same real ABID photos and their metadata from the same local S3 server (moto) behind a proxy
that adds ~30 ms to every request, as S3 takes tens of milliseconds per small object (without it the ratio would
only measure CPU). The course loop calls `download_file` per object: a HEAD and a GET, one object at a time.
`bincount fetch` runs plain GETs concurrently over one pooled client and verifies every file.

    .venv/bin/python bench/ingest.py [--n 200] [--latency 0.03] [--workers 32]
"""
import argparse, multiprocessing as mp, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path


def serve_moto(q, stop):
    "Child process: moto's S3 server."
    import logging
    logging.getLogger('werkzeug').setLevel(logging.ERROR)
    from bincount.testing import moto_server
    with moto_server() as url:
        q.put(url)
        stop.wait()


def serve_proxy(upstream, latency, q, stop):
    "Child process: the latency proxy in front of moto."
    from bincount.testing import FaultProxy
    with FaultProxy(upstream, latency=latency) as px:
        q.put(px.url)
        stop.wait()


def start(target, *args):
    ctx = mp.get_context('spawn')
    q, stop = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=target, args=(*args, q, stop), daemon=True)
    p.start()
    return p, stop, q.get(timeout=60)


def course_loop(ids, out, endpoint):
    "What the course notebooks do: boto3 `download_file` per object (HEAD + GET), one at a time."
    import boto3
    s3 = boto3.client('s3', endpoint_url=endpoint)
    for d in ('images', 'metadata'): (out/d).mkdir(parents=True, exist_ok=True)
    for i in ids:
        s3.download_file('aft-vbi-pds', f'bin-images/{i}.jpg', str(out/'images'/f'{i}.jpg'))
        s3.download_file('aft-vbi-pds', f'metadata/{i}.json', str(out/'metadata'/f'{i}.json'))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=200, help='photos (each with its metadata: 2 files)')
    ap.add_argument('--latency', type=float, default=0.03, help='seconds added to every request')
    ap.add_argument('--workers', type=int, default=32, help='bincount fetch workers')
    args = ap.parse_args()

    import boto3
    from bincount.core import image_path, metadata_path, read_labels, sample_dir
    from bincount.testing import patched_env, seed_bucket
    from bincount.s3 import s3_client
    from bincount.ingest import fetch

    moto, stop_moto, url = start(serve_moto)
    proxy, stop_proxy, purl = start(serve_proxy, url, args.latency)
    tmp = Path(tempfile.mkdtemp(prefix='bench-ingest-'))
    try:
        with patched_env(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing',
                         AWS_SESSION_TOKEN=None, AWS_PROFILE=None, AWS_DEFAULT_REGION='us-east-1',
                         AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull):
            ids = sorted(read_labels(sample_dir()).sample(args.n, random_state=0).id)
            seed_bucket(boto3.client('s3'), sample_dir(), ids)
            nfiles = 2 * len(ids)
            print(f"{len(ids)} real ABID photos + metadata ({nfiles} files) on moto S3 behind a "
                  f"{args.latency*1000:.0f} ms/request proxy; {os.cpu_count()} CPUs")

            t0 = time.time(); course_loop(ids, tmp/'course', purl); t_course = time.time() - t0

            t0 = time.time()
            res = fetch(ids, tmp/'bincount', s3_client(endpoint_url=purl, workers=args.workers), workers=args.workers, progress=False)
            t_fetch = time.time() - t0
            assert not res.failed and len(res.downloaded) == len(ids), res.summary()

            t0 = time.time()
            cli = subprocess.run([sys.executable, '-c', 'import sys; from bincount.cli import main; sys.exit(main(sys.argv[1:]))',
                                  'fetch', '--out', str(tmp/'cli'), '--endpoint-url', purl, '--workers', str(args.workers),
                                  '--no-progress', '--ids', *ids], capture_output=True, text=True)
            t_cli = time.time() - t0
            assert cli.returncode == 0, cli.stderr

            for i in ids:  # the same bytes from both, and the photos are the sample's
                for f in (image_path, metadata_path):
                    got = {f(tmp/d, i).read_bytes() for d in ('course', 'bincount', 'cli')}
                    assert len(got) == 1, (i, f.__name__)
                assert image_path(tmp/'bincount', i).read_bytes() == image_path(sample_dir(), i).read_bytes(), i

        r_course, r_fetch, r_cli = nfiles/t_course, nfiles/t_fetch, nfiles/t_cli
        print(f"{'':42}{'seconds':>9}{'files/s':>10}")
        print(f"{'course loop (download_file)':42}{t_course:9.1f}{r_course:10.1f}")
        print(f"{'bincount fetch (library call)':42}{t_fetch:9.1f}{r_fetch:10.1f}   verifies every file")
        print(f"{'bincount fetch (command, incl. startup)':42}{t_cli:9.1f}{r_cli:10.1f}")
        print(f"speed-up: {r_fetch/r_course:.1f}x (library call), {r_cli/r_course:.1f}x (command); goal >= 10x")
    finally:
        for stop, p in ((stop_proxy, proxy), (stop_moto, moto)):
            stop.set(); p.join(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
