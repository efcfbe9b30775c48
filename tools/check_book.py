"""Open every page of the built book in headless Chromium and check what a reader sees.

Fails (exit 1) on a broken internal link, an image that did not load, an empty
table, or a page with a Python error in an output; saves a screenshot of each
page. Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium``
package (``.ci/run`` installs them).

Usage::

    python tools/check_book.py [_build/html] [--screenshots _build/screenshots]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"

# Collected in the page by JavaScript, after it has loaded.
_PROBE = """
const imgs = [...document.images].filter(i => i.closest('article'));
const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
const tables = [...document.querySelectorAll('article table')];
const empty = tables.filter(t => t.querySelectorAll('td').length === 0).length;
const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
const errors = [...document.querySelectorAll('.output.traceback, .output .ansi-red-fg')].length;
return {images: imgs.length, broken: broken, tables: tables.length, empty: empty,
        links: links, errors: errors, title: document.title};
"""


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1300,2400"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _target(url: str) -> Path | None:
    """The local file an internal link points to (None for external links)."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


_REFRESH = r'http-equiv="(?i:refresh)"\s+content="\d+;\s*url=([^"]+)"'


def check(html_dir: Path, shots: Path) -> list[str]:
    """Check every page; return the problems found."""
    pages = sorted(p for p in html_dir.rglob("*.html")
                   if not any(part.startswith("_") for part in p.relative_to(html_dir).parts)
                   and p.name not in ("genindex.html", "search.html"))
    if not pages:
        return [f"no page found in {html_dir}"]
    shots.mkdir(parents=True, exist_ok=True)
    problems = []
    # Redirect pages (Jupyter Book's index.html) navigate away while being read: check
    # that their target exists instead of opening them.
    redirects = [p for p in pages if re.search(_REFRESH, p.read_text(errors="replace"))]
    for page in redirects:
        target = re.search(_REFRESH, page.read_text(errors="replace")).group(1)
        ok = (page.parent / target).is_file()
        if not ok:
            problems.append(f"{page.relative_to(html_dir)}: redirect to missing {target}")
        print(f"{'ok' if ok else 'PROBLEM'} {page.relative_to(html_dir)}: redirect to {target}")
    pages = [p for p in pages if p not in redirects]
    driver = _driver()
    try:
        for page in pages:
            rel = page.relative_to(html_dir)
            driver.get(page.resolve().as_uri())
            info = driver.execute_script(_PROBE)
            for src in info["broken"]:
                problems.append(f"{rel}: image not loaded: {src}")
            if info["empty"]:
                problems.append(f"{rel}: {info['empty']} empty table(s)")
            if info["errors"]:
                problems.append(f"{rel}: {info['errors']} error output(s)")
            for link in info["links"]:
                target = _target(link)
                if target is not None and not target.exists():
                    problems.append(f"{rel}: broken link to {target}")
            height = driver.execute_script(
                "return (document.body || document.documentElement).scrollHeight"
            )
            driver.set_window_size(1300, min(max(int(height), 800), 12000))
            name = str(rel.with_suffix("")).replace("/", "__") + ".png"
            driver.save_screenshot(str(shots / name))
            bad = any(p.startswith(f"{rel}:") for p in problems)
            print(f"{'PROBLEM' if bad else 'ok'} {rel}: {info['images']} images, "
                  f"{info['tables']} tables, {len(info['links'])} links", flush=True)
    finally:
        driver.quit()
    return problems


def main(argv=None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("html", nargs="?", default="_build/html", type=Path)
    p.add_argument("--screenshots", default="_build/screenshots", type=Path)
    args = p.parse_args(argv)
    problems = check(args.html, args.screenshots)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{'FAILED' if problems else 'passed'}: {len(problems)} problem(s); "
          f"screenshots in {args.screenshots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
