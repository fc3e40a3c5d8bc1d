"""One MiniWoB++ task in a headless Chromium, offline: reset by seed, look, click, type.

The Farama ``miniwob`` package drives Debian's ``chromium`` + ``chromium-driver`` through
Selenium; the task pages ship inside the package and open through ``file://``. Both browser
paths are always given to miniwob (``MINIWOB_CHROME_BINARY`` / ``MINIWOB_CHROMEDRIVER``), so
Selenium's driver manager, which would reach for the network, never runs.

What makes an episode reproducible here (checked by tests/test_miniwob_env.py):

* ``reset(seed)`` seeds the page's ``Math.random``; the same seed gives the same problem;
* before each reset the focused element is blurred and the pointer parked at (0, 0), so the
  previous episode's focus ring or hover never shows in the next screenshot;
* one warm-up episode runs after the page loads (the first one can differ by anti-aliasing);
* the blinking text caret is made transparent (a focused field still shows its focus ring);
* the episode timer is set to 10^9 ms, so no episode times out while a model is replayed.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from typing import Any

from PIL import Image

from r3v_eval.benchmarks.miniwob import VIEWPORT
from r3v_eval.errors import R3VError

#: where Debian puts the browser (the real binary first: the /usr/bin wrapper prints noise)
CHROME_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
DRIVER_CANDIDATES = ("/usr/bin/chromedriver",)
INSTALL_HINT = ("install the browser with `bash scripts/install-browser.sh` (Debian: apt-get "
                "install chromium chromium-driver) and the package with `pip install 'r3v[miniwob]'`")
EPISODE_MAX_TIME_MS = 1e9  # below 2^31 ms, which setTimeout would treat as 0
WARMUP_SEED = 0


class BrowserUnavailable(R3VError):
    """The miniwob package or the browser is missing (the message says which, and how to fix)."""


def browser_paths() -> tuple[str, str]:
    """(chromium binary, chromedriver): from MINIWOB_CHROME_BINARY / MINIWOB_CHROMEDRIVER or
    Debian's locations; BrowserUnavailable when either is missing."""
    binary = os.environ.get("MINIWOB_CHROME_BINARY") or next(
        (p for p in CHROME_CANDIDATES if os.path.isfile(p)), None)
    driver = os.environ.get("MINIWOB_CHROMEDRIVER") or next(
        (p for p in DRIVER_CANDIDATES if os.path.isfile(p)), shutil.which("chromedriver"))
    missing = [name for name, path in (("chromium", binary), ("chromedriver", driver))
               if not path or not os.path.isfile(path)]
    if missing:
        raise BrowserUnavailable(f"MiniWob needs {' and '.join(missing)}, not found; {INSTALL_HINT}")
    return binary, driver


def unavailable_reason() -> str | None:
    """Why MiniWob environments cannot run here (None when they can)."""
    try:
        import miniwob  # noqa: F401
    except ImportError:
        return f"the `miniwob` package is not installed; {INSTALL_HINT}"
    try:
        browser_paths()
    except BrowserUnavailable as exc:
        return str(exc)
    return None


def _offline_environment() -> None:
    binary, driver = browser_paths()
    os.environ["MINIWOB_CHROME_BINARY"] = binary
    os.environ["MINIWOB_CHROMEDRIVER"] = driver
    os.environ.setdefault("SE_OFFLINE", "true")  # a backstop: Selenium Manager stays offline
    os.environ.setdefault("SE_AVOID_STATS", "true")


@dataclass(frozen=True)
class Element:
    """One DOM element as miniwob reports it (CSS px; ``t`` = a text fragment, negative ref)."""

    ref: int
    parent: int
    tag: str
    text: str
    value: str
    id: str
    classes: str
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class StepResult:
    done: bool
    raw_reward: float
    reason: Any


def _element(raw: dict[str, Any]) -> Element:
    def num(v: Any) -> float:
        return float(v[0]) if hasattr(v, "__len__") else float(v)

    return Element(ref=int(raw["ref"]), parent=int(raw["parent"]), tag=str(raw["tag"]),
                   text=str(raw["text"]), value=str(raw["value"]), id=str(raw["id"]),
                   classes=str(raw["classes"]), left=num(raw["left"]), top=num(raw["top"]),
                   width=num(raw["width"]), height=num(raw["height"]))


# the pixels around the elements' client rectangles (clipped to the screenshot) where a click
# would reach one of the elements (or an element inside one), as runs per row: [y, x0, x1) ...
_HIT_RUNS_JS = """
var targets = arguments[0].map(function (ref) {
  var el = core.previousDOMInfo[ref];
  if (!el) throw new Error('no element with ref ' + ref);
  return el;
});
var W = arguments[1], H = arguments[2], hit = {};
function ours(el) {
  for (; el; el = el.parentElement) if (targets.indexOf(el) >= 0) return true;
  return false;
}
targets.forEach(function (el) {
  Array.from(el.getClientRects()).forEach(function (r) {
    // hit testing snaps boxes to whole pixels: look 2 px beyond the fractional rectangle
    for (var y = Math.max(Math.floor(r.top) - 2, 0); y < Math.min(r.bottom + 2, H); y++)
      for (var x = Math.max(Math.floor(r.left) - 2, 0); x < Math.min(r.right + 2, W); x++)
        if (!hit[y * W + x] && ours(document.elementFromPoint(x, y))) hit[y * W + x] = 1;
  });
});
var runs = [];
for (var y = 0; y < H; y++) {
  var start = -1;
  for (var x = 0; x <= W; x++) {
    var on = x < W && hit[y * W + x];
    if (on && start < 0) start = x;
    if (!on && start >= 0) { runs.push([y, start, x]); start = -1; }
  }
}
return runs;
"""


def runs_to_boxes(runs: list[list[int]]) -> list[list[int]]:
    """Row runs ``[y, x0, x1)`` -> boxes ``[left, top, right, bottom)`` covering exactly the
    same pixels (a run continuing the same columns on the next row extends its box)."""
    open_boxes: dict[tuple[int, int], list[int]] = {}
    done: list[list[int]] = []
    for y, x0, x1 in sorted(runs):
        box = open_boxes.get((x0, x1))
        if box is not None and box[3] == y:
            box[3] = y + 1
        else:
            if box is not None:
                done.append(box)
            open_boxes[(x0, x1)] = [x0, y, x1, y + 1]
    return sorted(done + list(open_boxes.values()), key=lambda b: (b[1], b[0]))


class TaskBrowser:
    """One MiniWoB++ task (e.g. ``click-button``) in its own headless Chromium.

    ``scale`` > 1 renders screenshots at that device-pixel ratio (crisper text; layout, DOM
    boxes and actions stay in CSS px). Use as a context manager, or call :meth:`close`."""

    def __init__(self, task: str, scale: int = 1) -> None:
        reason = unavailable_reason()
        if reason:
            raise BrowserUnavailable(reason)
        _offline_environment()
        import gymnasium as gym
        import miniwob  # noqa: F401  (registers the miniwob/* environments)

        env_id = f"miniwob/{task}-v1"
        if env_id not in gym.registry:
            raise R3VError(f"unknown MiniWoB task {task!r} (no environment {env_id})")
        if int(scale) < 1:
            raise R3VError(f"scale={scale}: must be an integer >= 1")
        self.task = task
        self.scale = int(scale)
        self.env = gym.make(env_id)
        self.unwrapped = self.env.unwrapped
        self.unwrapped.set_record_screenshots(False)  # screenshots are taken by screenshot()
        self.driver = self.unwrapped.instance.driver
        if self.scale != 1:
            width, height = self.driver.execute_script(
                "return [window.innerWidth, window.innerHeight];")
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": self.scale,
                "mobile": False})
        # the text caret blinks: hidden, so screenshots are reproducible (the focus ring stays)
        self.driver.execute_script(
            "var s = document.createElement('style');"
            "s.textContent = '* { caret-color: transparent !important; }';"
            "document.head.appendChild(s);")
        self.reset(WARMUP_SEED)

    # ---------------------------------------------------------------- episodes
    def reset(self, seed: int) -> tuple[str, list[Element]]:
        """Start the problem of ``seed``: (the instruction, the DOM elements)."""
        from miniwob.selenium_actions import execute_move_coords

        self.driver.execute_script(
            "if (document.activeElement) document.activeElement.blur();"
            f"core.EPISODE_MAX_TIME = {EPISODE_MAX_TIME_MS:.0f};")
        execute_move_coords(0, 0, self.driver)
        obs, _ = self.env.reset(seed=int(seed))
        return obs["utterance"], [_element(e) for e in obs["dom_elements"]]

    def click(self, pixel: tuple[int, int]) -> StepResult:
        """A real pointer click at a CSS pixel (W3C actions)."""
        import numpy as np
        from miniwob.action import ActionTypes

        action = self.unwrapped.create_action(ActionTypes.CLICK_COORDS,
                                              coords=np.array(pixel, dtype=np.float32))
        return self._step(action)

    def type(self, text: str) -> StepResult:
        """Key presses sent to the focused element."""
        from miniwob.action import ActionTypes

        return self._step(self.unwrapped.create_action(ActionTypes.TYPE_TEXT, text=text))

    def _step(self, action: Any) -> StepResult:
        _, _, done, _, info = self.env.step(action)
        return StepResult(bool(done), float(info["raw_reward"]), info.get("reason"))

    # ------------------------------------------------------------------ looking
    def screenshot(self) -> Image.Image:
        """The task area (160 x 210 CSS px) at ``scale`` device pixels per CSS px."""
        png = self.driver.get_screenshot_as_png()
        with Image.open(io.BytesIO(png)) as im:
            image = im.convert("RGB")
        return image.crop((0, 0, VIEWPORT[0] * self.scale, VIEWPORT[1] * self.scale))

    def hit_boxes(self, refs: list[int]) -> list[list[int]]:
        """Where a click reaches the elements ``refs``: every integer CSS pixel in (or within 2 px
        of) their client rectangles, inside the screenshot, whose hit-tested element is one of
        them or inside one (hit testing snaps fractional boxes to whole pixels),
        as boxes [left, top, right, bottom) (exclusive right / bottom). Empty when hidden or
        outside the screenshot; valid until the next reset or step."""
        return runs_to_boxes(self.driver.execute_script(_HIT_RUNS_JS, list(refs), *VIEWPORT))

    def browser_version(self) -> str:
        return str(self.driver.capabilities.get("browserVersion", "unknown"))

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> "TaskBrowser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
