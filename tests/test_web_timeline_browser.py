"""The timeline and study pages in a real Chromium (Debian's, driven by Selenium): filtering,
paging, the study page with its chart, the diff view; a hostile study title stays text; nothing
sticks out sideways at 360 px. Screenshots at 1280 px and 360 px into $TRIALWATCH_SCREENSHOTS."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.support.ui import Select

from tests.test_web_timeline import HOSTILE, seed, seed_sources


def no_alert(browser) -> bool:
    try:
        _ = browser.driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def fits_a_phone(browser) -> bool:
    browser.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": True}
    )
    try:
        return not browser.page_overflows()
    finally:
        browser.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_filter_and_page_the_timeline(signed_in_browser, browser_site, own_study):
    browser = signed_in_browser
    seed(browser_site, own_study)
    browser.find("a[href='/changes']").click()
    browser.wait_for(lambda d: browser.path == "/changes")
    assert len(browser.find_all("li.change")) == 50
    browser.screenshot("changes")
    assert fits_a_phone(browser)
    Select(browser.find("#f-watch")).select_by_visible_text("RCC file watch")
    browser.find("input[name=kind][value=dates]").click()
    browser.find("input[name=kind][value=status]").click()
    browser.find("form.filters button[type=submit]").click()
    browser.wait_for(lambda d: "kind=status" in browser.path)
    query = parse_qs(urlsplit(browser.path).query)
    assert query["watch"] == ["RCC file watch"] and sorted(query["kind"]) == ["dates", "status"]
    rows = browser.find_all("li.change")
    assert rows and all(r.get_attribute("class") in ("change kind-dates", "change kind-status") for r in rows)
    assert {r.find_element("css selector", ".watch-name").text for r in rows} == {"RCC file watch"}
    browser.screenshot("changes-filtered")
    browser.open("/changes")
    first_page = [
        r.find_element("css selector", "time").get_attribute("datetime") for r in browser.find_all("li.change")
    ]
    browser.find("a[rel=next]").click()
    browser.wait_for(lambda d: "cursor=" in browser.path)
    second_page = [
        r.find_element("css selector", "time").get_attribute("datetime") for r in browser.find_all("li.change")
    ]
    assert len(second_page) == 50 and max(second_page) <= min(first_page)
    browser.find("a[rel=next]").click()
    browser.wait_for(lambda d: len(browser.find_all("li.change")) == 22)
    assert not browser.find_all("a[rel=next]")
    browser.find(".pager a.button").click()  # back to the newest
    browser.wait_for(lambda d: browser.path == "/changes")


def test_study_page_with_its_chart_and_the_diff_view(signed_in_browser, browser_site, own_study):
    browser = signed_in_browser
    seed(browser_site, own_study)
    browser.open("/changes?nct_id=NCT09000001")
    browser.find("li.change .change-study a").click()
    browser.wait_for(lambda d: browser.path == "/studies/NCT09000001")
    assert no_alert(browser)
    assert browser.find("h1").text == f"Study {HOSTILE}"  # the tag is text, not an image
    assert not browser.find_all("main img")
    charts = [svg for svg in browser.find_all(".chart-box svg") if svg.is_displayed()]
    assert len(charts) == 2 and charts[0].size["width"] > 300  # the wide drawings; the narrow ones are for phones
    assert charts[0].find_elements("css selector", "circle.actual")
    assert charts[0].find_elements("css selector", "circle.estimated")
    assert len(browser.find_all("table.sites tr.removed")) == 1
    browser.screenshot("study")
    assert fits_a_phone(browser)
    Select(browser.find("#c-from")).select_by_visible_text(browser.find("#c-from option:last-child").text)
    browser.find("form.compare button[type=submit]").click()
    browser.wait_for(lambda d: "/diff?" in browser.path)
    assert "Version 1" in browser.find("main h2").text and "version 5" in browser.find("main h2").text
    befores = [cell.text for cell in browser.find_all("td.before")]
    afters = [cell.text for cell in browser.find_all("td.after")]
    assert "40" in befores and "80" in afters
    browser.screenshot("study-diff")
    assert fits_a_phone(browser)


def test_articles_and_sources_pages(signed_in_browser, browser_site, own_study):
    browser = signed_in_browser
    seed(browser_site, own_study)
    seed_sources(browser_site)
    browser.find("a[href='/articles']").click()
    browser.wait_for(lambda d: browser.path == "/articles")
    kinds = {r.get_attribute("class") for r in browser.find_all("li.change")}
    assert kinds == {"change kind-publication", "change kind-new_article"}
    assert no_alert(browser) and not browser.find_all("main img")
    assert any(HOSTILE in r.text for r in browser.find_all("li.change"))
    browser.screenshot("articles")
    assert fits_a_phone(browser)
    browser.find("a[href='/sources']").click()
    browser.wait_for(lambda d: browser.path == "/sources")
    assert "ClinicalTrials.gov" in browser.find("table.sources").text
    assert f"HTTP 503 {HOSTILE}" in browser.find("table.sources tr.failing").text and no_alert(browser)
    browser.screenshot("sources")
    assert fits_a_phone(browser)


def test_a_large_real_study_page(signed_in_browser, browser_site, real_study):
    """The real 1.5 MB record with 437 sites, six stored versions: every site listed, the chart drawn,
    nothing sideways on a phone."""
    from tests.timeline_data import store_versions

    browser = signed_in_browser
    store_versions(browser_site.engine, real_study("study_NCT02513394_with_results_large.json"), 6)
    browser.open("/studies/NCT02513394")
    browser.wait_for(lambda d: browser.find_all("table.sites"))
    assert len(browser.find_all("table.sites tbody tr")) == 437 - 1 + 3 + 1  # 3 sites added, the first removed
    charts = [svg for svg in browser.find_all(".chart-box svg") if svg.is_displayed()]
    assert len(charts) == 2 and len(charts[0].find_elements("css selector", ".series circle")) == 6
    browser.screenshot("study-large")
    assert fits_a_phone(browser)
