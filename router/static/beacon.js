/* Croupier beacon: reports a landing page's views, clicks and conversions.
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
      var event = { experiment: exp, type: type, id: eventId() };
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

  window.croupier = { track: track };

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
