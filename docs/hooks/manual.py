"""MkDocs hooks for the manual: pages and charts made from the repository's own files.

- The Performance page's charts are drawn from bench/RESULTS.md at build time (charts.py).
- bench/RESULTS.md, bench/README.md and CHANGELOG.md become pages of the site as they stand,
  their links to each other rewritten to the site's pages.
- Pages with a Mermaid diagram load the vendored mermaid.js (checked against its pinned digest)
  before the theme's script, so the theme finds it and never fetches it from a CDN.
"""

import hashlib
import importlib.util
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[2]
# npm's mermaid 11.17.2, dist/mermaid.min.js as published; the theme drives mermaid 11.
MERMAID = "assets/javascripts/vendor/mermaid-11.17.2.min.js"
MERMAID_SHA256 = "581ed7d74bd9048d0e3a91363927d72ef22942d7722546b27f7cc29e35390eb8"
CHARTS = "assets/charts"

# (source in the repository, page in the site, {link in the source: link on the page})
PAGES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("bench/RESULTS.md", "performance/results.md", {}),
    ("bench/README.md", "performance/harness.md", {"RESULTS.md": "results.md"}),
    ("CHANGELOG.md", "changelog.md", {"docs/": ""}),
)


def _charts() -> Any:
    spec = importlib.util.spec_from_file_location("charts", Path(__file__).with_name("charts.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _relinked(text: str, links: dict[str, str]) -> str:
    for old, new in links.items():
        text = re.sub(r"\]\(" + re.escape(old), "](" + new, text)
    return text


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    digest = hashlib.sha256((Path(config.docs_dir) / MERMAID).read_bytes()).hexdigest()
    if digest != MERMAID_SHA256:
        raise PluginError(f"{MERMAID} is not the pinned mermaid.js (sha256 {digest})")
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    charts = _charts()
    try:
        drawn = charts.charts((ROOT / "bench" / "RESULTS.md").read_text())
    except charts.ChartError as error:
        raise PluginError(f"charts: {error}") from None
    for name, svg in drawn.items():
        files.append(File.generated(config, f"{CHARTS}/{name}", content=svg))
    for source, page, links in PAGES:
        text = _relinked((ROOT / source).read_text(), links)
        files.append(File.generated(config, page, content=text))
    return files


def on_post_page(output: str, page: Page, config: MkDocsConfig) -> str:
    if 'class="mermaid"' not in output:
        return output
    bundle = re.search(r'<script src="[^"]*assets/javascripts/bundle\.[^"]*"', output)
    if bundle is None:
        raise PluginError(f"{page.file.src_uri}: the theme's script is not where it was")
    script = f'<script src="{get_relative_url(MERMAID, page.url)}"></script>\n'
    return output[: bundle.start()] + script + output[bundle.start() :]
