#!/usr/bin/env python
"""Check the built docs site (`_docs/`, from tools/build_docs.py) in headless Chromium.

Serves `_docs/` on 127.0.0.1 (a free port) and opens every page in Debian's Chromium (/usr/bin/chromium, installed by
`make browser`) through playwright. Each notebook in nbs/ must have a page that loads (HTTP 200), carries the
notebook's `# Title` (in <title> and <h1>), shows no error or raw Quarto/nbdev text (a traceback, `#| ` cell
options, `:::` fences, `{.callout`), whose images all load, and whose links inside the site reach existing pages and
anchors. The sidebar, crawled from the home page, must reach every notebook's page, under the sections of
`nbs/sidebar.yml`. Saves a screenshot of the home
page to `_docs/home.png`. Exits 1 and names each problem otherwise.

Usage: `python tools/check_docs.py [--shots DIR]` (`--shots` also saves a screenshot of every page there).
"""
import argparse, functools, http.server, json, re, sys, threading, time
from pathlib import Path
from urllib.parse import urlsplit, unquote

from nbdev.config import get_config, nbpath2html

CHROMIUM = '/usr/bin/chromium'
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync']
# Text that must never reach a reader: errors from running or rendering a cell, and Quarto/nbdev syntax that leaked.
# Raw directives are looked for at the start of a line (where a leak puts them), so prose that names `#| slow` passes.
BAD_TEXT = [r'Traceback \(most recent call last\)', r'Error rendering', r'\bNameError\b', r'\bModuleNotFoundError\b',
            r'(?m)^\s*#\|', r'(?m)^\s*:::', r'\{\.callout', r'(?m)^\s*show_doc\(']

def expected_pages(cfg):
    "What the site must hold: one page per notebook nbdev renders, titled with the notebook's `# Title`."
    sys.path.insert(0, str(Path(__file__).parent))
    from build_docs import find_notebooks  # the same notebook list and order as the build
    res = {}
    for nb in find_notebooks(cfg.nbs_path):
        rel = nb.relative_to(cfg.nbs_path)
        title = None
        for c in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            if c['cell_type'] != 'markdown': continue
            m = re.match(r'\s*#\s+(.+)', ''.join(c['source']))
            if m: title = m.group(1).strip(); break
        res[nbpath2html(rel).as_posix()] = {'src': rel.as_posix(), 'title': title}
    return res

class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass

def serve(root):
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f'http://127.0.0.1:{srv.server_address[1]}/'

PAGE_JS = '''() => ({
  title: document.title,
  h1: (document.querySelector('h1.title') || document.querySelector('h1') || {}).innerText || '',
  text: document.body.innerText,
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  images: [...document.images].map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0})),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  nav: [...document.querySelectorAll('#sidebar a[href]')].map(a => a.href),
  sections: [...document.querySelectorAll('#sidebar .nav-section > span')].map(s => s.innerText.trim()),
})'''

def main():
    sys.path.insert(0, str(Path(__file__).parent))
    from build_docs import sidebar_sections
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--shots', help='also save a screenshot of every page in this folder')
    a = ap.parse_args()
    t0 = time.time()
    cfg = get_config()
    docs = cfg.doc_path
    problems = []
    def bad(page, msg): problems.append(f'{page}: {msg}')
    if not (docs / 'index.html').exists():
        print(f'check_docs: {docs}/index.html is missing: run tools/build_docs.py first'); return 1
    if not Path(CHROMIUM).exists():
        print(f'check_docs: {CHROMIUM} is missing: run `make browser` (apt-get install chromium)'); return 1
    want = expected_pages(cfg)
    srv, base = serve(docs)
    from playwright.sync_api import sync_playwright
    seen = {}  # page path -> what PAGE_JS found
    broken, anchors = {}, {}  # link target -> pages linking to it
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            ctx = browser.new_context(viewport={'width': 1280, 'height': 860})
            # Offline: anything not on our server is refused at once instead of hanging on the network.
            ctx.route(re.compile(r'^(?!http://127\.0\.0\.1:).*'), lambda route: route.abort())
            page = ctx.new_page()
            errors = []
            page.on('pageerror', lambda e: errors.append(str(e)))
            def visit(path):
                errors.clear()
                resp = page.goto(base + path, wait_until='load')
                if resp is None or resp.status != 200:
                    bad(path, f'HTTP {resp.status if resp else "no response"}'); return None
                info = page.evaluate(PAGE_JS)
                for e in errors: bad(path, f'JavaScript error: {e}')
                seen[path] = info
                return info
            # 1. The navigation, crawled from the home page, reaches every notebook's page.
            todo, done = ['index.html'], set()
            while todo:
                path = todo.pop(0)
                if path in done: continue
                done.add(path)
                info = visit(path)
                if path == 'index.html':
                    page.screenshot(path=str(docs / 'home.png'))
                    groups = [t for t, _ in sidebar_sections(cfg.nbs_path) if t]  # 0. the sidebar's sections, as nbs/sidebar.yml groups the pages
                    if info and [g.lower() for g in info['sections']] != [g.lower() for g in groups]:
                        bad(path, f"the sidebar's sections are {info['sections']}, nbs/sidebar.yml has {groups}")
                for href in (info or {}).get('nav', []):
                    u = urlsplit(href)
                    if u.netloc == urlsplit(base).netloc: todo.append(unquote(u.path.lstrip('/')) or 'index.html')
            for path in sorted(set(want) - done): bad(path, f'not reachable from the sidebar (notebook {want[path]["src"]})')
            # 2. Every page: loads, has its title, no error/raw text, images load, links inside the site resolve.
            for path in sorted(want):
                info = seen.get(path) or visit(path)
                if not info: continue
                title = re.sub(r'[`*]', '', want[path]['title'] or '')
                if not title: bad(path, f'notebook {want[path]["src"]} has no "# Title" markdown cell')
                elif title not in info['title'] or title != info['h1'].strip():
                    bad(path, f'title {title!r} missing (<title> {info["title"]!r}, <h1> {info["h1"]!r})')
                for pat in BAD_TEXT:
                    m = re.search(pat, info['text'])
                    if m: bad(path, f'shows {m.group().strip()!r}: ...{info["text"][max(0, m.start() - 80):m.end() + 80]!r}...')
                for img in info['images']:  # images on other sites cannot be checked offline
                    if img['src'].startswith(base) and not img['ok']: bad(path, f'image does not load: {img["src"]}')
                for href in info['links']:
                    u = urlsplit(href)
                    if u.netloc != urlsplit(base).netloc: continue
                    target = unquote(u.path.lstrip('/')) or 'index.html'
                    if target.endswith('/'): target += 'index.html'
                    if not (docs / target).is_file(): broken.setdefault(u.path, set()).add(path); continue
                    if u.fragment and target.endswith('.html'):
                        ids = seen[target]['ids'] if target in seen else (visit(target) or {}).get('ids', [])
                        if unquote(u.fragment) not in ids: anchors.setdefault(f'{target}#{u.fragment}', set()).add(path)
                if a.shots:
                    Path(a.shots).mkdir(parents=True, exist_ok=True)
                    page.goto(base + path, wait_until='load')
                    page.screenshot(path=str(Path(a.shots) / (path.replace('/', '_') + '.png')), full_page=True)
            browser.close()
    finally: srv.shutdown()
    for target, pages in sorted(broken.items()):
        hint = (' ([source] links: set [project.urls] Repository in pyproject.toml)' if target.startswith('/blob/') else
                ' (no notebook renders to that page)')
        bad(', '.join(sorted(pages)), f'broken link to {target}{hint}')
    # A symbol link to a name that has no show_doc (e.g. a private `_helper`) lands at the top of the page: a warning.
    for target, pages in sorted(anchors.items()): print(f'check_docs: warning: {", ".join(sorted(pages))}: no anchor for {target}')
    extra = sorted(p for p in seen if p not in want)
    print(f'check_docs: {len(want)} notebook pages checked in Chromium ({time.time() - t0:.0f} s); '
          f'{len(extra)} other pages visited; screenshot {docs.relative_to(cfg.config_path)}/home.png')
    for p in problems: print('check_docs: FAIL', p)
    return 1 if problems else 0

if __name__ == '__main__': sys.exit(main())
