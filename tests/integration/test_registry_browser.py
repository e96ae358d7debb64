"""The hub's web pages in a real headless browser (Debian's chromium driven by Playwright):
repository list and search, a repository page (pull line, tags, layers, history), sign in.
Screenshots are checked for the elements that matter. Skipped without chromium or playwright."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pytest

from tests.integration import registry_hub as rh
from tests.integration.test_registry_api import push_image, sha

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def hub():
    """A hub with an account and two repositories (pushed while it was still open)."""
    import bcrypt

    root = Path(tempfile.mkdtemp(prefix="dyhub-"))
    (root / "htpasswd").write_text(f"alice:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n")
    opened = rh.start(root=root)
    try:
        digest, _ = push_image(opened, "alice/web", "v1", [b"first layer", b"second layer"])
        push_image(opened, "bob/other", "latest", [b"x"])
    finally:
        rh.stop(opened, keep=True)
    h = rh.start(root=root, config={"htpasswd": str(root / "htpasswd")})
    h.digest = digest
    try:
        yield h
    finally:
        rh.stop(h)


def shot(element) -> "object":
    from PIL import Image

    return Image.open(io.BytesIO(element.screenshot()))


def dominant(image) -> tuple[int, int, int]:
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return max(colours)[1]


def test_pages_list_search_repository_and_sign_in(browser, hub):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        page.goto(f"http://{hub.host}/")
        names = page.locator("#repositories tr.repo a").all_inner_texts()
        assert names == ["alice/web", "bob/other"]
        header = shot(page.locator("header"))
        assert header.width >= 1000 and dominant(header) == (0x0b, 0x3d, 0x91)  # the hub's header bar
        table = shot(page.locator("#repositories"))
        assert table.height > 40 and dominant(table) == (255, 255, 255)
        # search from the box in the header
        page.fill("#q", "alice")
        page.press("#q", "Enter")
        page.wait_for_url("**/?q=alice")
        assert page.locator("#repositories tr.repo a").all_inner_texts() == ["alice/web"]
        # the repository page
        page.click("text=alice/web")
        page.wait_for_url("**/r/alice/web")
        pull = page.locator("#pull")
        assert pull.inner_text() == f"docker pull {hub.host}/alice/web:v1"
        box = pull.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 10
        assert shot(pull).width == round(box["width"])
        assert page.locator("#tags tr.tag td code").inner_text() == hub.digest
        layers = page.locator("#tag-v1 table.layers tr.layer code").all_inner_texts()
        assert layers == [sha(b"first layer"), sha(b"second layer")]
        assert page.locator("#tag-v1 table.history tr.history").count() == 1
        # sign in: a wrong password is refused, the right one shows who is signed in
        page.click("#signin")
        page.fill("#username", "alice")
        page.fill("#password", "wrong")
        page.click("#submit")
        assert page.locator("#error").inner_text() == "Incorrect username or password."
        page.fill("#username", "alice")
        page.fill("#password", "pw")
        page.click("#submit")
        page.wait_for_url(f"http://{hub.host}/")
        assert page.locator("#user").inner_text() == "alice"
        assert shot(page.locator("#user")).width > 10
    finally:
        page.close()
