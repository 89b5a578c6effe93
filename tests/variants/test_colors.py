import pytest

from croupier.variants.colors import contrast_ratio, readable_on


@pytest.mark.parametrize(("background", "text"), [
    ("#ffffff", "#111827"), ("#ffd166", "#111827"), ("#1f7a5c", "#ffffff"), ("#000000", "#ffffff"),
])
def test_readable_on_picks_the_higher_contrast(background, text):
    assert readable_on(background) == text


def test_contrast_ratio_bounds():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#777777") == pytest.approx(1.0)
