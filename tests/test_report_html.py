"""`weeyuga report RUN_DIR --html`: one self-contained page with every section and plot, and a
run folder's own text (treated as hostile) escaped; loaded in headless Chromium from file://."""

import json
import re
import shutil

import pytest

from orchestrator.cli import main
from orchestrator.core.ledger import read_records
from orchestrator.publish.report.html import render_html
from tests.test_report import example_run  # noqa: F401  (fixture: the generated example run folder)

SCRIPT = "<script>document.title='pwned'</script>"
IMG = '<img src=x onerror="document.title=\'pwned\'">'


@pytest.fixture
def hostile_run(example_run, tmp_path):  # noqa: F811
    """The example with a handle, a model name and a skip reason (a stand-in for a model's answer
    quoted in run.md) that try to run script."""
    run_dir = tmp_path / example_run.name
    shutil.copytree(example_run, run_dir)
    records = list(read_records(run_dir / "run.jsonl"))
    records[0]["submitter_handle"] = SCRIPT
    records[0]["cells"][0]["model"] = IMG
    records.append({"type": "skipped", "cell_id": records[0]["cells"][0]["cell_id"], "phase": "20q",
                    "reason": f"the model answered {SCRIPT} [click](javascript:alert(1)) ![x](/etc/passwd)",
                    "at_utc": "2026-01-01T00:00:00.00Z"})
    (run_dir / "run.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


def test_the_page_has_every_section_and_plot_inline_and_nothing_external(hostile_run, capsys):
    assert main(["report", str(hostile_run), "--html"]) == 0
    assert str(hostile_run / "run.html") in capsys.readouterr().out
    page = (hostile_run / "run.html").read_text()
    md = (hostile_run / "run.md").read_text()
    for heading in re.findall(r"^## (.+)$", md, re.M):
        assert f"<h2>{heading}</h2>" in page
    plots = ["tokens_per_sec", "ttft", "decode_by_position"]
    images = re.findall(r'<img src="([^"]*)" alt="([^"]*)">', page)
    assert [alt for _, alt in images] == plots
    assert all(src.startswith("data:image/png;base64,iVBOR") for src, _ in images)
    assert page.count("<em>Figure ") == 3
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # no external asset, no link out
    assert "Content-Security-Policy" in page


def test_hostile_run_folder_text_comes_out_escaped(hostile_run):
    assert main(["report", str(hostile_run), "--html", "--no-plots"]) == 0
    page = (hostile_run / "run.html").read_text()
    assert "<script" not in page.lower() and not re.search(r"<[^>]* onerror=", page)
    assert "&lt;script&gt;document.title=" in page and "&lt;img src=x onerror=" in page
    assert "href=" not in page and not re.search(r'<img(?! src="data:image/png;base64,)', page)


def test_only_the_reports_own_plots_are_inlined(tmp_path):
    (tmp_path / "ttft.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "other.png").write_bytes(b"\x89PNG other")
    page = render_html(tmp_path, "# t\n\n![ttft](ttft.png)\n\n![other](other.png)\n\n![up](../ttft.png)\n\n"
                                 "![remote](https://example.org/x.png)\n", ["ttft.png"])
    assert page.count("<img ") == 1 and "data:image/png;base64," in page
    assert "example.org" not in page and "other.png" not in page


def test_the_page_renders_in_headless_chromium_without_running_anything(chromium, hostile_run, tmp_path):
    from playwright.sync_api import sync_playwright

    assert main(["report", str(hostile_run), "--html"]) == 0
    errors, requests = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium))
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto((hostile_run / "run.html").as_uri())
        assert page.title().startswith("mac-m1-8gb")  # no injected script or handler renamed it
        widths = page.locator("img").evaluate_all("images => images.map(i => i.naturalWidth)")
        assert len(widths) == 3 and all(w > 300 for w in widths)
        assert page.locator("script").count() == 0
        assert "Submitter:" in page.inner_text("body") and SCRIPT in page.inner_text("body")
        page.screenshot(path=str(tmp_path / "run-html.png"), full_page=True)
        browser.close()
    assert errors == []
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    print(f"screenshot: {tmp_path / 'run-html.png'}")
