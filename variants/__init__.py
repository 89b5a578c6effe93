"""The variant page server: one landing-page variant per process, from a params file.

NGINX proxies a visitor here once the router has picked this variant; the page
reports views, clicks and conversions back to the router through beacon.js.
Ships on its own (starlette, uvicorn, jinja2), so nothing here imports ``router``.
"""
