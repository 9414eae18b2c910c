"""A watch's studies in a real browser (Debian's Chromium, headless) at 1280 and 360 px: the
timeline chart is drawn and legible, scrolls inside its own box on a phone, the table scrolls in
its own box, a filter chosen in the form becomes the view's query parameters, a heading sorts, and
the page never sticks out sideways. Screenshots go to $TRIALWATCH_SCREENSHOTS when set."""

from __future__ import annotations

from tests.landscape_data import hold, study_record
from tests.test_web_landscape import PAGE, seed
from tests.web_support import FILE_WATCH


def test_the_landscape_in_the_browser_at_1280_and_360_px(signed_in_browser, browser_site):
    seed(browser_site)
    more = [study_record(n, title=f"Renal cell carcinoma study number {n} with a long descriptive title")
            for n in range(10, 40)]  # fmt: skip
    hold(browser_site.engine, FILE_WATCH.name, more, browser_site.clock.now())
    browser = signed_in_browser
    browser.find(f".watch a[href='{PAGE}']").click()  # the dashboard's study count
    browser.wait_for(lambda driver: browser.path == PAGE)
    bars = browser.find_all("svg.landscape-chart a.bar")
    assert len(bars) == 35 and browser.find("svg.landscape-chart line.today")
    assert len(browser.find_all("svg.landscape-chart rect.actual")) > 0
    assert len(browser.find_all("svg.landscape-chart rect.estimated")) > 0
    label = browser.find("svg.landscape-chart a.bar text")
    assert label.size["height"] >= 10  # drawn at its own size, not shrunk to fit the screen
    browser.screenshot("landscape")
    metrics = {"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": True}
    browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    box = browser.find(".chart-scroll")
    assert box.size["width"] <= 360 and browser.driver.execute_script(
        "return arguments[0].scrollWidth > arguments[0].clientWidth", box)  # fmt: skip
    assert not browser.page_overflows()
    browser.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    # a filter chosen in the form is the view's query string; a heading sorts it
    from selenium.webdriver.support.ui import Select

    Select(browser.find("#f-status")).select_by_value("RECRUITING")
    browser.fill({"q": "renal"})
    browser.find(".filters button[type=submit]").click()
    browser.wait_for(lambda driver: "status=RECRUITING" in browser.path)
    assert "q=renal" in browser.path
    rows = browser.find_all("table.landscape tbody tr")
    assert rows and all("Recruiting" in row.text for row in rows)
    assert len(browser.find_all("svg.landscape-chart a.bar")) == len(rows)  # the chart follows the filters
    browser.find("table.landscape th a[href*='sort=enrollment']").click()
    browser.wait_for(lambda driver: "sort=enrollment" in browser.path and "status=RECRUITING" in browser.path)
    counts = [int(row.find_element("css selector", "td.num").text.split()[0]) for row in
              browser.find_all("table.landscape tbody tr")]  # fmt: skip
    assert counts == sorted(counts)
    browser.screenshot("landscape-filtered")
