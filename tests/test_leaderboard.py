"""The leaderboard page in a real browser: headless Chromium (Debian's) driven by Playwright.

Built by `weeyuga catalogue --html` from synthetic submissions; opened from file:// as a person
would; filtered, sorted, and checked row by row against the export. The screenshot is kept in the
test's tmp folder (its path is printed; pytest keeps the last three runs' folders).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from orchestrator.publish.catalogue.export import query
from orchestrator.cli import main
from tests.fakes.catalogue import EXAMPLE, SyntheticRuns


@pytest.fixture(scope="module")
def page_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("leaderboard")
    subs = root / "submissions"
    runs = SyntheticRuns()
    runs.write_many(subs, 60)
    hostile = runs.write(subs, 61)
    manifest = json.loads((hostile / "manifest.json").read_text())
    manifest["models"][0]["model"] = manifest["cells"][0]["model"] = '<img src=x onerror="document.title=1">'
    (hostile / "manifest.json").write_text(json.dumps(manifest))
    shutil.copytree(EXAMPLE.parent.parent, subs / "EXAMPLE")
    assert main(["catalogue", "--submissions-dir", str(subs), "--out", str(root / "catalogue.json"),
                 "--html", str(root / "page")]) == 0
    return root


def table(page) -> list[dict[str, str]]:
    heads = page.locator("#head th").all_inner_texts()
    return [dict(zip([h.rstrip(" ▲▼") for h in heads], row)) for row in
            page.locator("#rows tr").evaluate_all("rows => rows.map(r => [...r.cells].map(c => c.textContent))")]


def numbers(rows: list[dict[str, str]], column: str) -> list[float]:
    return [float(r[column].rstrip(" %")) for r in rows if r[column] not in ("–", "")]


def test_the_page_filters_sorts_and_links_each_row_to_its_run(chromium, page_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    export = page_dir / "catalogue.parquet"
    expected = dict(query(export, "SELECT hardware_class, count(DISTINCT run_path || cell_id) FROM catalogue "
                                  "WHERE record_kind = 'phase' GROUP BY 1").rows)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium))
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto((page_dir / "page" / "index.html").as_uri())
        page.wait_for_selector("body[data-ready=true]")

        rows = table(page)
        assert len(rows) == 61 and page.locator("#summary").inner_text() == "61 of 61 rows match"
        decode = numbers(rows, "Decode tok/s")
        assert decode == sorted(decode, reverse=True) and len(decode) == 61  # best first by default
        assert any(r["Model"] == '<img src=x onerror="document.title=1">' for r in rows)  # shown as text
        assert page.title() == "weeyuga leaderboard"

        page.select_option("#filter-hardware_class", "Radeon RX 7900 XTX (24 GB)")
        rows = table(page)
        assert len(rows) == expected["Radeon RX 7900 XTX (24 GB)"] >= 3
        assert {r["Hardware class"] for r in rows} == {"Radeon RX 7900 XTX (24 GB)"}
        assert page.locator("#chart svg text", has_text="Radeon RX 7900 XTX").count() == 1

        page.click("th[data-sort=ttft_ms]")  # lowest first: lower is better
        ttft = numbers(table(page), "TTFT ms")
        assert ttft == sorted(ttft) and len(ttft) == len(rows)
        page.click("th[data-sort=ttft_ms]")
        assert numbers(table(page), "TTFT ms") == sorted(ttft, reverse=True)

        page.select_option("#filter-hardware_class", "")
        page.select_option("#filter-axes", "quality")
        rows = table(page)
        assert len(rows) == 6 and all("quality" in r["Axes"] and r["Quality score"].endswith("%") for r in rows)
        assert all(re.fullmatch(r"\d+ % \(\d+–\d+\)", r["Quality pass rate (95% CI)"]) for r in rows)
        page.click("th[data-sort=agent_pass_rate]")
        rates = numbers(table(page), "Agent pass rate")
        assert rates == sorted(rates, reverse=True) and len(rates) == 6

        link = page.locator("#rows tr a").first.get_attribute("href")
        assert (page_dir / "page" / link).resolve().is_file()  # run.md of that run, relative to the page

        page.select_option("#filter-axes", "")
        page.click("th[data-sort=decode_tps]")
        shot = tmp_path / "leaderboard.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"leaderboard screenshot: {shot}")
        browser.close()
    assert shot.stat().st_size > 10_000 and not errors
