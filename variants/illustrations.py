"""Built-in illustrations a variant can name in ``image``.

Inline SVG, so a page needs no asset request (nothing extra crosses the decision
path) and renders offline. Shapes are painted through ``ill-*`` classes that the
page's stylesheet maps to the variant's colours, so one drawing suits any palette.
"""

from __future__ import annotations

from markupsafe import Markup

_PIGGY_BANK = """\
<svg viewBox="0 0 400 320" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" focusable="false">
  <circle class="ill-bg" cx="200" cy="170" r="150"/>
  <ellipse class="ill-shadow" cx="200" cy="292" rx="130" ry="12"/>
  <circle class="ill-accent" cx="206" cy="46" r="24"/>
  <circle class="ill-accent-dark" cx="206" cy="46" r="15"/>
  <circle class="ill-accent" cx="206" cy="46" r="11"/>
  <path class="ill-primary-dark-line" d="M86 178c-26-4-30 22-14 26 12 3 16-14 4-16"
        fill="none" stroke-width="7" stroke-linecap="round"/>
  <rect class="ill-primary-dark" x="130" y="232" width="34" height="56" rx="12"/>
  <rect class="ill-primary-dark" x="236" y="232" width="34" height="56" rx="12"/>
  <ellipse class="ill-primary" cx="200" cy="186" rx="122" ry="92"/>
  <path class="ill-primary-dark" d="M250 116l22-42 26 48z"/>
  <ellipse class="ill-primary-dark" cx="318" cy="196" rx="30" ry="26"/>
  <ellipse class="ill-ink" cx="310" cy="196" rx="5" ry="8"/>
  <ellipse class="ill-ink" cx="328" cy="196" rx="5" ry="8"/>
  <circle class="ill-ink" cx="280" cy="160" r="8"/>
  <circle class="ill-paper" cx="283" cy="157" r="2.5"/>
  <rect class="ill-ink" x="168" y="104" width="64" height="10" rx="5"/>
  <path class="ill-highlight" d="M118 150c14-30 44-46 74-48" fill="none" stroke-width="10" stroke-linecap="round"/>
  <circle class="ill-accent" cx="72" cy="86" r="9"/>
  <circle class="ill-accent" cx="344" cy="96" r="6"/>
  <circle class="ill-primary" cx="330" cy="270" r="7"/>
</svg>"""

_GROWTH_CHART = """\
<svg viewBox="0 0 400 320" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" focusable="false">
  <circle class="ill-bg" cx="210" cy="160" r="150"/>
  <rect class="ill-shadow" x="58" y="62" width="280" height="220" rx="22"/>
  <rect class="ill-paper" x="50" y="50" width="280" height="220" rx="22"/>
  <rect class="ill-soft" x="76" y="76" width="96" height="12" rx="6"/>
  <rect class="ill-soft" x="76" y="96" width="58" height="10" rx="5"/>
  <rect class="ill-soft" x="76" y="232" width="228" height="4" rx="2"/>
  <rect class="ill-primary" x="86" y="196" width="30" height="36" rx="6"/>
  <rect class="ill-primary" x="130" y="176" width="30" height="56" rx="6"/>
  <rect class="ill-primary" x="174" y="160" width="30" height="72" rx="6"/>
  <rect class="ill-primary" x="218" y="132" width="30" height="100" rx="6"/>
  <rect class="ill-accent" x="262" y="100" width="30" height="132" rx="6"/>
  <path class="ill-ink-line" d="M96 176l48-22 44-12 44-30 50-38" fill="none" stroke-width="6"
        stroke-linecap="round" stroke-linejoin="round"/>
  <path class="ill-ink" d="M300 60l-8 26-18-18z"/>
  <circle class="ill-accent" cx="338" cy="250" r="30"/>
  <circle class="ill-accent-dark" cx="338" cy="250" r="20"/>
  <circle class="ill-accent" cx="338" cy="250" r="15"/>
  <circle class="ill-accent" cx="360" cy="200" r="18"/>
  <circle class="ill-accent-dark" cx="360" cy="200" r="11"/>
  <circle class="ill-primary" cx="40" cy="120" r="8"/>
  <circle class="ill-accent" cx="64" cy="292" r="6"/>
</svg>"""

_PHONE = """\
<svg viewBox="0 0 400 320" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" focusable="false">
  <circle class="ill-bg" cx="200" cy="160" r="150"/>
  <rect class="ill-shadow" x="140" y="22" width="144" height="290" rx="26"/>
  <rect class="ill-ink" x="128" y="12" width="144" height="290" rx="26"/>
  <rect class="ill-paper" x="138" y="30" width="124" height="256" rx="16"/>
  <rect class="ill-primary" x="138" y="30" width="124" height="46" rx="16"/>
  <rect class="ill-primary" x="138" y="56" width="124" height="20"/>
  <rect class="ill-paper-soft" x="152" y="44" width="58" height="8" rx="4"/>
  <circle class="ill-soft-stroke" cx="200" cy="128" r="34" fill="none" stroke-width="14"/>
  <circle class="ill-primary-stroke" cx="200" cy="128" r="34" fill="none" stroke-width="14"
          stroke-dasharray="140 214" transform="rotate(-90 200 128)" stroke-linecap="round"/>
  <circle class="ill-accent-stroke" cx="200" cy="128" r="34" fill="none" stroke-width="14"
          stroke-dasharray="46 214" stroke-dashoffset="-150" transform="rotate(-90 200 128)"
          stroke-linecap="round"/>
  <rect class="ill-soft" x="154" y="186" width="92" height="10" rx="5"/>
  <rect class="ill-primary" x="154" y="186" width="70" height="10" rx="5"/>
  <rect class="ill-soft" x="154" y="212" width="92" height="10" rx="5"/>
  <rect class="ill-accent" x="154" y="212" width="40" height="10" rx="5"/>
  <rect class="ill-soft" x="154" y="238" width="92" height="10" rx="5"/>
  <rect class="ill-primary" x="154" y="238" width="56" height="10" rx="5"/>
  <rect class="ill-shadow" x="252" y="176" width="124" height="62" rx="16"/>
  <rect class="ill-paper" x="246" y="168" width="124" height="62" rx="16"/>
  <circle class="ill-primary" cx="274" cy="199" r="15"/>
  <path class="ill-paper-line" d="M267 199l5 6 10-12" fill="none" stroke-width="4"
        stroke-linecap="round" stroke-linejoin="round"/>
  <rect class="ill-ink-soft" x="298" y="188" width="54" height="8" rx="4"/>
  <rect class="ill-soft" x="298" y="203" width="38" height="8" rx="4"/>
  <circle class="ill-accent" cx="86" cy="92" r="26"/>
  <circle class="ill-accent-dark" cx="86" cy="92" r="17"/>
  <circle class="ill-accent" cx="86" cy="92" r="12"/>
  <circle class="ill-primary" cx="70" cy="236" r="9"/>
</svg>"""

_SPRING = """\
<svg viewBox="0 0 400 320" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" focusable="false">
  <circle class="ill-bg" cx="200" cy="160" r="150"/>
  <circle class="ill-accent" cx="292" cy="92" r="40"/>
  <ellipse class="ill-shadow" cx="200" cy="292" rx="120" ry="12"/>
  <path class="ill-primary-dark-line" d="M196 284V150" fill="none" stroke-width="8" stroke-linecap="round"/>
  <path class="ill-primary" d="M198 200c-10-44-54-58-92-46 8 40 48 60 92 46z"/>
  <path class="ill-primary" d="M196 170c6-48 48-70 90-62-4 44-44 70-90 62z"/>
  <circle class="ill-accent" cx="196" cy="130" r="22"/>
  <circle class="ill-accent-dark" cx="196" cy="130" r="14"/>
  <circle class="ill-accent" cx="196" cy="130" r="10"/>
  <rect class="ill-accent-dark" x="140" y="262" width="112" height="26" rx="8"/>
  <rect class="ill-accent" x="148" y="242" width="96" height="24" rx="8"/>
  <circle class="ill-primary" cx="92" cy="96" r="8"/>
  <circle class="ill-accent" cx="326" cy="226" r="7"/>
</svg>"""

ILLUSTRATIONS: dict[str, Markup] = {
    "piggy-bank": Markup(_PIGGY_BANK),
    "growth-chart": Markup(_GROWTH_CHART),
    "phone": Markup(_PHONE),
    "spring": Markup(_SPRING),
}
