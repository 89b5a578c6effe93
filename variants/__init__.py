"""The variant page server: one landing-page variant per process, from a params file, or
every arm of a factorial experiment, from its declaration.

NGINX proxies a visitor here once the router has picked this variant; the page
reports views, clicks and conversions back to the router through beacon.js.
Ships on its own (starlette, uvicorn, jinja2): of ``router`` it imports only the
standard-library modules its image copies (rules.py, records.py, factors.py).
"""
