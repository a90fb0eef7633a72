"""`make demo`, the README's first command, end to end in a folder of its own: the story it
tells holds (a reply ends Ada's welcome sequence, a bounce suppresses Linus, a one-click
answer and a one-click unsubscribe go through the real serve app, a Shopify order webhook
delivered twice is recorded once and thanked for by name, the next run writes to
Grace personally, and when the referral request is due for both customers who bought twice
only the one still subscribed gets it) and it ends with `dripper stats`."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_tells_its_story_and_ends_with_stats() -> None:
    """Every step of the demo succeeds and shows what the issues promised it would."""
    folder = Path(tempfile.mkdtemp(prefix=".demo-test-", dir=ROOT))
    try:
        done = subprocess.run(
            ["make", "--no-print-directory", "demo", f"DEMO={folder.name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = done.stdout
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "Traceback" not in out + done.stderr
        # Issue 22: Shopify's webhook delivered twice is one purchase, and Grace's
        # thank-you names what the order held.
        first, second = re.findall(r"POST /api/shopify -> 200 (\{.*\})", out)
        assert (first, second) == (
            '{"recorded":1,"duplicates":0}',
            '{"recorded":0,"duplicates":1}',
        )
        thanks = out.split("Grace's thank-you names what she ordered", 1)[1]
        assert "Subject: Thank you for your order, Grace!" in thanks
        assert "Your order #1001:" in thanks
        assert "1 × Colombia Huila (250 g)" in thanks
        # Issue 12: the reply ends Ada's welcome sequence, the bounce suppresses Linus.
        assert "reply: ada@example.com: reply from ada@example.com" in out
        assert re.search(r"welcome \(event:1\)\s+exited: exit on reply", out)
        assert "bounce hard: linus@example.com" in out
        # Issue 11: an answer and an unsubscribe through the real app. Then Grace and the
        # unsubscribed buyer have both bought twice, and the run at which their referral
        # requests are due (as Ada's was) sends Grace hers and him nothing.
        assert re.search(r"GET /a/\S+ -> 200 Thank you!", out)
        assert re.search(r"POST /u/\S+ -> 200 You are unsubscribed", out)
        after = out.split("You are unsubscribed", 1)[1].split("customers top", 1)[0]
        assert "sent feedback-follow-up/make-it-right to grace@example.com" in after
        assert "recorded purchase for new.buyer@example.com" in after
        assert "(purchases: 2," in after.split("new.buyer@example.com", 1)[1]
        assert "sent referral-request/ask to grace@example.com" in after
        assert "to new.buyer@example.com" not in after
        assert "new.buyer@example.com  (no name)  (unsubscribed)" in after
        # Issue 13: it ends with the stats.
        commands = [line for line in out.splitlines() if line.startswith("cd ")]
        assert commands[-1].endswith("stats --cadence 6w")
        assert "Second sale, reached by the welcome sequence: 3 of 3 bought again" in out
        assert "Answers to first_bag: poor: 1" in out
        # Issue 26: a reader signs up, gets the confirmation link, confirms, is welcomed.
        assert "POST /subscribe... -> 200 Check your inbox" in out
        assert "1 signup confirmation(s)" in out
        assert "Subject: Please confirm your subscription to Acme Coffee" in out
        assert "-> 200 You are subscribed" in out
        assert "sent newsletter-welcome/welcome to reader@example.com" in out
        # Issue 27: a campaign paused and resumed, `dripper campaigns` in between.
        assert "paused welcome: its sends wait" in out
        assert "resumed welcome (was: paused with `dripper pause`)" in out
        # Issue 29: the "poor" answer puts a call on the owner's list; the run emails the
        # owner the day's digest; `dripper tasks` lists it and `tasks done` closes it.
        assert "1 task(s), 1 digest(s)" in out
        listed = out.split("tasks done", 1)[0].rsplit("tasks\n", 1)[1]
        assert "owner · Grace Hopper <grace@example.com>" in listed
        assert "Call Grace: the first bag was poor." in listed
        assert "task #1 done: Call Grace" in out
        assert "note: Called Grace: too dark a roast for her" in out
        # Issue 30: the welcome campaign's holdout is honest about its size, and the
        # lifetime models say why they predict nothing yet.
        assert "lift: not enough data: " in out
        assert "not fitted: " in out
        assert "[predict] min_customers" in out
        assert "No predicted values: " in out
        emails = list((folder / "outbox").iterdir())
        assert len(emails) == 20  # 19 to customers and readers, 1 digest to the owner
    finally:
        shutil.rmtree(folder, ignore_errors=True)
