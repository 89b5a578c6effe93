/* Croupier beacon: reports a landing page's views, clicks, conversions and engagement.
 *
 * Served by the router at /_croupier/beacon.js and posts to /_croupier/beacon on
 * the same origin. The page names its experiment in
 * <html data-croupier-experiment="...">; which variant the visitor saw comes from
 * their signed HttpOnly cookie, never from here. Plain ES2017, no dependencies.
 *
 *   window.croupier.track(type, {goal, value}) -> Promise<boolean>
 *   <a data-croupier-event="click">            a click event per click
 *   <form data-croupier-convert data-croupier-goal="signup" data-croupier-value="9.99">
 *                                              a convert event, then the form submits
 *   window.croupier.engagement() -> {id, active_ms, scroll, clicks, engaged}  this page view so far
 *
 * Engagement: each page load draws a page-view id (its view event carries it too) and,
 * whenever the page is hidden or left, reports the view's cumulative figures: active time
 * (counted only while the page is visible and focused), the deepest scroll (percent of the
 * page seen), every click on the page (not only the tracked ones), and whether the view was
 * engaged (ENGAGED_MS of active time, a second interaction, a click or a form field
 * changed, or a conversion). The router keeps the latest figures per page view, so a page
 * hidden and shown many times, or a report sent twice, counts once. At most one report a
 * second, MAX_REPORTS per page view, only when something grew, none after MAX_AGE_MS.
 *
 * Tracking must never break the page: every entry point catches its own errors,
 * and a form always submits, at the latest CONVERT_WAIT_MS after the visitor did.
 */
(function () {
  'use strict';
  if (window.croupier) return; // included twice: keep the first, count once

  var ENDPOINT = '/_croupier/beacon';
  var TYPES = ['view', 'click', 'convert'];
  var CONVERT_WAIT_MS = 1500;
  var RETRY_DELAY_MS = 250;
  var ENGAGED_MS = 10000;              // router/engagement.py ENGAGED_SECONDS
  var MAX_CLICKS = 10000;              // router/engagement.py MAX_CLICKS: the router refuses more
  var REPORT_GAP_MS = 1000;            // at most one engagement report a second
  var MAX_REPORTS = 20;                // per page view
  var MIN_ACTIVE_GAIN_MS = 1000;       // active time alone must have grown this much to report again
  // The router keeps a page view's state for 6 h after its latest report (router/store.py
  // PAGE_VIEW_TTL): stopping 4 h after the load means every report finds it. Active time
  // cannot pass the page's age, so this also keeps active_ms within what the router takes.
  var MAX_AGE_MS = 4 * 3600 * 1000;

  function experiment() {
    return document.documentElement.getAttribute('data-croupier-experiment') || '';
  }

  // 16 random bytes, base64url: 22 chars of [A-Za-z0-9_-]. The id lets the router
  // drop the duplicate when a retry follows a POST that did arrive.
  function eventId() {
    var bytes = new Uint8Array(16);
    if (window.crypto && window.crypto.getRandomValues) {
      window.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    return btoa(String.fromCharCode.apply(null, bytes))
      .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // Network errors and overloaded or unavailable routers are worth one retry;
  // any other refusal (400, 403, 404...) would only be refused again.
  function retryable(status) {
    return status === 0 || status === 429 || status >= 500;
  }

  async function post(body) {
    try {
      var response = await fetch(ENDPOINT, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: body,
        credentials: 'same-origin',
        keepalive: true // survives the navigation that often follows a click or a submit
      });
      return response.status;
    } catch (e) {
      return 0;
    }
  }

  async function send(event) {
    var body = JSON.stringify(event);
    var status = await post(body);
    if (retryable(status)) {
      await sleep(RETRY_DELAY_MS);
      status = await post(body);
    }
    return status >= 200 && status < 300;
  }

  /* Report one event; resolves true when the router accepted it, false otherwise.
   * Never rejects. */
  async function track(type, options) {
    try {
      var exp = experiment();
      if (TYPES.indexOf(type) < 0 || !exp || typeof fetch !== 'function') return false;
      var opts = options || {};
      if (type === 'convert') engagement.converted = true;  // the visitor converted on this page view
      // the view carries the page view's id, so analyses join it with its engagement reports
      var event = { experiment: exp, type: type, id: type === 'view' ? engagement.id : eventId() };
      if (typeof opts.goal === 'string' && opts.goal) event.goal = opts.goal;
      // The router accepts a value on conversions only (revenue goals).
      if (type === 'convert' && typeof opts.value === 'number' && isFinite(opts.value)) {
        event.value = opts.value;
      }
      return await send(event);
    } catch (e) {
      return false;
    }
  }

  function number(text) {
    if (text === null || text === '') return undefined;
    var value = Number(text);
    return isFinite(value) ? value : undefined;
  }

  function onClick(e) {
    try {
      var el = e.target && e.target.closest && e.target.closest('[data-croupier-event="click"]');
      if (!el) return;
      track('click', { goal: el.getAttribute('data-croupier-goal') || undefined });
    } catch (err) { /* tracking never breaks the page */ }
  }

  // Forms waiting for their convert event; a second submit meanwhile is ignored.
  var pending = new WeakSet();

  function resubmit(form, submitter) {
    // form.submit() drops the clicked button's name=value; carry it over.
    var field = null;
    if (submitter && submitter.name) {
      field = document.createElement('input');
      field.type = 'hidden';
      field.name = submitter.name;
      field.value = submitter.value;
      form.appendChild(field);
    }
    // The prototype's submit, in case a control named "submit" shadows form.submit.
    // The form data is built synchronously, so the helper field can go right away.
    HTMLFormElement.prototype.submit.call(form);
    if (field) form.removeChild(field);
  }

  async function onSubmit(e) {
    var form = e.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-croupier-convert')) return;
    if (e.defaultPrevented) return; // the page's own validation stopped this submit
    e.preventDefault();
    if (pending.has(form)) return;
    pending.add(form);
    try {
      await Promise.race([
        track('convert', {
          goal: form.getAttribute('data-croupier-goal') || undefined,
          value: number(form.getAttribute('data-croupier-value'))
        }),
        sleep(CONVERT_WAIT_MS)
      ]);
    } catch (err) {
      /* fall through: the visitor's submission matters more than the event */
    } finally {
      pending.delete(form);
      try { resubmit(form, e.submitter); } catch (err) { /* nothing left to try */ }
    }
  }

  /* ---- engagement -------------------------------------------------- */

  var engagement = {
    id: eventId(),
    activeMs: 0,
    activeSince: null,       // performance.now() when the current visible-and-focused stretch began
    scroll: 0,
    clicks: 0,
    interactions: 0,
    converted: false,
    reported: null,          // the figures the router last accepted
    reports: 0,
    lastReportAt: -Infinity,
    timer: null,
    scrollTimer: null
  };

  function active() {
    return document.visibilityState === 'visible' && document.hasFocus();
  }

  // Fold the stretch that just ended into the active time; start a new one if the page is
  // still visible and focused. Called on every change of visibility or focus.
  function clock() {
    var now = performance.now();
    if (engagement.activeSince !== null) engagement.activeMs += now - engagement.activeSince;
    engagement.activeSince = active() ? now : null;
  }

  function measureScroll() {
    var doc = document.documentElement, body = document.body;
    var height = Math.max(doc.scrollHeight, body ? body.scrollHeight : 0);
    var seen = (window.pageYOffset || doc.scrollTop || 0) + window.innerHeight;
    var depth = height > 0 ? Math.min(100, Math.max(0, Math.round(seen / height * 100))) : 100;
    if (depth > engagement.scroll) engagement.scroll = depth;
  }

  function figures() {
    clock();
    measureScroll();  // where the page is now: the last scroll may still wait for its timer
    var activeMs = Math.round(engagement.activeMs);
    return {
      active_ms: activeMs,
      scroll: engagement.scroll,
      clicks: Math.min(engagement.clicks, MAX_CLICKS),
      engaged: activeMs >= ENGAGED_MS || engagement.interactions >= 2 || engagement.converted
    };
  }

  function grew(now, before) {
    return !before || now.scroll > before.scroll || now.clicks > before.clicks || now.engaged !== before.engaged ||
      now.active_ms - before.active_ms >= MIN_ACTIVE_GAIN_MS;
  }

  // Send the page view's figures if they grew since the router last took them. Called when
  // the page is hidden or left; a call within REPORT_GAP_MS of the last report waits for the
  // gap to pass (if the page is gone by then, the next report never comes: at most a second
  // of figures lost).
  function report() {
    try {
      var exp = experiment();
      // performance.now() counts from the page's load and never jumps with the wall clock
      if (!exp || typeof fetch !== 'function' || engagement.reports >= MAX_REPORTS ||
          performance.now() > MAX_AGE_MS) return;
      var now = figures();
      if (!grew(now, engagement.reported)) return;
      var wait = engagement.lastReportAt + REPORT_GAP_MS - performance.now();
      if (wait > 0) {
        if (engagement.timer === null) {
          engagement.timer = setTimeout(function () { engagement.timer = null; report(); }, wait);
        }
        return;
      }
      engagement.lastReportAt = performance.now();
      engagement.reports += 1;
      var body = { experiment: exp, type: 'engagement', id: engagement.id, active_ms: now.active_ms,
                   scroll: now.scroll, clicks: now.clicks, engaged: now.engaged };
      post(JSON.stringify(body)).then(function (status) {
        if (status >= 200 && status < 300) engagement.reported = now;
        // refused for good (no cookie, unknown experiment...): the next report would be too
        else if (!retryable(status)) engagement.reports = MAX_REPORTS;
      });
    } catch (e) { /* tracking never breaks the page */ }
  }

  function onVisibility() {
    try {
      clock();
      if (document.visibilityState === 'hidden') report();
    } catch (e) { /* tracking never breaks the page */ }
  }

  function onLeave() {
    try { clock(); report(); } catch (e) { /* tracking never breaks the page */ }
  }

  function onFocusChange() {
    try { clock(); } catch (e) { /* tracking never breaks the page */ }
  }

  function onScroll() {
    try {
      // Reading the page's height may force a layout: at the first scroll event and then
      // once per 100 ms while scrolling goes on (the last position included), not per event.
      if (engagement.scrollTimer !== null) return;
      measureScroll();
      engagement.scrollTimer = setTimeout(function () {
        engagement.scrollTimer = null;
        try { measureScroll(); } catch (e) { /* tracking never breaks the page */ }
      }, 100);
    } catch (e) { /* tracking never breaks the page */ }
  }

  function onInteraction(e) {
    try {
      if (!e.isTrusted) return;  // a script's synthetic click is not the visitor's
      if (e.type === 'click') engagement.clicks += 1;
      engagement.interactions += 1;
    } catch (err) { /* tracking never breaks the page */ }
  }

  function snapshot() {
    try {
      var now = figures();
      return { id: engagement.id, active_ms: now.active_ms, scroll: now.scroll, clicks: now.clicks,
               engaged: now.engaged };
    } catch (e) {
      return null;
    }
  }

  window.croupier = { track: track, engagement: snapshot };

  // Capture phase: the page's own handlers cannot hide a click or a change by stopping it.
  document.addEventListener('click', onInteraction, true);
  document.addEventListener('change', onInteraction, true);
  document.addEventListener('visibilitychange', onVisibility);
  window.addEventListener('pagehide', onLeave);
  window.addEventListener('pageshow', onFocusChange);  // back from the back-forward cache
  window.addEventListener('focus', onFocusChange);
  window.addEventListener('blur', onFocusChange);
  window.addEventListener('scroll', onScroll, { passive: true });
  clock();
  // The first screen counts as seen once the page has its height (images and fonts loaded).
  if (document.readyState === 'complete') onScroll();
  else window.addEventListener('load', onScroll);

  // Bubble phase on document: runs after the page's own handlers, so a submit
  // they cancelled is seen as cancelled and left alone.
  document.addEventListener('click', onClick);
  document.addEventListener('submit', onSubmit);

  function view() { track('view'); }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', view);
  } else {
    view();
  }
})();
