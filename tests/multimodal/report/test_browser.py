"""The report in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by
Selenium opens it from disk (file://, no server), filters the table, opens a study and checks that
the overlays load and the numbers equal those in results.jsonl. Skips when no browser is installed."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from multimodal.inference.results import read_jsonl
from multimodal.report import write_report

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                reason="no browser: install the Debian packages chromium and chromium-driver "
                                       "(scripts/install_system_deps.sh)")


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mmdx-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _load_all_images(browser) -> list[bool]:
    """Whether each image of the page decodes (lazy and hidden ones are asked to load first)."""
    return browser.execute_script(
        "for (const i of document.images) i.loading = 'eager';"
        "return Promise.all([...document.images].map(i => i.decode().then(() => i.naturalWidth > 0, () => false)))")


def _rows(browser) -> list:
    return browser.find_elements("css selector", "#studies tbody tr")


def test_filter_the_table_open_a_study_and_see_its_overlays_and_numbers(browser, scored, tmp_path):
    from selenium.webdriver.support.ui import Select

    index = write_report(scored["results"], tmp_path / "report", eval_dir=scored["eval"], images=scored["heatmaps"])
    lines = {line["study_id"]: line for line in read_jsonl(scored["results"])}
    browser.get(index.as_uri())
    assert len(_rows(browser)) == len(lines) + 2  # scored, one error, one skipped

    Select(browser.find_element("id", "f-status")).select_by_visible_text("error")
    assert [r.get_attribute("data-study") for r in _rows(browser)] == ["broken-study"]
    Select(browser.find_element("id", "f-status")).select_by_visible_text("any")

    observation = "Pleural Effusion"
    Select(browser.find_element("id", "f-observation")).select_by_visible_text(observation)
    Select(browser.find_element("id", "f-decision")).select_by_visible_text("present")
    expected = {sid for sid, line in lines.items() if (line["observations"][observation].get("decision")
                or ("present" if line["observations"][observation]["positive"] else "absent")) == "present"}
    shown = [r.get_attribute("data-study") for r in _rows(browser)]
    assert set(shown) == expected and expected
    values = [float(r.find_element("css selector", ".c-p").get_attribute("data-value")) for r in _rows(browser)]
    assert values == sorted(values, reverse=True)  # sorted by probability, highest first
    browser.find_element("id", "f-pmin").send_keys("0.99")
    assert len(_rows(browser)) == sum(lines[s]["observations"][observation]["probability"] >= 0.99 for s in expected)
    browser.find_element("id", "f-pmin").clear()
    browser.execute_script("document.getElementById('f-pmin').dispatchEvent(new Event('input'))")

    study = shown[0]
    browser.find_element("link text", study).click()
    assert browser.find_element("id", "study-id").text == study
    for row in browser.find_elements("css selector", "#observations tbody tr"):
        obs = lines[study]["observations"][row.get_attribute("data-observation")]
        cell = row.find_element("css selector", ".probability")
        assert float(cell.get_attribute("data-value")) == obs["probability"]
        assert cell.text == f"{obs['probability']:.4f}"
    overlays = browser.find_elements("css selector", "img.overlay")
    assert observation in {img.get_attribute("data-observation") for img in overlays}
    loaded = _load_all_images(browser)
    assert len(loaded) == 1 + len(overlays) and all(loaded)
    toggle = browser.find_element("css selector", f".toggle[value='{observation}']")
    image = next(i for i in overlays if i.get_attribute("data-observation") == observation)
    before = image.is_displayed()
    toggle.click()
    assert image.is_displayed() != before

    browser.get((index.parent / "evaluation.html").as_uri())
    loaded = _load_all_images(browser)
    assert len(loaded) == 5 and all(loaded)  # ROC, PR, reliability, a best and a worst pointing example
