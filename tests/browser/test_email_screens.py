"""Every shipped email in Debian's chromium (DESIGN 15): at 600, 375 and 320 px wide and in
dark mode, nothing scrolls sideways and nothing is cut off at the right; in dark mode every
text stays readable (4.5:1 against what is behind it). A screenshot of each is taken (a
real picture of the page, not a blank)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dripper.cli import cli
from dripper.render.lint import contrast, parse_colour
from tests.browser.conftest import chromium

pytestmark = pytest.mark.browser

STEPS = [
    ("welcome", "thank-you"),
    ("welcome", "second-sale"),
    ("referral-request", "ask"),
    ("birthday", "greeting"),
    ("feedback-follow-up", "make-it-right"),
    ("vip", "regulars"),
    ("value-newsletter", "edition"),
    ("newsletter-welcome", "welcome"),
]

# Every visible element whose right edge passes the viewport, and every text's colour
# and the colour behind it (the nearest ancestor with a background), as the browser
# computed them.
PROBE = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  const texts = [];
  const opaque = (c) => c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent';
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (style.display === 'none' || box.width === 0 || box.height === 0) continue;
    if (box.right > width + 1) wide.push(el.tagName + ' ' + Math.round(box.right));
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    let back = null;
    for (let a = el; a; a = a.parentElement) {
      const bg = getComputedStyle(a).backgroundColor;
      if (opaque(bg)) { back = bg; break; }
    }
    texts.push([style.color, back || 'rgb(255, 255, 255)', el.textContent.trim().slice(0, 30)]);
  }
  return JSON.stringify({scroll: document.documentElement.scrollWidth, width, wide, texts});
}"""


@pytest.fixture(scope="module")
def emails(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each shipped step's email as the first sample customer gets it (HTML files)."""
    root = tmp_path_factory.mktemp("shop")
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(root)]).exit_code == 0
    found = {}
    for campaign, step in STEPS:
        out = root / f"{campaign}-{step}.html"
        result = runner.invoke(
            cli,
            ["--config", str(root / "config.toml"), "preview", campaign, step,
             "--format", "html", "-o", str(out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        found[f"{campaign}/{step}"] = out
    return found


@pytest.fixture(scope="module")
def browser(emails: dict[str, Path]) -> Iterator[object]:
    with chromium() as launched:
        yield launched


def _rgb(value: str) -> tuple[int, int, int]:
    found = parse_colour(
        value.replace("rgba", "rgb").rsplit(",", 1)[0] + ")" if "rgba" in value else value
    )
    assert found is not None, value
    return found


@pytest.mark.parametrize("width", [600, 375, 320])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_email_fits_and_reads(
    emails: dict[str, Path], browser: object, width: int, scheme: str, tmp_path: Path
) -> None:
    """No sideways scroll, nothing past the right edge; text readable in dark mode; a
    screenshot that is a real picture."""
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": width, "height": 900}, color_scheme=scheme, java_script_enabled=True
    )
    try:
        page = context.new_page()
        for name, path in emails.items():
            page.goto(path.as_uri())
            probe = json.loads(page.evaluate(PROBE))
            assert probe["scroll"] <= probe["width"], (name, width, probe["scroll"])
            assert probe["wide"] == [], (name, width, probe["wide"][:5])
            if scheme == "dark":
                for colour, back, text in probe["texts"]:
                    ratio = contrast(_rgb(colour), _rgb(back))
                    assert ratio >= 4.5, (name, text, colour, back, round(ratio, 2))
            shot = tmp_path / f"{name.replace('/', '-')}-{width}-{scheme}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 5_000  # a picture with content, not a blank
    finally:
        context.close()
