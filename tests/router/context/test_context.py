"""Context extraction: pure, from what NGINX forwards."""

from __future__ import annotations

import time

import pytest

from croupier.router.context import (EMPTY, Context, ContextReader, clock, device_class, feature_indices, geo, language,
                            source_class, token, utm)

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
ANDROID_PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
ANDROID_TABLET = "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
IPAD = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"


@pytest.mark.parametrize("ua, expected", [
    (IPHONE, "mobile"), (ANDROID_PHONE, "mobile"), (ANDROID_TABLET, "tablet"), (IPAD, "tablet"),
    (WINDOWS, "desktop"), (MAC, "desktop"), ("", "unknown"), ("something odd", "unknown"),
])
def test_device_class(ua, expected):
    assert device_class(ua) == expected


def test_bots_are_their_own_class():
    assert device_class("Googlebot/2.1 (+http://www.google.com/bot.html)", lambda ua: "bot" in ua.lower()) == "bot"


@pytest.mark.parametrize("referer, medium, expected", [
    ("", "", "direct"),
    ("https://www.google.com/search?q=x", "", "search"),
    ("https://www.bing.com/", "", "search"),
    ("https://duckduckgo.com/", "", "search"),
    ("https://t.co/abc", "", "social"),
    ("https://m.facebook.com/", "", "social"),
    ("https://l.instagram.com/?u=x", "", "social"),
    ("https://mail.google.com/mail/u/0/", "", "email"),
    ("https://outlook.live.com/", "", "email"),
    ("https://example.com/other-page", "", "direct"),  # the site itself
    ("https://news.ycombinator.com/", "", "other"),
    ("https://news.ycombinator.com/", "email", "email"),  # utm_medium says more than the referrer
    ("", "cpc", "search"),
    ("not a url", "", "direct"),
])
def test_source_class(referer, medium, expected):
    assert source_class(referer, "www.example.com", medium) == expected


def test_utm_parameters_come_from_the_original_uri():
    assert utm("/spring/?utm_source=Newsletter&utm_medium=email&utm_campaign=Spring+Sale&x=1") == \
        ("newsletter", "email", "spring-sale")
    assert utm("/spring/") == ("", "", "")
    assert utm("/?utm_source=a%20b#frag") == ("a-b", "", "")


@pytest.mark.parametrize("header, expected", [
    ("de-CH,de;q=0.9,en;q=0.8", "de"), ("en-US", "en"), ("*", ""), ("", ""), (" FR ", "fr"),
])
def test_language_is_the_first_tag(header, expected):
    assert language(header) == expected


@pytest.mark.parametrize("value, expected", [
    ("US;San Francisco", ("us", "san-francisco")), ("de;", ("de", "")), (";", ("", "")),
    ("USA;x", ("", "")), ("12;x", ("", "")), ("fr", ("fr", "")),
])
def test_geo_accepts_only_a_country_code(value, expected):
    assert geo(value) == expected


def test_clock_with_offset():
    # 2024-03-04 (a Monday) 23:30 UTC
    now = 1709595000
    assert clock(now) == ("23", "mon")
    assert clock(now, 60) == ("0", "tue")
    assert clock(now, -120) == ("21", "mon")


def test_tokens_are_safe_everywhere():
    assert token("  Sp:ring|Sale;  ") == "sp-ring-sale"
    assert len(token("x" * 100)) == 32


def test_reader_builds_the_whole_context():
    reader = ContextReader(utc_offset_minutes=0, holds_valid_cookie=lambda header, now: "croupier_x=ok" in header)
    ctx = reader.read(host="shop.example", uri="/?utm_source=fb&utm_medium=social", user_agent=IPHONE,
                      referer="https://facebook.com/", accept_language="pt-BR,pt;q=0.9", geo_value="BR;Recife",
                      cookie_header="a=1; croupier_x=ok", now=1709595000)
    assert ctx == Context(device="mobile", source="social", utm_source="fb", utm_medium="social", utm_campaign="",
                          country="br", city="recife", language="pt", hour="23", weekday="mon", returning="yes")
    assert reader.read(user_agent=WINDOWS, now=0).returning == "no"
    assert reader.read(user_agent=WINDOWS, now=0, returning=True).returning == "yes"


def test_extraction_never_fails_a_decision():
    def broken(header, now):
        raise RuntimeError("boom")

    reader = ContextReader(holds_valid_cookie=broken)
    assert reader.read(user_agent=IPHONE, cookie_header="croupier_x=1", now=0) is EMPTY


def test_features_are_stable_sorted_and_in_range():
    ctx = Context(device="mobile", source="search", country="fr", language="fr", hour="13", weekday="sat",
                  returning="no")
    first = feature_indices(ctx, 64)
    assert first == feature_indices(ctx, 64)
    assert first[0] == 0 and list(first) == sorted(set(first))
    assert all(0 <= i < 64 for i in first)
    assert len(first) >= 5
    assert feature_indices(EMPTY, 64) == (0,)
    assert feature_indices(Context(device="desktop", source="search"), 64) != \
        feature_indices(Context(device="mobile", source="search"), 64)


def test_extraction_is_cheap():
    reader = ContextReader(holds_valid_cookie=lambda header, now: False)
    started = time.perf_counter()
    for _ in range(2000):
        reader.read(host="a.example", uri="/?utm_source=x", user_agent=IPHONE, referer="https://www.google.com/",
                    accept_language="en-US,en;q=0.9", geo_value="US;Austin", cookie_header="a=b", now=1e9)
    per_call = (time.perf_counter() - started) / 2000
    assert per_call < 200e-6, f"{per_call * 1e6:.1f} µs per context"
