"""`[signup]`, `[consent]`, `[topics]` and `[company] language` in config.toml: checked key by
key, each mistake one line naming the file, line and key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dripper.config import load_config
from dripper.errors import ConfigError


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path)


def test_the_defaults(tmp_path: Path) -> None:
    """Off, 7 days, 10 per hour per IP, 1,000 a day, one default form, subscribed."""
    config = load_config(None)
    assert config.signup.enabled is False
    assert config.signup.confirm_within == timedelta(days=7)
    assert (config.signup.per_ip.count, config.signup.per_ip.period) == (10, timedelta(hours=1))
    assert config.signup.max_per_day == 1000
    assert config.signup.form("default") is not None
    assert config.consent.default == "subscribed"
    assert dict(config.topics) == {}
    assert config.language == "en"


def test_forms_topics_and_language(tmp_path: Path) -> None:
    """Forms with their consent text and topics, topics in the file's order, a language."""
    config = load(
        tmp_path,
        '[company]\nlanguage = "nl"\n[topics]\nnews = "News"\noffers = "Offers"\n'
        '[signup]\nper_ip = "5/30m"\n[signup.forms.shop]\nconsent_text = "Yes."\n'
        'topics = ["offers"]\n',
    )
    assert config.language == "nl"  # type: ignore[attr-defined]
    assert list(config.topics) == ["news", "offers"]  # type: ignore[attr-defined]
    form = config.signup.form("shop")  # type: ignore[attr-defined]
    assert (form.consent_text, form.topics) == ("Yes.", ("offers",))
    assert config.signup.per_ip.period == timedelta(minutes=30)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[signup]\nper_ip = "lots"\n',
            'config.toml:2: [signup] per_ip: expected "COUNT/DURATION"',
        ),
        ("[signup]\nmax_per_day = -1\n", "config.toml:2: [signup] max_per_day"),
        ('[signup]\nhoneypot = "a b"\n', "config.toml:2: [signup] honeypot"),
        ('[signup]\nredirect_url = "/thanks"\n', "[signup] redirect_url: expected an http(s) URL"),
        ('[signup.forms.x]\nconsent_text = ""\n', "consent_text is empty"),
        ('[signup.forms.x]\nwords = "hi"\n', "unknown key 'words'"),
        ('[signup.forms.x]\ntopics = ["news"]\n', "topic 'news' is not in [topics]"),
        ('[topics]\n"Big News" = "x"\n', "[topics] Big News: a topic name"),
        ('[topics]\nnews = ""\n', "[topics] news: expected its label"),
        ('[consent]\ndefault = "maybe"\n', "config.toml:2: [consent] default: expected one of"),
        ('[company]\nlanguage = "pt"\n', "config.toml:2: [company] language: expected one of en"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, expected: str) -> None:
    """Each mistake: one line with the file, the line where known, the key, the fix."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert expected in str(caught.value)
