"""The HTML report opened in a real headless browser (Debian's chromium, installed by .ci/run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from robench.cli import main
from robench.reports.report import build_report

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = [pytest.mark.slow,  # the module's fixture evaluates three models with every suite that has a plot
              pytest.mark.skipif(BROWSER is None, reason="no chromium on this machine (.ci/run installs Debian's "
                                                         "chromium package; apt-get install chromium to run this test)")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

# Appended to a copy of the report: after load, count the images that decoded and the tables.
CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const loaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const d = document.createElement("div");
  d.id = "robench-check";
  const key = document.querySelector("#summary figure img");
  const top = key ? Math.round(key.getBoundingClientRect().top + window.scrollY) : -1;
  d.textContent = `images ${loaded}/${images.length} tables ${document.querySelectorAll("table").length} key ${top}`;
  document.body.appendChild(d);
});
</script>"""


def browser_check(page: Path) -> tuple[int, int, int, int]:
    """(images loaded, images, tables, top of the summary's plot in px or -1) of ``page`` as the headless browser
    sees it (chromium's default 800×600 window)."""
    probe = page.with_name("check-" + page.name)
    probe.write_text(page.read_text() + CHECK)
    dom = subprocess.run([BROWSER, *FLAGS, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'id="robench-check">images (\d+)/(\d+) tables (\d+) key (-?\d+)<', dom)
    assert found, f"the browser did not run the check script; DOM starts {dom[:300]!r}"
    return int(found[1]), int(found[2]), int(found[3]), int(found[4])


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The three bundled models evaluated with every suite that has a plot (100 sample images), compared."""
    out = tmp_path_factory.mktemp("browser")
    for name in ("standard", "pgd-at", "igd"):
        code = main(["evaluate", "--model", f"zoo:{name}", "--data", "sample", "--limit", "100",
                     "--suite", "inequality,adversarial,corruptions", "--corruptions", "noise", "--severities", "1,3,5",
                     "--out", str(out / name)])
        assert code == 0
    return build_report([out / n for n in ("standard", "pgd-at", "igd")], out / "report", examples=True)


def test_report_renders_with_every_plot(report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert set(report.plots) == {"noise", "occlusion", "gini", "corruptions", "examples"}
    loaded, total, tables, key_top = browser_check(report.html)
    assert (loaded, total, tables) == (5, 5, 5)  # summary, models, common, rankings, own
    assert 0 < key_top < 600  # the key plot starts on the first screen, under the summary
    shot = Path(os.environ.get("ROBENCH_SCREENSHOT_DIR", tmp_path)) / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([BROWSER, *FLAGS, f"--screenshot={shot}", "--window-size=1280,3000", report.html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_check_notices_a_broken_image(report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The page links its plots (plots/NAME.png beside it): a missing file is an image that does not load."""
    copy = tmp_path / "copy"
    shutil.copytree(report.out_dir, copy)
    (copy / "plots" / "gini.png").unlink()
    loaded, total, _, _ = browser_check(copy / "report.html")
    assert (loaded, total) == (4, 5)
