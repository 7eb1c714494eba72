"""Screenshots of the web playground for docs/web.md (and the README), at desktop and phone width.

    python tests/web_screenshots.py docs/images [--caption-model DIR] [--image photo.png]

Starts a real `pocketlm serve` (the embedded SmolLM2), drives the page in headless Chromium and writes
small PNGs (256-colour palettes; the docs want each under 150 KB). Tabs the server does not have
(Inspect, Describe) are left out.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from api_server import Server  # noqa: E402
from test_web import chromium, has_path, open_page, send, set_param, wait_answered  # noqa: E402

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TALL = {"width": 1280, "height": 1300}  # the Inspect tab's three views at once


def save(page, path: Path) -> None:
    """A screenshot as a palette PNG: flat UI colours survive, the file shrinks several times."""
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


def chat(browser, server, out: Path, size: dict, name: str) -> None:
    page = open_page(browser, server.url, **size)
    page.evaluate("document.querySelector('#settings').open = true")  # folded on a phone
    set_param(page, "temperature", 0)
    set_param(page, "max_new_tokens", 80)
    page.check("#param-logprobs")
    page.evaluate("document.querySelector('#settings').open = innerWidth > 760")
    send(page, "What is the capital of France? Answer in one sentence.")
    wait_answered(page)
    send(page, "Give three short tips for learning Python, as a list.")
    wait_answered(page)
    page.locator("#messages .msg.assistant").last.locator("button[data-view=markdown]").click()
    if size is DESKTOP:
        page.locator("#messages .msg.assistant").first.locator(".tok").nth(4).hover()
    save(page, out / f"{name}.png")
    page.context.close()


def inspect(browser, server, out: Path, size: dict, name: str) -> None:
    page = open_page(browser, server.url, **(TALL if size is DESKTOP else size))
    page.click("[role=tab][data-tab=inspect]")
    page.fill("#inspect-text", "I read a good novel.")  # the seed notebook's example
    page.check("#panel-inspect input[value=bert]")
    page.click("#inspect-tokens-run")
    expect(page.locator("#inspect-tokens .piece").first).to_be_visible(timeout=120_000)
    page.fill("#inspect-layer", "5")
    page.click("#inspect-attention-run")
    expect(page.locator("#inspect-attention canvas")).to_be_visible(timeout=120_000)
    page.fill("#inspect-top_k", "5")
    page.click("#inspect-next-run")
    expect(page.locator("#inspect-after .bars code").first).to_be_visible(timeout=120_000)
    page.locator("#inspect-tokens").scroll_into_view_if_needed()
    save(page, out / f"{name}.png")
    page.context.close()


def describe(browser, server, out: Path, size: dict, name: str, image: Path) -> None:
    page = open_page(browser, server.url, **size)
    page.click("[role=tab][data-tab=describe]")
    page.set_input_files("#describe-image", str(image))
    page.click("#describe-run")
    expect(page.locator("#describe-out audio")).to_be_visible(timeout=300_000)
    save(page, out / f"{name}.png")
    page.context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--caption-model", help="captioning model for the Describe tab")
    parser.add_argument("--image", type=Path, help="the picture the Describe tab describes")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    extra = ("--caption-model", args.caption_model) if args.caption_model else ()
    server = Server("--slots", "2", "--threads", "1", *extra)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            for size, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
                chat(browser, server, args.out, size, f"playground-chat-{suffix}")
                if has_path(server, "/v1/inspect/tokens"):
                    inspect(browser, server, args.out, size, f"playground-inspect-{suffix}")
                if args.caption_model and args.image and has_path(server, "/v1/pipelines/describe"):
                    describe(browser, server, args.out, size, f"playground-describe-{suffix}", args.image)
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
