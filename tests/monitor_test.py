"""The web monitor in a real browser (ctest monitor_browser): Debian's headless Chromium,
driven by selenium through chromedriver, against a real reelfarm-server (--web-listen)
with a real worker (reelfarm-test-worker, slowed with --frame-delay-ms) and reelctl.

Screenshots go to $MONITOR_TEST_OUTPUT (ctest: build/tests/monitor_test_output/):
jobs_live.png, job_cancelled.png, viewer_jobs.png, xss_job.png, wedge.png, log_follow.png,
wipe.png, pick_form.png.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

REPO = pathlib.Path(os.environ.get("REELFARM_SOURCE_DIR",
                                   pathlib.Path(__file__).resolve().parents[1]))
BUILD = REPO / "build"
SERVER = os.environ.get("REELFARM_SERVER_BIN", str(BUILD / "server/reelfarm-server"))
WORKER = os.environ.get("REELFARM_TEST_WORKER_BIN", str(BUILD / "tests/reelfarm-test-worker"))
REELCTL = os.environ.get("REELFARM_REELCTL_BIN", str(BUILD / "cli/reelctl"))
OUT = pathlib.Path(os.environ.get("MONITOR_TEST_OUTPUT", BUILD / "tests/monitor_test_output"))
ADMIN = "monitor-test-admin-0123456789abcdef"
VIEWER = "monitor-test-viewer-0123456789abcdef"
WORKER_TOKEN = "monitor-test-worker-0123456789abcdef"
XSS_NAME = "<img src=x onerror=alert(1)>"


def wait_for(what, fn, timeout=60, interval=0.2):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Farm:
    def __init__(self, root):
        self.root = root
        self.storage = root / "storage"
        (self.storage / "in").mkdir(parents=True)
        (root / "tokens.yaml").write_text(
            "tokens:\n"
            f"  - {{name: ada, role: admin, token: {ADMIN}}}\n"
            f"  - {{name: vic, role: viewer, token: {VIEWER}}}\n"
            f"  - {{name: nodes, role: worker, token: {WORKER_TOKEN}}}\n")
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=64x48:rate=24", "-frames:v", "240", "-pix_fmt", "yuv420p",
                        str(self.storage / "in/plate.mp4")], check=True)
        self.server_log = open(root / "server.log", "w")
        self.server = subprocess.Popen(
            [SERVER, "--insecure", "--listen", "127.0.0.1:0", "--port-file", str(root / "port"),
             "--metrics-listen", "", "--web-listen", "127.0.0.1:0", "--web-port-file",
             str(root / "web.port"), "--data-dir", str(root / "data"), "--storage-root",
             str(self.storage), "--tokens-file", str(root / "tokens.yaml"), "--model-path",
             str(REPO / "models")], stdout=self.server_log, stderr=subprocess.STDOUT)
        wait_for("the server's ports", lambda: (root / "port").exists() and
                 (root / "web.port").exists() and (root / "web.port").read_text().strip())
        self.port = int((root / "port").read_text())
        self.web = f"http://127.0.0.1:{int((root / 'web.port').read_text())}"
        self.worker_log = open(root / "worker.log", "w")
        self.worker = subprocess.Popen(
            [WORKER, "--frame-delay-ms", "100", "--server", f"127.0.0.1:{self.port}",
             "--insecure", "--name", "w1", "--storage-root", str(self.storage), "--threads", "1",
             "--model-path", str(REPO / "models")],
            env=dict(os.environ, REELFARM_TOKEN=WORKER_TOKEN),
            stdout=self.worker_log, stderr=subprocess.STDOUT)

    def reelctl(self, *args, token=ADMIN):
        r = subprocess.run([REELCTL, "--server", f"127.0.0.1:{self.port}", "--insecure",
                            "--token", token, *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"reelctl {args}: {r.stdout}{r.stderr}"
        return r.stdout

    def submit(self, *args):
        out = self.reelctl("submit", *args)
        return int(re.search(r"submitted job (\d+)", out).group(1))

    def job(self, job_id):
        return json.loads(self.reelctl("--json", "get", str(job_id)))

    def close(self):
        for p in (self.worker, self.server):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def job_state(job):
    return str(job.get("state", "")).lower()


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = Farm(tmp_path_factory.mktemp("monitor"))
    yield f
    f.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1400,1000"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    OUT.mkdir(parents=True, exist_ok=True)
    yield d
    d.quit()


def sign_in(browser, farm, token):
    from selenium.webdriver.common.by import By
    browser.delete_all_cookies()
    browser.get(farm.web + "/login")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "sign-in").click()
    wait_for("the jobs page", lambda: browser.current_url.endswith("/jobs"))


def row_text(browser, job_id, cls):
    from selenium.webdriver.common.by import By
    return browser.find_element(By.CSS_SELECTOR, f'tr[data-job-id="{job_id}"] .{cls}').text


def post(farm, path, data, cookie=None):
    """A POST as a forger would send it; returns the HTTP status."""
    req = urllib.request.Request(farm.web + path, data=urllib.parse.urlencode(data).encode(),
                                 method="POST")
    if cookie:
        req.add_header("Cookie", f"rf_session={cookie}")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_live_progress_without_reload_and_admin_cancels_by_click(farm, browser):
    from selenium.webdriver.common.by import By
    job = farm.submit("upscale", "--input", "in/plate.mp4", "--output", "out/slow.mp4",
                      "--scale", "2", "--chunk", "24", "--name", "slow plate")
    sign_in(browser, farm, ADMIN)
    # `reelctl open` names the job's page; it shows the job.
    url = farm.reelctl("open", str(job), "--web", farm.web).strip()
    assert url == f"{farm.web}/jobs/{job}"
    browser.get(url)
    assert browser.find_element(By.CSS_SELECTOR, ".job-name").text == "slow plate"
    browser.get(farm.web + "/jobs")
    browser.execute_script("window.__loadedOnce = 'yes';")
    wait_for("the job running", lambda: row_text(browser, job, "state") == "running", 90)
    first = wait_for("frames done", lambda: (t := row_text(browser, job, "frames"))
                     and not t.startswith("0/") and t)
    changed = wait_for("the progress to change", lambda: (t := row_text(browser, job, "frames"))
                       != first and t, 60)
    assert browser.execute_script("return window.__loadedOnce") == "yes", "the page reloaded"
    assert int(browser.execute_script("return document.body.dataset.updates || '0'")) > 0
    print(f"progress {first} -> {changed} without reload")
    browser.save_screenshot(str(OUT / "jobs_live.png"))

    browser.find_element(By.ID, f"cancel-{job}").click()
    wait_for("the job page", lambda: browser.current_url.endswith(f"/jobs/{job}"))
    assert job_state(farm.job(job)) in ("cancelled", "job_state_cancelled")
    assert "cancelled" in browser.find_element(By.CSS_SELECTOR, ".job-head .state").text
    browser.save_screenshot(str(OUT / "job_cancelled.png"))


def test_viewer_sees_no_buttons_and_forged_posts_get_403(farm, browser):
    from selenium.webdriver.common.by import By
    # A job that no worker can take stays queued: a target for the forgeries.
    job = farm.submit("upscale", "--input", "in/plate.mp4", "--output", "out/target.mp4",
                      "--scale", "2", "--name", "target", "--require", "site=nowhere")
    sign_in(browser, farm, ADMIN)
    admin_cookie = browser.get_cookie("rf_session")["value"]
    assert browser.find_elements(By.ID, f"cancel-{job}"), "the admin sees a cancel button"
    admin_csrf = browser.find_element(By.CSS_SELECTOR, 'input[name="csrf"]').get_attribute("value")
    # The admin changes the job's priority on its page.
    browser.get(farm.web + f"/jobs/{job}")
    field = browser.find_element(By.ID, f"priority-value-{job}")
    field.clear()
    field.send_keys("77")
    browser.find_element(By.ID, f"priority-{job}").click()
    wait_for("the new priority", lambda: farm.job(job)["spec"].get("priority") == 77)

    sign_in(browser, farm, VIEWER)
    browser.get(farm.web + "/jobs")
    assert browser.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{job}"]')
    assert browser.find_elements(By.CSS_SELECTOR, "button[data-action]") == []
    browser.get(farm.web + f"/jobs/{job}")
    assert browser.find_elements(By.CSS_SELECTOR, "button[data-action]") == []
    why = browser.find_element(By.CSS_SELECTOR, "ul.why").text
    assert "site=nowhere" in why
    browser.get(farm.web + "/workers")
    assert browser.find_elements(By.CSS_SELECTOR, "button[data-action]") == []
    browser.save_screenshot(str(OUT / "viewer_jobs.png"))
    viewer_cookie = browser.get_cookie("rf_session")["value"]
    viewer_csrf = browser.find_element(By.CSS_SELECTOR, 'input[name="csrf"]').get_attribute("value")

    cancel = f"/jobs/{job}/cancel"
    assert post(farm, cancel, {}) == 403                                   # no session
    assert post(farm, cancel, {"csrf": admin_csrf}) == 403                 # no session cookie
    assert post(farm, cancel, {}, admin_cookie) == 403                     # no CSRF token
    assert post(farm, cancel, {"csrf": "0" * 64}, admin_cookie) == 403     # a wrong one
    assert post(farm, cancel, {"csrf": viewer_csrf}, admin_cookie) == 403  # another session's
    assert post(farm, cancel, {"csrf": viewer_csrf}, viewer_cookie) == 403  # a viewer
    assert post(farm, "/workers/w1/drain", {"csrf": viewer_csrf}, viewer_cookie) == 403
    assert post(farm, f"/jobs/{job}/priority", {"csrf": viewer_csrf, "priority": "1"},
                viewer_cookie) == 403
    assert post(farm, f"/jobs/{job}/priority", {"priority": "1"}, admin_cookie) == 403
    assert farm.job(job)["spec"].get("priority") == 77
    assert job_state(farm.job(job)) in ("queued", "job_state_queued")
    # The same request with the admin's session and token goes through (303 to the job).
    req_ok = post(farm, cancel, {"csrf": admin_csrf}, admin_cookie)
    assert req_ok in (200, 303)
    assert job_state(farm.job(job)) in ("cancelled", "job_state_cancelled")


def test_xss_job_name_renders_as_text(farm, browser):
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import NoAlertPresentException
    job = farm.submit("upscale", "--input", "in/plate.mp4", "--output", "out/xss.mp4",
                      "--scale", "2", "--name", XSS_NAME, "--require", "site=nowhere")
    sign_in(browser, farm, ADMIN)
    for page in ("/jobs", f"/jobs/{job}"):
        browser.get(farm.web + page)
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 - raises when no alert is open
        assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []
        sel = f'tr[data-job-id="{job}"] .name' if page == "/jobs" else ".job-name"
        assert browser.find_element(By.CSS_SELECTOR, sel).text == XSS_NAME
    browser.save_screenshot(str(OUT / "xss_job.png"))
    farm.reelctl("cancel", str(job))


def test_wedge_of_4_takes_shows_4_cells_whose_previews_load(farm, browser):
    from selenium.webdriver.common.by import By
    job = farm.submit("generate", "--model", "shapes_t2v", "--prompt", "red circle moving right",
                      "--seeds", "1-4", "--steps", "4", "--size", "64x64", "--frames", "4",
                      "--output", "gen/wedge.mp4", "--name", "wedge")
    wait_for("the wedge to succeed",
             lambda: job_state(farm.job(job)) in ("succeeded", "job_state_succeeded"), 300, 1)
    sign_in(browser, farm, ADMIN)
    browser.get(farm.web + f"/jobs/{job}/wedge")
    cells = browser.find_elements(By.CSS_SELECTOR, "figure.take")
    assert len(cells) == 4
    imgs = browser.find_elements(By.CSS_SELECTOR, "figure.take img.preview")
    assert len(imgs) == 4
    wait_for("the previews to load", lambda: all(
        browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
        for i in imgs), 60)
    widths = [browser.execute_script("return arguments[0].naturalWidth", i) for i in imgs]
    assert all(w > 0 for w in widths), widths
    # The seeds vary across the takes, and are marked so.
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.take .varying")) >= 4
    # Each finished take was checked by QC (media/qc.h): "QC ok" or its flags.
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.take .qc")) == 4
    browser.save_screenshot(str(OUT / "wedge.png"))


def task_state(job, index):
    return str(job["tasks"][index].get("state", "")).lower()


def image_loaded(browser, element_id):
    return browser.execute_script(
        "var i = document.getElementById(arguments[0]);"
        "return i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0", element_id)


def test_owner_shown_and_filtered(farm, browser):
    from selenium.webdriver.common.by import By
    job = farm.submit("upscale", "--input", "in/plate.mp4", "--output", "out/owned.mp4",
                      "--scale", "2", "--name", "owned", "--require", "site=nowhere")
    assert farm.job(job)["owner"] == "ada"  # the admin token's name, as reelctl get shows it
    sign_in(browser, farm, VIEWER)
    browser.get(farm.web + "/jobs")
    assert row_text(browser, job, "owner") == "ada"
    browser.get(farm.web + "/jobs?owner=ada&sort=owner")
    assert browser.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{job}"]')
    browser.get(farm.web + "/jobs?owner=vic")
    assert browser.find_elements(By.CSS_SELECTOR, f'tr[data-job-id="{job}"]') == []
    browser.get(farm.web + f"/jobs/{job}")
    assert browser.find_element(By.CSS_SELECTOR, "dl.spec .owner").text == "ada"
    farm.reelctl("cancel", str(job))


def test_log_follow_and_wipe_of_a_running_then_finished_upscale(farm, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x180:rate=24", "-frames:v", "240", "-pix_fmt", "yuv420p",
                    str(farm.storage / "in/wide.mp4")], check=True)
    job = farm.submit("upscale", "--input", "in/wide.mp4", "--output", "out/wipe.mp4",
                      "--scale", "2", "--chunk", "24", "--name", "wipe plate")
    sign_in(browser, farm, ADMIN)
    # Chunk 0 done, the job still running: its frames come from chunk 0's segment.
    wait_for("chunk 0 to succeed", lambda: task_state(farm.job(job), 0).endswith("succeeded"), 120)
    browser.get(farm.web + f"/jobs/{job}")
    browser.execute_script("window.__loadedOnce = 'yes';")
    assert job_state(farm.job(job)) in ("running", "job_state_running"), "ran too fast to test"

    # The log follows: lines stream in, and new ones appear without a reload.
    assert browser.find_element(By.ID, "log-follow").is_selected()

    def lines():
        return [x for x in browser.find_element(By.ID, "log-lines").text.split("\n") if x]
    wait_for("the streamed log", lambda: int(browser.execute_script(
        "return document.getElementById('log').dataset.lines || '0'")) > 0)
    first = set(lines())
    new = wait_for("a new log line", lambda: set(lines()) - first, 90)
    assert browser.execute_script("return window.__loadedOnce") == "yes", "the page reloaded"
    print(f"log: {len(first)} lines, then new ones: {sorted(new)[:2]}")
    browser.execute_script("document.getElementById('log').scrollIntoView()")
    browser.save_screenshot(str(OUT / "log_follow.png"))

    # The wipe at a frame of chunk 0 (from its segment while the job runs).
    frame = int(browser.find_element(By.ID, "wipe-frame").get_attribute("value"))
    assert 0 <= frame < 24
    wait_for("the wipe's frames", lambda: image_loaded(browser, "wipe-before") and
             image_loaded(browser, "wipe-after"), 60)
    assert image_loaded(browser, "wipe-before") == 320
    assert image_loaded(browser, "wipe-after") == 640  # the x2 output
    after = browser.find_element(By.ID, "wipe-after")
    clip = after.get_attribute("style")
    assert "50%" in clip
    view = browser.find_element(By.ID, "wipe-view")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", view)
    ActionChains(browser).move_to_element_with_offset(view, 0, 0).click_and_hold() \
        .move_by_offset(-view.size["width"] // 4, 0).release().perform()
    moved = after.get_attribute("style")
    assert moved != clip, moved
    pct = float(re.search(r"inset\(0(?:px)? 0(?:px)? 0(?:px)? ([0-9.]+)%\)", moved).group(1))
    assert 15 < pct < 35, moved
    divider = browser.find_element(By.ID, "wipe-divider").get_attribute("style")
    assert f"{pct:.2f}%" in divider

    # Once published, any frame: from the output movie.
    wait_for("the job to succeed",
             lambda: job_state(farm.job(job)) in ("succeeded", "job_state_succeeded"), 180, 1)
    browser.get(farm.web + f"/jobs/{job}")
    number = browser.find_element(By.ID, "wipe-frame-number")
    number.clear()
    number.send_keys("200", Keys.TAB)
    wait_for("frame 200", lambda: "/frames/200/output.png" in browser.find_element(
        By.ID, "wipe-after").get_attribute("src"))
    wait_for("frame 200 to load", lambda: image_loaded(browser, "wipe-before") and
             image_loaded(browser, "wipe-after"), 60)
    assert image_loaded(browser, "wipe-after") == 640
    assert browser.find_element(By.ID, "wipe-frame").get_attribute("value") == "200"
    view = browser.find_element(By.ID, "wipe-view")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", view)
    ActionChains(browser).move_to_element_with_offset(view, 0, 0).click_and_hold() \
        .move_by_offset(view.size["width"] // 5, 0).release().perform()
    browser.execute_script("document.getElementById('wipe').scrollIntoView()")
    browser.save_screenshot(str(OUT / "wipe.png"))
    # A frame outside the job is refused by the server, not guessed.
    with pytest.raises(urllib.error.HTTPError) as refused:
        cookie = browser.get_cookie("rf_session")["value"]
        req = urllib.request.Request(farm.web + f"/jobs/{job}/frames/240/output.png",
                                     headers={"Cookie": f"rf_session={cookie}"})
        urllib.request.urlopen(req)
    assert refused.value.code == 400


def test_pick_submits_an_upscale_of_the_take_and_viewers_cannot(farm, browser):
    from selenium.webdriver.common.by import By
    wedge = farm.submit("generate", "--model", "shapes_t2v", "--prompt", "blue square",
                        "--seeds", "5-6", "--steps", "4", "--size", "64x64", "--frames", "4",
                        "--output", "gen/pick.mp4", "--name", "pick")
    wait_for("the wedge to succeed",
             lambda: job_state(farm.job(wedge)) in ("succeeded", "job_state_succeeded"), 300, 1)
    sign_in(browser, farm, ADMIN)
    browser.get(farm.web + f"/jobs/{wedge}/wedge")
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.take .btn-pick")) == 2
    browser.find_element(By.ID, "pick-1").click()
    wait_for("the pick form", lambda: browser.current_url.endswith(f"/jobs/{wedge}/takes/1/pick"))
    take = "gen/pick_take002.mp4"
    assert browser.find_element(By.ID, "pick-input").get_attribute("value") == take
    assert browser.find_element(By.ID, "pick-output").get_attribute("value") == \
        "gen/pick_take002_x2.mp4"
    assert browser.find_element(By.ID, "pick-model").get_attribute("value") == "bicubic"
    output = browser.find_element(By.ID, "pick-output")
    output.clear()
    output.send_keys("picked/take002_x3.mp4")
    scale = browser.find_element(By.ID, "pick-scale")
    scale.clear()
    scale.send_keys("3")
    wait_for("the take's preview", lambda: browser.execute_script(
        "var i = document.querySelector('.pick img.preview'); return i.complete && i.naturalWidth"))
    browser.save_screenshot(str(OUT / "pick_form.png"))
    pick_csrf = browser.find_element(By.CSS_SELECTOR, '#pick-form input[name="csrf"]') \
        .get_attribute("value")
    admin_cookie = browser.get_cookie("rf_session")["value"]
    browser.find_element(By.ID, "pick-submit").click()
    new = int(wait_for("the new job's page", lambda: (m := re.search(
        r"/jobs/(\d+)$", browser.current_url)) and int(m.group(1)) != wedge and m.group(1)))
    got = farm.job(new)
    assert got["spec"]["upscale"]["input"] == take
    assert got["spec"]["upscale"]["output"] == "picked/take002_x3.mp4"
    assert got["spec"]["upscale"]["scale"] == 3
    assert got["spec"].get("project", "default") == farm.job(wedge)["spec"].get("project",
                                                                                   "default")
    assert got["owner"] == "ada"
    wait_for("the picked upscale to succeed",
             lambda: job_state(farm.job(new)) in ("succeeded", "job_state_succeeded"), 120, 1)

    # A viewer sees no pick button, may not open the form, and a forged pick is refused.
    sign_in(browser, farm, VIEWER)
    browser.get(farm.web + f"/jobs/{wedge}/wedge")
    assert len(browser.find_elements(By.CSS_SELECTOR, "figure.take")) == 2
    assert browser.find_elements(By.CSS_SELECTOR, ".btn-pick") == []
    viewer_cookie = browser.get_cookie("rf_session")["value"]
    viewer_csrf = browser.find_element(By.CSS_SELECTOR, 'input[name="csrf"]').get_attribute("value")
    browser.get(farm.web + f"/jobs/{wedge}/takes/1/pick")
    assert browser.find_elements(By.ID, "pick-form") == []
    before = len(json.loads(farm.reelctl("--json", "list")).get("jobs", []))
    form = {"name": "forged", "model": "bicubic", "scale": "2", "priority": "50",
            "output": "picked/forged.mp4"}
    path = f"/jobs/{wedge}/takes/1/pick"
    assert post(farm, path, dict(form, csrf=viewer_csrf), viewer_cookie) == 403  # a viewer
    assert post(farm, path, form, admin_cookie) == 403                          # no CSRF token
    assert post(farm, path, dict(form, csrf=viewer_csrf), admin_cookie) == 403  # another's
    assert post(farm, path, dict(form, csrf=pick_csrf)) == 403                  # no session
    assert len(json.loads(farm.reelctl("--json", "list")).get("jobs", [])) == before
    assert not (farm.storage / "picked/forged.mp4").exists()


def test_monitor_serves_https_with_the_grpc_certificate(tmp_path):
    """With TLS on the gRPC port, the monitor serves HTTPS with the same certificate (a
    Secure session cookie) and no plaintext."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"),
         "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    server = subprocess.Popen(
        [SERVER, "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem"),
         "--no-auth", "--listen", "127.0.0.1:0", "--metrics-listen", "", "--web-listen",
         "127.0.0.1:0", "--web-port-file", str(tmp_path / "web.port"), "--data-dir",
         str(tmp_path / "data")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = int(wait_for("the monitor's port", lambda: (tmp_path / "web.port").exists() and
                            (tmp_path / "web.port").read_text().strip()))
        import ssl
        ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/jobs", context=ctx) as r:
            assert r.status == 200
            assert "Secure" in r.headers["Set-Cookie"]
            assert "HttpOnly" in r.headers["Set-Cookie"]
        with pytest.raises(Exception):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/jobs", timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_event_streams_past_the_limit_get_503_with_retry_after(tmp_path):
    """--web-threads 16 (the least) leaves 8 threads for event streams (8 are kept for
    pages): a ninth stream, of job changes or of a task log, gets 503 with Retry-After while
    8 are open, pages are still served, and a stream is admitted again once one closes."""
    server = subprocess.Popen(
        [SERVER, "--insecure", "--no-auth", "--listen", "127.0.0.1:0", "--metrics-listen", "",
         "--web-listen", "127.0.0.1:0", "--web-port-file", str(tmp_path / "web.port"),
         "--web-threads", "16", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = int(wait_for("the monitor's port", lambda: (tmp_path / "web.port").exists() and
                            (tmp_path / "web.port").read_text().strip()))
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + "/jobs", timeout=10) as r:
            cookie = r.headers["Set-Cookie"].split(";")[0]

        def get(path):
            return urllib.request.urlopen(
                urllib.request.Request(base + path, headers={"Cookie": cookie}), timeout=10)

        open_streams = [get("/events") for _ in range(8)]
        for stream in open_streams:
            assert stream.status == 200
            assert stream.readline().startswith(b"retry:")
        for path in ("/events", "/jobs/1/log/events"):
            with pytest.raises(urllib.error.HTTPError) as e:
                get(path)
            assert e.value.code == 503, path
            assert e.value.headers["Retry-After"] == "5"
            assert b"too many open event streams" in e.value.read()
        with get("/jobs") as page:  # pages keep their threads
            assert page.status == 200
        open_streams.pop().close()

        def admitted():
            try:
                with get("/events") as again:
                    return again.status == 200
            except urllib.error.HTTPError as e:
                assert e.code == 503
                return False
        wait_for("a stream admitted after one closed", admitted, timeout=60, interval=1)
        for stream in open_streams:
            stream.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
