"""The static web leaderboard (robench leaderboard html): files, links, escaping, no network; then in a real
browser (Debian's chromium driven by Playwright, installed by .ci/run and the dev extra): sorting, filtering,
model cards."""

from __future__ import annotations

import csv
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from robench.cli import main
from robench.errors import RobenchError
from robench.reports.leaderboard import ranked, read_leaderboard
from robench.reports.leaderboard_site import write_site

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "reports" / "leaderboard.csv"
EVIL = 'evil<script>alert("x")</script>&\'name'
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]


class Page(HTMLParser):
    """A page's links, loaded resources (src, stylesheets, CSS url()) and scripts, and the text of its body."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[tuple[str, bool]] = []  # (href, inside the provenance block)
        self.resources: list[str] = []
        self.scripts = 0
        self.provenance_depth = 0
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "div" and "provenance" in a.get("class", "").split() or self.provenance_depth and tag == "div":
            self.provenance_depth += 1
        if tag == "a":
            self.links.append((a.get("href", ""), self.provenance_depth > 0))
        if tag == "script":
            self.scripts += 1
        self.resources += [a[k] for k in ("src", "srcset", "data", "poster") if k in a]
        if tag == "link":
            self.resources.append(a.get("href", ""))
        if "url(" in a.get("style", ""):
            self.resources.append(a["style"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self.provenance_depth:
            self.provenance_depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def pages(site: Path) -> list[Path]:
    return [site / "index.html", *sorted((site / "models").glob("*.html"))]


@pytest.fixture(scope="module")
def evil_board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed leaderboard with one row renamed to something full of markup, and a URL in its source."""
    path = tmp_path_factory.mktemp("board") / "leaderboard.csv"
    with open(BOARD, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[1][0] = EVIL
    rows[1][rows[0].index("source")] = "see https://example.org/model?a=1&b=<2> for it"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return path


@pytest.fixture(scope="module")
def site(evil_board: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert write_site(evil_board, out, root=ROOT) == out / "index.html"
    return out


def test_every_row_has_a_card_and_every_link_resolves(site: Path, evil_board: Path) -> None:
    names = list(read_leaderboard(evil_board)["name"])
    cards = sorted((site / "models").glob("*.html"))
    assert len(cards) == len(names) == len(read_leaderboard(BOARD))
    index = Page((site / "index.html").read_text(encoding="utf-8"))
    linked = {(site / unquote(href)).resolve() for href, _ in index.links if href.startswith("models/")}
    assert linked == {c.resolve() for c in cards}
    runs = 0
    for page in pages(site):
        for href, in_provenance in Page(page.read_text(encoding="utf-8")).links:
            if href.startswith(("http://", "https://")):
                assert in_provenance, f"{page.name}: external link {href} outside the provenance"
                continue
            target = (page.parent / unquote(urlsplit(href).path)).resolve()
            assert target.exists(), f"{page.name}: link {href} goes nowhere"
            runs += target.is_dir()
    assert runs == len(names)  # every committed row's run directory is found and linked


def test_values_are_escaped_and_nothing_is_loaded_from_a_network(site: Path) -> None:
    for page in pages(site):
        text = page.read_text(encoding="utf-8")
        parsed = Page(text)
        assert parsed.scripts == (1 if page.name == "index.html" else 0), page.name  # only robench's own
        assert not [r for r in parsed.resources if "http:" in r or "https:" in r or "//" in r], page.name
        assert "@import" not in text and "url(" not in text
        assert "<script>alert" not in text
    index = (site / "index.html").read_text(encoding="utf-8")
    assert EVIL in "".join(Page(index).text)  # shown as text
    card = next(c for c in (site / "models").glob("evil*.html"))
    assert EVIL in "".join(Page(card.read_text(encoding="utf-8")).text)
    assert [h for h, _ in Page(card.read_text(encoding="utf-8")).links if h.startswith("https:")] == \
        ["https://example.org/model?a=1&b="]


def test_card_shows_provenance_stated_figures_settings(site: Path) -> None:
    row = read_leaderboard(BOARD).set_index("name").loc["third-party/resnet32-d509ac18"]
    card = (site / "models" / "third-party-resnet32-d509ac18.html").read_text(encoding="utf-8")
    assert row["checkpoint_sha256"] in card and "BSD-2-Clause" in card and "akamaster/pytorch_resnet_cifar10" in card
    assert "Stated against measured" in card and '&quot;pgd_steps&quot;: 10' in card
    assert 'href="../index.html"' in card


def test_cli_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the default --file, reports/leaderboard.csv
    assert main(["leaderboard", "html", "--out", str(tmp_path / "site")]) == 0
    assert f"wrote {tmp_path / 'site' / 'index.html'}" in capsys.readouterr().out
    with pytest.raises(RobenchError, match="no leaderboard at"):
        write_site(tmp_path / "missing.csv", tmp_path / "out")
    (tmp_path / "bad.csv").write_text("name,arch\nx,y\n")
    with pytest.raises(RobenchError, match="line 1: header does not match"):
        write_site(tmp_path / "bad.csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_in_a_real_browser(tmp_path: Path) -> None:
    if BROWSER is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium; apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    site = tmp_path / "site"
    write_site(BOARD, site, root=ROOT)
    frame = read_leaderboard(BOARD)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which(BROWSER), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((site / "index.html").as_uri())
            clean = '#group-A th[data-key="clean_accuracy"]'

            def column() -> list[float]:
                return [float(v) for v in page.eval_on_selector_all(
                    "#group-A tbody tr td:nth-child(5)", "cells => cells.map(c => c.dataset.value)")]

            page.click(clean)
            assert page.get_attribute(clean, "aria-sort") == "ascending"
            cifar = int(ranked(frame)["group"].eq("A").sum())  # the CIFAR-10 sample protocol: all but MNIST
            assert column() == sorted(column()) and len(column()) == cifar == len(frame) - 1
            page.click(clean)
            assert page.get_attribute(clean, "aria-sort") == "descending"
            assert column() == sorted(column(), reverse=True)

            page.select_option('select[data-filter="origin"]', "third-party")
            visible = page.eval_on_selector_all("tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.origin)")
            assert visible == ["third-party"] * int((frame["origin"] == "third-party").sum())
            shot = tmp_path / "leaderboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000

            link = page.locator("#group-A tbody tr:not([hidden]) td:nth-child(2) a").first
            name = link.inner_text()
            link.click()
            page.wait_for_url("**/models/*.html")
            sha = frame.set_index("name").loc[name, "checkpoint_sha256"]
            assert page.inner_text("#sha256") == sha and page.inner_text("h1") == name
        finally:
            browser.close()
