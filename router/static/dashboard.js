/* Croupier dashboard: the experiments list, a page at a time, and live numbers and charts
 * for one experiment (its pages' engagement too; its guardrails, their breaches and its
 * recent alerts, drift marked on the rate chart; the strategy comparison; for a factorial
 * one, its rollups per factor and a heatmap).
 *
 * Served by the router with the pages; talks only to the router's admin API on
 * the same origin, authorized by the HttpOnly session cookie. Writes carry the
 * CSRF token the page was rendered with. Polls stats and timeseries every
 * POLL_MS and patches the DOM in place (no reload). Charts are inline SVG drawn
 * here; all text goes in through textContent, never as HTML.
 */
(function () {
  'use strict';

  var POLL_MS = 2000;
  var SVG = 'http://www.w3.org/2000/svg';
  var PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#db2777', '#4b5563'];
  var NUMBER = new Intl.NumberFormat('en-US');
  // a factorial experiment can have hundreds of combinations: its per-combination tables and
  // charts show this many, best first, unless the marketer asks for all
  var TOP_COMBINATIONS = 20;
  var TOP_INTERACTIONS = 5;
  var HEAT_LOW = [239, 246, 255], HEAT_HIGH = [29, 78, 216];  // the heatmap's lowest and highest rate
  // the alerts are read every ALERT_POLLS polls: each read scans the outbox all experiments share
  var ALERT_POLLS = 5;
  // the strategy comparison is computed by the router and kept a minute: read it that often
  var STRATEGY_POLL_MS = 60000;
  var ALERT_KINDS = { srm: 'sample ratio', guardrail: 'guardrail', drift: 'drift' };
  var METRIC_WORDS = { bounce_rate: 'bounce rate', engaged_rate: 'engaged rate', active_time: 'active time',
                       conversion_value: 'conversion value', error_rate: 'error rate' };
  var MEAN_UNITS = { active_time: ' s', conversion_value: '' };  // the other metrics are rates, in points

  function meta(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute('content') : '';
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') node.textContent = attrs[k];
      else if (k === 'className') node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function pct(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return '–';
    return (x * 100).toFixed(digits === undefined ? 2 : digits) + '%';
  }

  function signedPct(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return '–';
    return (x > 0 ? '+' : '') + pct(x, digits);
  }

  function interval(low, high, digits) {
    return pct(low, digits) + ' – ' + pct(high, digits);
  }

  /* Green when a difference's interval lies above zero, red when below: the data are clear. */
  function markSign(node, low, high) {
    if (low > 0) node.classList.add('good');
    else if (high < 0) node.classList.add('bad');
  }

  function pValue(p) {
    if (p === null || p === undefined || !isFinite(p)) return '–';
    return p < 0.0001 ? '< 0.0001' : p.toFixed(4);
  }

  function setText(id, text) {
    var node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  /* The page's live indicator: when the numbers last arrived, or why they stopped. */
  function setLive(ok, message) {
    var live = document.getElementById('live');
    live.dataset.state = ok ? 'live' : 'stale';
    setText('live-text', ok ? 'Live · updated ' + new Date().toLocaleTimeString('en-GB') : 'Not updating: ' + message);
  }

  /* ---- API ---------------------------------------------------------- */

  function Api(base, csrf, csrfHeader, login) {
    this.base = base;
    this.csrf = csrf;
    this.csrfHeader = csrfHeader;
    this.login = login;
  }

  Api.prototype.call = function (method, path, body) {
    var headers = { 'Accept': 'application/json' };
    if (method !== 'GET') {
      headers['Content-Type'] = 'application/json';
      headers[this.csrfHeader] = this.csrf;
    }
    var login = this.login;
    return fetch(this.base + path, {
      method: method, headers: headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      if (response.status === 401) {  // the session expired or the token changed: sign in again
        window.location.assign(login + '?next=' + encodeURIComponent(window.location.pathname));
        throw new Error('signed out');
      }
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error(data.error || ('HTTP ' + response.status));
        return data;
      });
    });
  };

  /* ---- charts ------------------------------------------------------- */

  var CHART = { w: 640, h: 240, left: 48, right: 14, top: 12, bottom: 28 };

  function niceMax(value) {
    if (!(value > 0)) return 0.01;
    var exp = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * exp >= value) return steps[i] * exp;
    return 10 * exp;
  }

  function timeLabel(seconds, span) {
    var d = new Date(seconds * 1000);
    var hh = String(d.getHours()).padStart(2, '0'), mm = String(d.getMinutes()).padStart(2, '0');
    return span < 600 ? hh + ':' + mm + ':' + String(d.getSeconds()).padStart(2, '0') : hh + ':' + mm;
  }

  /* series: [{id, color, points: [[t, y], ...]}]; yMax fixed or null for automatic; markers
     (optional): [{t, id, color, label, title}], a vertical line each at time t. */
  function lineChart(container, series, opts) {
    var c = CHART, plotW = c.w - c.left - c.right, plotH = c.h - c.top - c.bottom;
    var ts = [], ys = [];
    series.forEach(function (s) { s.points.forEach(function (p) { ts.push(p[0]); ys.push(p[1]); }); });
    var root = svg('svg', { viewBox: '0 0 ' + c.w + ' ' + c.h, role: 'img', 'aria-label': opts.label,
                            class: 'chart-svg' });
    if (!ts.length) {
      root.appendChild(svg('text', { x: c.w / 2, y: c.h / 2, 'text-anchor': 'middle', class: 'chart-empty',
                                     text: 'No traffic yet' }));
      container.replaceChildren(root);
      return;
    }
    var t0 = Math.min.apply(null, ts), t1 = Math.max.apply(null, ts);
    if (t1 - t0 < opts.step) { t0 -= opts.step; t1 += opts.step; }  // one bucket: centre it
    var yMax = opts.yMax || 4 * niceMax(Math.max.apply(null, ys) * 1.1 / 4);  // four even, round steps
    function x(t) { return c.left + (t - t0) / (t1 - t0) * plotW; }
    function y(v) { return c.top + plotH - Math.min(v, yMax) / yMax * plotH; }

    // enough decimals that the five ticks read differently (2.5% is not 3%)
    var digits = Math.max(0, Math.ceil(-Math.log10(yMax / 4 * 100) + 1e-9));
    if (Math.abs(yMax / 4 * 100 * Math.pow(10, digits) % 1) > 1e-6) digits += 1;
    for (var i = 0; i <= 4; i++) {
      var v = yMax * i / 4, gy = y(v);
      root.appendChild(svg('line', { x1: c.left, x2: c.w - c.right, y1: gy, y2: gy, class: i ? 'grid' : 'axis' }));
      root.appendChild(svg('text', { x: c.left - 6, y: gy + 4, 'text-anchor': 'end', class: 'tick',
                                     text: pct(v, digits) }));
    }
    var ticks = Math.min(5, Math.max(2, Math.round((t1 - t0) / opts.step) + 1));
    for (var j = 0; j < ticks; j++) {
      var t = t0 + (t1 - t0) * j / (ticks - 1);
      var anchor = j === 0 ? 'start' : j === ticks - 1 ? 'end' : 'middle';
      root.appendChild(svg('text', { x: x(t), y: c.h - 8, 'text-anchor': anchor,
                                     class: 'tick', text: timeLabel(t, t1 - t0) }));
    }
    series.forEach(function (s) {
      if (!s.points.length) return;
      var d = s.points.map(function (p, k) { return (k ? 'L' : 'M') + x(p[0]).toFixed(1) + ' ' + y(p[1]).toFixed(1); });
      root.appendChild(svg('path', { d: d.join(' '), fill: 'none', stroke: s.color, 'stroke-width': 2,
                                     'stroke-linejoin': 'round', 'stroke-linecap': 'round' }));
      if (s.points.length <= 60) {
        s.points.forEach(function (p) {
          root.appendChild(svg('circle', { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 2.5, fill: s.color }, [
            svg('title', { text: s.id + ' · ' + timeLabel(p[0], 0) + ' · ' + pct(p[1], 2) })]));
        });
      }
    });
    (opts.markers || []).forEach(function (m, i) {
      // points sit at their bucket's middle, a marker at its bucket's start: half a bucket
      // outside the points' span is still on the chart, drawn at its edge
      if (!(m.t >= t0 - opts.step && m.t <= t1 + opts.step)) return;
      var mx = x(Math.min(Math.max(m.t, t0), t1)), right = mx > c.left + plotW / 2;
      root.appendChild(svg('g', { class: 'marker', 'data-variant': m.id }, [
        svg('title', { text: m.title }),
        svg('line', { x1: mx, x2: mx, y1: c.top, y2: c.top + plotH, stroke: m.color, class: 'marker-line' }),
        svg('text', { x: right ? mx - 4 : mx + 4, y: c.top + 11 + 13 * (i % 4), 'text-anchor': right ? 'end' : 'start',
                      fill: m.color, class: 'marker-label', text: m.label })]));
    });
    container.replaceChildren(root);
  }

  function legend(container, ids, colors) {
    container.replaceChildren.apply(container, ids.map(function (id) {
      var swatch = el('span', { className: 'swatch' });
      swatch.style.background = colors[id];
      return el('span', { className: 'legend-item' }, [swatch, el('span', { text: id })]);
    }));
  }

  /* share per bucket = the variant's trials / all trials in the bucket;
     rate = cumulative conversions / cumulative trials. */
  function chartSeries(ts, colors) {
    var ids = Object.keys(ts.variants), share = {}, rate = {};
    var step = ts.bucket_seconds || 60;
    ids.forEach(function (id) { share[id] = []; rate[id] = []; });
    var cumT = {}, cumC = {};
    ts.buckets.forEach(function (start, b) {
      var t = start + step / 2;
      var total = ids.reduce(function (sum, id) { return sum + ts.variants[id].trials[b]; }, 0);
      ids.forEach(function (id) {
        var v = ts.variants[id];
        cumT[id] = (cumT[id] || 0) + v.trials[b];
        cumC[id] = (cumC[id] || 0) + v.conversions[b];
        if (total > 0) share[id].push([t, v.trials[b] / total]);
        if (cumT[id] > 0) rate[id].push([t, cumC[id] / cumT[id]]);
      });
    });
    function series(map) {
      return ids.map(function (id) { return { id: id, color: colors[id], points: map[id] }; });
    }
    return { share: series(share), rate: series(rate), step: step };
  }

  /* ---- the variants table -------------------------------------------- */

  function intervalBar(v, scaleMax) {
    var w = 120, h = 18, pad = 3;
    function x(r) { return pad + Math.min(r, scaleMax) / scaleMax * (w - 2 * pad); }
    var lo = x(v.ci95[0]), hi = x(v.ci95[1]);
    return svg('svg', { viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, class: 'interval',
                        'aria-label': '95% credible interval ' + pct(v.ci95[0]) + ' to ' + pct(v.ci95[1]) }, [
      svg('title', { text: pct(v.ci95[0]) + ' – ' + pct(v.ci95[1]) }),
      svg('line', { x1: pad, x2: w - pad, y1: h / 2, y2: h / 2, class: 'interval-track' }),
      svg('rect', { x: lo, y: 4, width: Math.max(hi - lo, 2), height: h - 8, rx: 3, fill: v.color, 'fill-opacity': 0.3,
                    stroke: v.color }),
      svg('line', { x1: x(v.posterior_mean), x2: x(v.posterior_mean), y1: 2, y2: h - 2, stroke: v.color,
                    'stroke-width': 2 })
    ]);
  }

  function meter(value, color) {
    var bar = el('span', { className: 'meter-fill' });
    bar.style.width = Math.max(0, Math.min(1, value || 0)) * 100 + '%';
    if (color) bar.style.background = color;
    return el('span', { className: 'meter' }, [bar]);
  }

  function cell(field, className) {
    return el('td', { 'data-field': field, className: className || 'num' });
  }

  function Page(api) {
    this.api = api;
    this.rows = {};
    this.colors = {};
    this.busy = false;
    this.timer = null;
    this.inFlight = null;
    this.stats = null;
    this.timeseries = null;
    this.showAll = false;  // every combination of a factorial experiment, not just the best
    this.shown = null;     // the ids shown, in order, when not every variant is (see selectVariants)
    this.pair = null;      // the heatmap's [rows, columns] factors
    this.hasGuardrails = Boolean(document.getElementById('guardrails'));  // rendered when it declares some
    this.guardrails = null;  // the last GET /guardrails
    this.alerts = null;      // the last GET /alerts' alerts
    this.polls = 0;
    this.breachesShown = null;  // what the breach boxes were last built from
  }

  Page.prototype.color = function (id) {
    if (!this.colors[id]) this.colors[id] = PALETTE[Object.keys(this.colors).length % PALETTE.length];
    return this.colors[id];
  };

  Page.prototype.row = function (v) {
    var existing = this.rows[v.id];
    if (existing) return existing;
    var self = this;
    var swatch = el('span', { className: 'swatch' });
    swatch.style.background = this.color(v.id);
    var toggle = el('button', { type: 'button', className: 'button small', 'data-action': 'toggle' });
    var promote = el('button', { type: 'button', className: 'button small', 'data-action': 'promote',
                                 text: 'Promote' });
    toggle.addEventListener('click', function () { self.toggle(v.id, toggle); });
    promote.addEventListener('click', function () { self.promote(v.id, promote); });
    var tr = el('tr', { 'data-variant': v.id }, [
      el('td', {}, [el('div', { className: 'variant-name' }, [swatch, el('span', { className: 'mono strong', text: v.id }),
                                                                  el('span', { className: 'tags', 'data-field': 'tags' })]),
                   el('div', { className: 'muted small', 'data-field': 'name' })]),
      el('td', {}, [el('span', { 'data-field': 'status', className: 'badge' })]),
      cell('trials'), cell('conversions'), cell('rate'),
      el('td', { 'data-field': 'ci95', className: 'interval-cell' }),
      cell('p_best'), cell('expected_loss'), cell('share'),
      el('td', { className: 'actions' }, [toggle, promote])
    ]);
    this.rows[v.id] = tr;
    return tr;
  };

  /* The variants the tables and charts show. An ordinary experiment's all, in the API's order;
   * a factorial experiment's ranked by posterior mean, the best TOP_COMBINATIONS unless the
   * marketer asked for all. */
  Page.prototype.selectVariants = function (stats) {
    if (!stats.factors) {
      this.shown = null;
      return stats.variants;
    }
    var ranked = stats.variants.slice().sort(function (a, b) { return b.posterior_mean - a.posterior_mean; });
    var shown = this.showAll ? ranked : ranked.slice(0, TOP_COMBINATIONS);
    this.shown = shown.map(function (v) { return v.id; });
    var toggle = document.getElementById('variants-toggle'), many = ranked.length > TOP_COMBINATIONS;
    if (toggle) {  // absent if the page was rendered before the experiment had factors
      toggle.hidden = !many;
      toggle.textContent = this.showAll ? 'Show the top ' + TOP_COMBINATIONS : 'Show all ' + NUMBER.format(ranked.length);
    }
    setText('variants-shown', !many ? 'best first' : this.showAll ? 'all ' + NUMBER.format(ranked.length) + ', best first'
      : 'top ' + TOP_COMBINATIONS + ' of ' + NUMBER.format(ranked.length) + ' by posterior mean');
    return shown;
  };

  /* Indices into ids of the variants shown, in the order shown. */
  Page.prototype.shownIndices = function (ids) {
    if (!this.shown) return ids.map(function (_, k) { return k; });
    var at = new Map(ids.map(function (id, k) { return [id, k]; }));
    return this.shown.filter(function (id) { return at.has(id); }).map(function (id) { return at.get(id); });
  };

  Page.prototype.renderVariants = function (stats) {
    var tbody = document.querySelector('#variants tbody');
    var shown = this.selectVariants(stats);
    var scaleMax = niceMax(Math.max.apply(null, shown.map(function (v) { return v.ci95[1]; }).concat([0.01])));
    var ended = stats.status === 'ended';
    var self = this, wanted = [], keep = new Set();
    var totalTrials = 0, totalConv = 0;
    stats.variants.forEach(function (v) { totalTrials += v.trials; totalConv += v.conversions; });
    shown.forEach(function (v) {
      v.color = self.color(v.id);
      keep.add(v.id);
      var tr = self.row(v), f = function (name) { return tr.querySelector('[data-field="' + name + '"]'); };
      f('name').textContent = v.name && v.name !== v.id ? v.name : '';
      var tags = [];
      if (v.control) tags.push(el('span', { className: 'tag', text: 'control' }));
      if (stats.winner === v.id) tags.push(el('span', { className: 'tag tag-winner', text: 'winner' }));
      if (self.breachHeld(v.id)) {
        tags.push(el('span', { className: 'tag tag-breach', text: 'breached', title: 'breaches a guardrail: see Guardrails' }));
      }
      if (stats.best && stats.best.arm === v.id) {
        tags.push(el('span', { className: 'tag tag-best', text: 'best', title: "the model's best combination" }));
      }
      f('tags').replaceChildren.apply(f('tags'), tags);
      f('status').textContent = v.status;
      f('status').className = 'badge status-' + v.status;
      f('trials').textContent = NUMBER.format(v.trials);
      f('conversions').textContent = NUMBER.format(v.conversions);
      f('rate').textContent = v.trials ? pct(v.rate) : '–';
      f('ci95').replaceChildren(intervalBar(v, scaleMax),
                                el('span', { className: 'interval-text',
                                             text: interval(v.ci95[0], v.ci95[1], 1) }));
      f('p_best').replaceChildren(el('span', { text: pct(v.p_best, 1) }), meter(v.p_best, v.color));
      f('expected_loss').textContent = pct(v.expected_loss, 3);
      f('share').replaceChildren(el('span', { text: pct(v.share, 1) }), meter(v.share, v.color));
      var toggle = tr.querySelector('[data-action="toggle"]'), promote = tr.querySelector('[data-action="promote"]');
      toggle.textContent = v.status === 'paused' ? 'Resume' : 'Pause';
      toggle.disabled = self.busy || ended;
      promote.disabled = self.busy || ended || v.status !== 'active';
      wanted.push(tr);
    });
    // keep the order chosen above; drop rows of removed (or no longer shown) variants
    var placeholder = tbody.querySelector('.placeholder');
    if (placeholder) placeholder.remove();
    wanted.forEach(function (tr) { tbody.appendChild(tr); });
    Object.keys(this.rows).forEach(function (id) {
      if (!keep.has(id)) { self.rows[id].remove(); delete self.rows[id]; }
    });
    setText('totals', NUMBER.format(totalTrials) + ' trials · ' + NUMBER.format(totalConv) + ' conversions');
  };

  Page.prototype.renderHeader = function (stats) {
    var badge = document.getElementById('experiment-status');
    badge.textContent = stats.status;
    badge.className = 'badge status-' + stats.status;
    setText('policy', stats.policy);
    var note = document.getElementById('winner-note');
    if (stats.status === 'ended' && stats.winner) {
      note.textContent = 'This experiment has ended: all traffic goes to variant ' + stats.winner + '.';
      note.hidden = false;
    } else if (stats.status === 'paused') {
      note.textContent = 'This experiment is paused: every visitor gets the control variant.';
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  };

  Page.prototype.renderSrm = function (stats) {
    var srm = stats.sample_ratio, ids = stats.variants.map(function (v) { return v.id; });
    var alert = document.getElementById('srm-alert'), badge = document.getElementById('srm-badge');
    var tbody = document.querySelector('#srm-table tbody');
    if (!srm) {
      alert.hidden = true;
      badge.textContent = 'no data';
      badge.className = 'badge';
      tbody.replaceChildren();
      return;
    }
    alert.hidden = !srm.alert;
    setText('srm-alert-text', 'p ' + (srm.p_value < 0.0001 ? '' : '= ') + pValue(srm.p_value) + (srm.unexpected_assignments ?
      ', and ' + NUMBER.format(srm.unexpected_assignments) + ' visitors went to variants the policy gave no share.' : '.'));
    badge.textContent = srm.alert ? 'mismatch' : 'ok';
    badge.className = 'badge ' + (srm.alert ? 'status-alert' : 'status-active');
    setText('srm-p', pValue(srm.p_value));
    setText('srm-chi2', srm.chi2.toFixed(2));
    setText('srm-dof', String(srm.dof));
    setText('srm-periods', String(srm.periods));
    tbody.replaceChildren.apply(tbody, this.shownIndices(ids).map(function (k) {
      var id = ids[k], o = srm.observed[k] || 0, e = srm.expected[k] || 0;
      return el('tr', { 'data-variant': id }, [
        el('td', { className: 'mono', text: id }),
        el('td', { className: 'num', text: NUMBER.format(Math.round(o)) }),
        el('td', { className: 'num', text: NUMBER.format(Math.round(e)) }),
        el('td', { className: 'num', text: e > 0 ? signedPct(o / e - 1, 1) : '–' })
      ]);
    }));
  };

  Page.prototype.renderLift = function (stats) {
    var lift = stats.lift, tbody = document.querySelector('#lift-table tbody');
    if (!lift) {
      tbody.replaceChildren(el('tr', {}, [el('td', { colspan: 4, className: 'empty', text: 'No traffic yet.' })]));
      return;
    }
    var ids = stats.variants.map(function (v) { return v.id; });
    tbody.replaceChildren.apply(tbody, this.shownIndices(ids).map(function (k) {
      var v = stats.variants[k];
      if (k === lift.control) {
        return el('tr', { 'data-variant': v.id }, [el('td', { className: 'mono', text: v.id }),
          el('td', { colspan: 3, className: 'muted', text: 'control · ' + pct(lift.stratified_rate[k]) + ' stratified, ' +
                                                         pct(lift.pooled_rate[k]) + ' pooled' })]);
      }
      var lo = lift.stratified_diff_ci_low[k], hi = lift.stratified_diff_ci_high[k];
      var strat = el('td', { className: 'num' }, [
        el('span', { className: 'strong', text: signedPct(lift.stratified_lift[k], 1) }),
        el('span', { className: 'interval-text',
                     text: lift.periods_used[k] + (lift.periods_used[k] === 1 ? ' period' : ' periods') })]);
      markSign(strat, lo, hi);
      return el('tr', { 'data-variant': v.id }, [
        el('td', { className: 'mono', text: v.id }), strat,
        el('td', { className: 'num' }, [el('span', { text: signedPct(lift.stratified_diff[k]) }),
          el('span', { className: 'interval-text', text: lo === null ? '' : signedPct(lo) + ' to ' + signedPct(hi) })]),
        el('td', { className: 'num', text: signedPct(lift.pooled_lift[k], 1) })
      ]);
    }));
  };

  /* Segments are optional: {"segments": {"country=de": [rows like variants]}}. */
  Page.prototype.renderSegments = function (stats) {
    var section = document.getElementById('segments');
    if (!stats.segments) { section.hidden = true; return; }
    section.hidden = false;
    var rows = [];
    Object.keys(stats.segments).sort().forEach(function (segment) {
      (stats.segments[segment] || []).forEach(function (v, k) {
        rows.push(el('tr', { 'data-segment': segment, 'data-variant': v.id, className: k ? '' : 'segment-start' }, [
          el('td', { className: 'mono' + (k ? ' muted' : ''), text: k ? '' : segment }),
          el('td', { className: 'mono', text: v.id }),
          el('td', { className: 'num', text: NUMBER.format(v.trials || 0) }),
          el('td', { className: 'num', text: NUMBER.format(v.conversions || 0) }),
          el('td', { className: 'num', text: v.trials ? pct(v.conversions / v.trials) : '–' }),
          el('td', { className: 'num', text: v.p_best === undefined ? '–' : pct(v.p_best, 1) })
        ]));
      });
    });
    var tbody = document.querySelector('#segments-table tbody');
    tbody.replaceChildren.apply(tbody, rows);
  };

  /* ---- capacity ------------------------------------------------------ */

  /* Only a page whose experiment had a capped variant when it loaded has the card. */
  Page.prototype.renderCapacity = function (stats) {
    var self = this, tbody = document.querySelector('#capacity-table tbody');
    if (!tbody) return;
    var capped = stats.variants.filter(function (v) { return v.capacity; });
    if (!capped.length) {
      tbody.replaceChildren(el('tr', {}, [el('td', { colspan: 6, className: 'empty',
        text: 'No variant has a capacity any more.' })]));
      return;
    }
    tbody.replaceChildren.apply(tbody, capped.map(function (v) {
      var c = v.capacity, swatch = el('span', { className: 'swatch' });
      var fill = el('span', { className: 'meter-fill' });
      swatch.style.background = self.color(v.id);
      fill.style.width = Math.min(100, c.capacity ? 100 * c.used / c.capacity : 100) + '%';
      return el('tr', { 'data-variant': v.id }, [
        el('td', {}, [el('div', { className: 'variant-name' }, [swatch, el('span', { className: 'mono strong', text: v.id })])]),
        el('td', { className: 'num' }, [el('span', { 'data-field': 'used', text: NUMBER.format(c.used) }),
                                        el('span', { className: 'meter' }, [fill])]),
        el('td', { className: 'num', 'data-field': 'reserved', text: NUMBER.format(c.reserved) }),
        el('td', { className: 'num', 'data-field': 'remaining', text: NUMBER.format(c.remaining) }),
        el('td', { className: 'num', 'data-field': 'capacity', text: NUMBER.format(c.capacity) }),
        el('td', {}, [el('span', { 'data-field': 'state', className: 'badge ' + (c.full ? 'status-ended' : 'status-active'),
                                   text: c.full ? 'full' : 'open' })])
      ]);
    }));
  };

  /* ---- engagement ---------------------------------------------------- */

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return '–';
    if (seconds < 60) return seconds.toFixed(1) + ' s';
    var whole = Math.round(seconds), m = Math.floor(whole / 60), s = whole - 60 * m;
    return s ? m + ' min ' + String(s).padStart(2, '0') + ' s' : m + ' min';
  }

  function rateCell(rate, ci, strong) {
    return el('td', { className: 'num' }, [
      el('span', { className: strong ? 'strong' : '', text: pct(rate, 1) }),
      el('span', { className: 'interval-text', text: ci ? interval(ci[0], ci[1], 1) : '' })]);
  }

  function activeCell(e) {
    var ci = e.active_seconds_ci95;
    return el('td', { className: 'num' }, [el('span', { text: duration(e.active_seconds_mean) }),
      el('span', { className: 'interval-text', text: ci ? duration(ci[0]) + ' – ' + duration(ci[1]) : '' })]);
  }

  /* The views by deepest scroll as a strip of bars, one per bucket, and the median depth. */
  function scrollStrip(e) {
    var counts = e.scroll_histogram, n = counts.length, w = 6 * n, h = 20;
    var top = Math.max.apply(null, counts.concat([1])), step = 100 / n;
    var bars = counts.map(function (count, i) {
      var height = count ? Math.max(1.5, count / top * (h - 2)) : 0;
      return svg('rect', { x: i * 6 + 0.5, y: h - height, width: 5, height: height, class: 'scroll-bar' }, [
        svg('title', { text: Math.round(i * step) + '–' + Math.round((i + 1) * step) + '%: ' +
                             NUMBER.format(count) + (count === 1 ? ' view' : ' views') })]);
    });
    var strip = svg('svg', { viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, class: 'scroll-strip',
                             role: 'img', 'aria-label': 'page views by deepest scroll' },
                    [svg('line', { x1: 0, x2: w, y1: h - 0.5, y2: h - 0.5, class: 'scroll-base' })].concat(bars));
    return el('td', { className: 'scroll-cell' }, [strip, el('span', { className: 'interval-text',
      text: e.scroll_median === null ? '' : 'median ' + Math.round(e.scroll_median) + '%' })]);
  }

  function engagementCells(e) {
    return [el('td', { className: 'num', text: NUMBER.format(e.views) }),
            rateCell(e.engaged_rate, e.engaged_ci95, true), rateCell(e.bounce_rate, e.bounce_ci95, false),
            activeCell(e)];
  }

  /* Per variant (those shown) and, when segments are on, per segment: what page views did. */
  Page.prototype.renderEngagement = function (stats) {
    var self = this, tbody = document.querySelector('#engagement-table tbody');
    if (!tbody) return;
    var d = stats.engagement || {};
    setText('engagement-note', 'engaged: ' + (d.engaged_seconds || 10) + ' s active, a second interaction or a ' +
            'conversion · active time per view capped at ' + duration(d.active_cap_seconds || 1800));
    var rows = this.shownIndices(stats.variants.map(function (v) { return v.id; })).map(function (k) {
      return stats.variants[k];
    });
    if (!rows.some(function (v) { return v.engagement && v.engagement.views; })) {
      tbody.replaceChildren(el('tr', {}, [el('td', { colspan: 7, className: 'empty',
        text: 'No engagement reported yet: pages report when they are hidden or left.' })]));
    } else {
      tbody.replaceChildren.apply(tbody, rows.map(function (v) {
        var e = v.engagement, swatch = el('span', { className: 'swatch' });
        swatch.style.background = self.color(v.id);
        return el('tr', { 'data-variant': v.id }, [
          el('td', {}, [el('div', { className: 'variant-name' }, [swatch, el('span', { className: 'mono strong', text: v.id })])])
        ].concat(engagementCells(e), [scrollStrip(e),
          el('td', { className: 'num', 'data-field': 'clicks_per_view',
                     text: e.clicks_per_view === null ? '–' : e.clicks_per_view.toFixed(2) })]));
      }));
    }
    var bySegment = stats.engagement_segments, box = document.getElementById('engagement-segments');
    box.hidden = !bySegment || !Object.keys(bySegment).length;
    if (box.hidden) return;
    var segmentRows = [];
    Object.keys(bySegment).sort().forEach(function (segment) {
      bySegment[segment].forEach(function (e, k) {
        segmentRows.push(el('tr', { 'data-segment': segment, 'data-variant': e.id, className: k ? '' : 'segment-start' }, [
          el('td', { className: 'mono', text: k ? '' : segment }), el('td', { className: 'mono', text: e.id })
        ].concat(engagementCells(e))));
      });
    });
    var segmentBody = document.querySelector('#engagement-segments-table tbody');
    segmentBody.replaceChildren.apply(segmentBody, segmentRows);
  };

  /* ---- strategy comparison -------------------------------------------- */

  Page.prototype.loadStrategies = function () {
    var self = this;
    clearTimeout(this.strategyTimer);
    return this.api.call('GET', '/strategies')
      .then(function (doc) { self.renderStrategies(doc); },
            function (err) { setText('strategies-note', 'Could not compare strategies: ' + err.message); })
      .then(function () {
        if (!document.hidden) self.strategyTimer = setTimeout(function () { self.loadStrategies(); }, STRATEGY_POLL_MS);
      });
  };

  /* Best first; each row's interval drawn on one scale, the observed rate named in the note. */
  Page.prototype.renderStrategies = function (doc) {
    var tbody = document.querySelector('#strategies-table tbody');
    var rows = (doc.strategies || []).slice().sort(function (a, b) { return b.value - a.value; });
    if (!rows.length) {
      tbody.replaceChildren(el('tr', {}, [el('td', { colspan: '6', className: 'empty',
                                                     text: doc.note || 'No assignments logged yet.' })]));
      return;
    }
    var scaleMax = niceMax(Math.max.apply(null, rows.map(function (r) { return r.high; })) || 0.01);
    var kinds = { adaptive: 'adaptive', fixed: 'fixed', model: 'model' };
    tbody.replaceChildren.apply(tbody, rows.map(function (r, k) {
      var bar = intervalBar({ ci95: [r.low, r.high], posterior_mean: r.value,
                              color: r.kind === 'adaptive' ? PALETTE[0] : r.kind === 'model' ? PALETTE[3] : PALETTE[7] },
                            scaleMax);
      return el('tr', { 'data-strategy': r.name, className: k === 0 ? 'best-row' : '' }, [
        el('td', { text: r.label }),
        el('td', { className: 'muted', text: kinds[r.kind] || r.kind }),
        el('td', { className: 'num strong', text: pct(r.value) }),
        el('td', { className: 'num muted', text: interval(r.low, r.high) }),
        el('td', {}, [bar]),
        el('td', { className: 'num', text: NUMBER.format(Math.round(r.n_effective)) })
      ]);
    }));
    setText('strategies-note', 'on the latest ' + NUMBER.format(doc.assignments) + ' assignments' +
            (doc.observed ? '; observed ' + pct(doc.observed.value) : '') +
            (doc.model ? '' : '; no trained model, so no personalised strategy'));
  };

  /* ---- guardrails and alerts ------------------------------------------ */

  function metricWords(metric) {
    return METRIC_WORDS[metric] || metric;
  }

  /* A figure in the metric's unit: points for a rate (0.05 is 5 points), seconds for active time. */
  function amount(metric, x, signed) {
    if (x === null || x === undefined || !isFinite(x)) return '–';
    var sign = signed && x > 0 ? '+' : '';
    if (Object.prototype.hasOwnProperty.call(MEAN_UNITS, metric)) return sign + Number(x.toPrecision(3)) + MEAN_UNITS[metric];
    var points = Number((x * 100).toFixed(2));
    return sign + points + (Math.abs(points) === 1 ? ' point' : ' points');
  }

  /* 0.05 as "5%", 0.025 as "2.5%" (pct's fixed decimals would round a share the marketer set). */
  function share(x) {
    return Number((x * 100).toFixed(2)) + '%';
  }

  function sampleUnit(metric) {
    return metric === 'conversion_value' || metric === 'error_rate' ? 'visitors' : 'views';
  }

  /* The guardrail's confidence level: its sequence's interval holds at 1 - alpha. */
  function level(g) {
    return Math.round((1 - g.alpha) * 1000) / 10 + '%';
  }

  /* "bounce rate may rise at most 5 points over control". Breach documents carry the same fields. */
  function describeGuardrail(g) {
    var rise = g.direction === 'increase';
    if (!(g.threshold > 0)) return metricWords(g.metric) + ' may not ' + (rise ? 'rise over' : 'fall below') + ' control';
    var limit = g.relative ? share(g.threshold) + (rise ? ' over' : ' below') + " control's"
                           : amount(g.metric, g.threshold) + (rise ? ' over' : ' below') + ' control';
    return metricWords(g.metric) + ' may ' + (rise ? 'rise' : 'fall') + ' at most ' + limit;
  }

  /* The most harm tolerated, as a signed difference from control. */
  function tolerated(g) {
    var sign = g.direction === 'increase' ? '+' : '-';
    return sign + (g.relative ? share(g.threshold) + ' of control' : amount(g.metric, g.threshold));
  }

  function breachEffect(action, minShare) {
    return action === 'pause' ? 'no new visitors' : 'capped at ' + share(minShare) + ' of traffic';
  }

  function verdictRow(variant, first, g, v) {
    var waiting = Math.min(v.n_control, v.n_variant) < g.min_sample;
    var verdict = waiting
      ? el('span', { className: 'muted', text: 'waiting for ' + NUMBER.format(g.min_sample) + ' ' + sampleUnit(g.metric) +
                                               ' per arm' })
      : el('span', { className: 'badge ' + (v.breached ? 'status-alert' : 'status-active'),
                     text: v.breached ? 'beyond tolerance' : 'within tolerance' });
    var estimate = el('td', { className: 'num', 'data-field': 'estimate' }, [
      el('span', { className: 'strong', text: amount(g.metric, v.estimate, true) }),
      el('span', { className: 'interval-text', text: v.low === null || v.high === null ? '' :
        level(g) + ': ' + amount(g.metric, v.low, true) + ' to ' + amount(g.metric, v.high, true) })]);
    return el('tr', { 'data-variant': variant, 'data-guardrail': String(v.guardrail), title: v.reason,
                      className: first ? 'segment-start' : '' }, [
      el('td', { className: 'mono strong', text: first ? variant : '' }),
      el('td', { text: metricWords(g.metric) }),
      estimate,
      el('td', { className: 'num', 'data-field': 'tolerated', text: tolerated(g) }),
      el('td', { className: 'num', 'data-field': 'samples',
                 text: NUMBER.format(v.n_control) + ' / ' + NUMBER.format(v.n_variant) }),
      el('td', { 'data-field': 'verdict' }, [verdict])
    ]);
  }

  Page.prototype.breachHeld = function (id) {
    var found = ((this.guardrails || {}).variants || []).filter(function (v) { return v.id === id; })[0];
    return Boolean(found && found.breach && found.breach.state === 'breached');
  };

  /* A breach, held or cleared, with the evidence recorded when it was found. */
  Page.prototype.breachBox = function (id, b, minShare) {
    var self = this, held = b.state === 'breached';
    var head = el('div', { className: 'breach-head' }, [
      el('span', { className: 'badge ' + (held ? 'status-alert' : 'status-ended'), 'data-field': 'state', text: b.state }),
      el('span', { className: 'strong', text: 'Variant ' + id }),
      el('span', { text: metricWords(b.metric) + ' guardrail' }),
      el('span', { className: 'muted small', 'data-field': 'at', text: 'breached ' + when(b.at) })]);
    if (held) {
      var button = el('button', { type: 'button', className: 'button small danger', 'data-action': 'clear-breach',
                                  text: 'Clear breach' });
      button.disabled = this.busy;
      button.addEventListener('click', function () { self.clearBreach(id, b, button); });
      head.appendChild(button);
    }
    var effect = held ? 'Variant ' + id + ' is ' + (b.action === 'pause' ? 'getting ' : '') +
                        breachEffect(b.action, minShare) + ' until the breach is cleared, whatever its conversions say.'
                      : 'Cleared: variant ' + id + ' competes for traffic again, and the monitor will not breach it ' +
                        'again in this experiment.';
    var unit = sampleUnit(b.metric);
    var evidence = 'Evidence: ' + metricWords(b.metric) + ' ' + amount(b.metric, b.estimate, true) + ' against control (' +
      level(b) + ' interval ' + amount(b.metric, b.low, true) + ' to ' + amount(b.metric, b.high, true) +
      '), tolerated ' + tolerated(b) + '; p ' + (b.p_value < 0.0001 ? '' : '= ') + pValue(b.p_value) + '; ' +
      NUMBER.format(b.n_control) + ' ' + unit + ' of control, ' + NUMBER.format(b.n_variant) + ' of ' + id + '.';
    return el('div', { className: 'breach ' + (held ? 'breach-held' : 'breach-cleared'), 'data-variant': id,
                       'data-state': b.state }, [
      head,
      el('p', { 'data-field': 'effect', text: effect }),
      el('p', { 'data-field': 'evidence', text: evidence }),
      el('p', { className: 'muted small', text: b.reason || '' })]);
  };

  /* Only a page whose experiment declares guardrails has the card. */
  Page.prototype.renderGuardrails = function (data) {
    var card = document.getElementById('guardrails');
    if (!card || !data) return;
    var self = this, gs = data.guardrails, minShare = Number(card.dataset.minShare) || 0;
    var rules = document.getElementById('guardrail-rules');
    rules.replaceChildren.apply(rules, gs.map(function (g, i) {
      return el('li', { 'data-guardrail': String(i) }, [
        el('span', { className: 'strong', text: describeGuardrail(g) }),
        el('span', { className: 'muted small', text: 'a breach leaves the variant ' + breachEffect(g.action, minShare) +
          ' · judged from ' + NUMBER.format(g.min_sample) + ' ' + sampleUnit(g.metric) + ' per arm at ' + level(g) +
          ' confidence' })]);
    }));
    // the boxes hold the Clear button: rebuilt only when they change, so a poll never swallows a click
    var breached = data.variants.filter(function (v) { return v.breach; });
    var key = JSON.stringify([breached.map(function (v) { return [v.id, v.breach]; }), this.busy, minShare]);
    if (key !== this.breachesShown) {
      this.breachesShown = key;
      var boxes = document.getElementById('breaches');
      boxes.replaceChildren.apply(boxes, breached.map(function (v) { return self.breachBox(v.id, v.breach, minShare); }));
    }
    var rows = [];
    data.variants.forEach(function (v) {
      v.verdicts.forEach(function (verdict, k) { rows.push(verdictRow(v.id, k === 0, gs[verdict.guardrail], verdict)); });
    });
    var tbody = document.querySelector('#guardrails-table tbody');
    if (!rows.length) {
      rows = [el('tr', {}, [el('td', { colspan: 6, className: 'empty', text: 'No variant to compare with control.' })])];
    }
    tbody.replaceChildren.apply(tbody, rows);
  };

  Page.prototype.clearBreach = function (id, b, button) {
    var self = this;
    confirmDialog('Clear the breach of variant ' + id + '?',
      'Variant ' + id + ' gets its share from the bandit again at the next refresh, and the monitor will not breach it ' +
      'again in this experiment, whatever its ' + metricWords(b.metric) + ' does. Clear it once you know why the ' +
      metricWords(b.metric) + ' moved.', 'Clear breach')
      .then(function (ok) {
        if (ok) self.act(button, 'DELETE', '/guardrails/' + encodeURIComponent(id));
      });
  };

  /* SRM, guardrail and drift alerts, newest first; the card shows only once there are some. */
  Page.prototype.renderAlerts = function (alerts) {
    var section = document.getElementById('alerts');
    section.hidden = !alerts || !alerts.length;
    if (section.hidden) return;
    var tbody = document.querySelector('#alerts-table tbody');
    tbody.replaceChildren.apply(tbody, alerts.map(function (a) {
      return el('tr', { 'data-alert': a.id, 'data-kind': a.kind }, [
        el('td', { className: 'nowrap', text: when(a.time), title: new Date(a.time * 1000).toISOString() }),
        el('td', {}, [el('span', { className: 'badge kind-' + a.kind, text: ALERT_KINDS[a.kind] || a.kind })]),
        el('td', { className: 'mono', text: a.variant || '–' }),
        el('td', { text: a.summary })]);
    }));
  };

  /* A drift's change point on the rate chart: where the arm's new rate starts. */
  Page.prototype.driftMarkers = function () {
    var self = this;
    return (this.alerts || []).filter(function (a) {
      return a.kind === 'drift' && a.details && typeof a.details.changed_at === 'number';
    }).map(function (a) {
      return { t: a.details.changed_at, id: a.variant, color: self.color(a.variant), title: a.summary,
               label: a.variant + ' ' + signedPct(a.details.relative_change, 0) };
    });
  };

  /* ---- a factorial experiment --------------------------------------- */

  function transpose(matrix) {
    return matrix.length ? matrix[0].map(function (_, j) { return matrix.map(function (row) { return row[j]; }); }) : [];
  }

  /* The stats hold one heatmap per pair of factors, in declaration order: the other way
     round is its transpose. */
  function pairHeatmap(heatmaps, rows, cols) {
    for (var i = 0; i < heatmaps.length; i++) {
      var h = heatmaps[i];
      if (h.factors[0] === rows && h.factors[1] === cols) return h;
      if (h.factors[0] === cols && h.factors[1] === rows) {
        return { factors: [rows, cols], rows: h.cols, cols: h.rows, rates: transpose(h.rates),
                 low: transpose(h.low), high: transpose(h.high) };
      }
    }
    return null;
  }

  function heatColor(t) {
    return 'rgb(' + HEAT_LOW.map(function (c, i) { return Math.round(c + (HEAT_HIGH[i] - c) * t); }).join(', ') + ')';
  }

  function rollup(factor, scaleMax) {
    var leader = factor.levels.reduce(function (best, level, i) {
      return level.p_best > factor.levels[best].p_best ? i : best;
    }, 0);
    var rows = factor.levels.map(function (level, i) {
      var lead = i === leader;
      var fill = lead ? null : '#94a3b8';  // grey for the others; the leader's is the stylesheet's green
      var bar = level.rate === null ? null : intervalBar({ ci95: [level.low, level.high], posterior_mean: level.rate,
                                                            color: PALETTE[0] }, scaleMax);
      return el('tr', { 'data-level': level.name, className: lead ? 'leader' : '' }, [
        el('td', {}, [el('span', { className: 'mono', text: level.name }),
                      lead ? el('span', { className: 'tag tag-winner', text: 'leads' }) : null]),
        el('td', { className: 'num', 'data-field': 'rate' }, [
          el('span', { className: 'strong', text: pct(level.rate) }),
          el('span', { className: 'interval-text', text: interval(level.low, level.high, 1) })]),
        el('td', { className: 'interval-cell' }, [bar]),
        el('td', { className: 'num', 'data-field': 'p_best' }, [el('span', { text: pct(level.p_best, 1) }),
                                                                meter(level.p_best, fill)]),
        el('td', { className: 'num', 'data-field': 'trials', text: NUMBER.format(level.trials) })
      ]);
    });
    return el('div', { className: 'rollup', 'data-factor': factor.name }, [
      el('h3', { text: factor.name }),
      el('table', { className: 'table compact' }, [
        el('thead', {}, [el('tr', {}, [el('th', { text: 'Level' }), el('th', { className: 'num', text: 'Rate · 95%' }),
                                       el('th', {}), el('th', { className: 'num', text: 'P(best)' }),
                                       el('th', { className: 'num', text: 'Trials' })])]),
        el('tbody', {}, rows)])
    ]);
  }

  function heatCell(rate, low, high, t, title) {
    if (rate === null) {
      return el('td', { className: 'heat-cell excluded', text: 'excluded', title: title + ': excluded by a constraint' });
    }
    var td = el('td', { className: 'heat-cell' + (t > 0.55 ? ' dark' : ''), title: title + ': ' + pct(rate) +
                        ' (95% ' + interval(low, high, 2) + ')' }, [
      el('span', { className: 'heat-rate', text: pct(rate) }),
      el('span', { className: 'interval-text', text: interval(low, high, 1) })]);
    td.style.backgroundColor = heatColor(t);
    return td;
  }

  /* Only a factorial experiment's page has the section, and only its stats the numbers. */
  Page.prototype.renderFactorial = function (stats) {
    if (!document.getElementById('factorial') || !stats.factors) return;
    var factors = stats.factors, best = stats.best;
    var highs = [].concat.apply([], factors.map(function (f) { return f.levels.map(function (l) { return l.high || 0; }); }));
    var scaleMax = niceMax(Math.max.apply(null, highs.concat([0.01])));
    var rollups = document.getElementById('rollups');
    rollups.replaceChildren.apply(rollups, factors.map(function (f) { return rollup(f, scaleMax); }));
    setText('best-arm', best.arm);
    setText('best-names', best.names.map(function (name, f) { return factors[f].name + ': ' + name; }).join(' · '));
    setText('best-rate', pct(best.rate));
    setText('best-interval', '95% ' + interval(best.low, best.high, 2));
    document.getElementById('factor-pairs').hidden = !stats.heatmaps.length;  // one factor: no pairs
    if (!stats.heatmaps.length) return;
    this.renderPairChoice(stats);
    this.renderHeatmap(stats);
    this.renderInteractions(stats);
  };

  Page.prototype.renderPairChoice = function (stats) {
    var names = stats.factors.map(function (f) { return f.name; }), pair = this.pair;
    if (!pair || names.indexOf(pair[0]) < 0 || names.indexOf(pair[1]) < 0) {
      pair = this.pair = stats.heatmaps[0].factors.slice();
    }
    ['heatmap-rows', 'heatmap-cols'].forEach(function (id, i) {
      var select = document.getElementById(id);
      var listed = Array.prototype.map.call(select.options, function (o) { return o.value; });
      if (JSON.stringify(listed) !== JSON.stringify(names)) {
        select.replaceChildren.apply(select, names.map(function (name) { return el('option', { value: name, text: name }); }));
      }
      select.value = pair[i];
    });
  };

  /* which: 0 for the rows' select, 1 for the columns'. A factor cannot face itself: choosing
     the other side's factor swaps the two. */
  Page.prototype.choosePair = function (which, name) {
    if (!this.stats) return;
    if (this.pair[1 - which] === name) this.pair[1 - which] = this.pair[which];
    this.pair[which] = name;
    this.renderPairChoice(this.stats);
    this.renderHeatmap(this.stats);
  };

  Page.prototype.renderHeatmap = function (stats) {
    var h = pairHeatmap(stats.heatmaps, this.pair[0], this.pair[1]);
    var table = document.getElementById('heatmap-table');
    if (!h) {  // cannot happen with the API's heatmaps, but an empty table beats an exception
      table.tHead.replaceChildren();
      table.tBodies[0].replaceChildren();
      return;
    }
    var rates = [].concat.apply([], h.rates).filter(function (r) { return r !== null; });
    var lo = rates.length ? Math.min.apply(null, rates) : 0, hi = rates.length ? Math.max.apply(null, rates) : 0;
    table.tHead.replaceChildren(el('tr', {}, [el('th', { className: 'corner', text: h.factors[0] + ' \u2193  ' +
                                                                                  h.factors[1] + ' \u2192' })]
      .concat(h.cols.map(function (c) { return el('th', { scope: 'col', className: 'mono', text: c }); }))));
    table.tBodies[0].replaceChildren.apply(table.tBodies[0], h.rows.map(function (r, i) {
      return el('tr', { 'data-level': r }, [el('th', { scope: 'row', className: 'mono', text: r })].concat(
        h.cols.map(function (c, j) {
          var rate = h.rates[i][j], t = hi > lo ? (rate - lo) / (hi - lo) : 0.5;
          var td = heatCell(rate, h.low[i][j], h.high[i][j], t,
                            h.factors[0] + ': ' + r + ' × ' + h.factors[1] + ': ' + c);
          td.dataset.row = r;
          td.dataset.col = c;
          return td;
        })));
    }));
    setText('heat-low', pct(lo));
    setText('heat-high', pct(hi));
  };

  Page.prototype.renderInteractions = function (stats) {
    var tbody = document.querySelector('#interactions-table tbody');
    var strongest = stats.interactions.slice().sort(function (a, b) { return Math.abs(b.effect) - Math.abs(a.effect); })
      .slice(0, TOP_INTERACTIONS);
    if (!strongest.length) {
      tbody.replaceChildren(el('tr', {}, [el('td', { colspan: 2, className: 'empty',
                                                     text: 'The model has no interaction terms.' })]));
      return;
    }
    tbody.replaceChildren.apply(tbody, strongest.map(function (x) {
      var lift = el('td', { className: 'num' }, [
        el('span', { className: 'strong', text: signedPct(x.lift, 1) }),
        el('span', { className: 'interval-text', text: signedPct(x.lift_low, 1) + ' to ' + signedPct(x.lift_high, 1) })]);
      markSign(lift, x.lift_low, x.lift_high);
      return el('tr', { 'data-interaction': x.factors.join('×') + ':' + x.levels.join('×') }, [
        el('td', { text: x.factors[0] + ': ' + x.levels[0] + ' × ' + x.factors[1] + ': ' + x.levels[1] }), lift]);
    }));
  };

  Page.prototype.bind = function () {
    var self = this, toggle = document.getElementById('variants-toggle');
    if (!document.getElementById('factorial')) return;
    toggle.addEventListener('click', function () {
      self.showAll = !self.showAll;
      if (self.stats) self.render();
    });
    ['heatmap-rows', 'heatmap-cols'].forEach(function (id, which) {
      var select = document.getElementById(id);
      select.addEventListener('change', function () { self.choosePair(which, select.value); });
    });
    // the legend's ramp in the cells' colours, from the one place they are set
    var ramp = document.querySelector('#heatmap .heat-ramp');
    ramp.style.backgroundImage = 'linear-gradient(90deg, ' + heatColor(0) + ', ' + heatColor(1) + ')';
  };

  Page.prototype.renderCharts = function (ts) {
    var self = this, ids = Object.keys(ts.variants);
    ids.forEach(function (id) { self.color(id); });
    var s = chartSeries(ts, this.colors), shown = this.shownIndices(ids);  // shares of all, lines of those shown
    function pick(list) { return shown.map(function (k) { return list[k]; }); }
    lineChart(document.getElementById('chart-share'), pick(s.share),
              { yMax: 1, step: s.step, label: 'Traffic share over time' });
    lineChart(document.getElementById('chart-rate'), pick(s.rate),
              { yMax: null, step: s.step, label: 'Cumulative conversion rate over time', markers: this.driftMarkers() });
    legend(document.getElementById('legend-share'), pick(ids), this.colors);
    legend(document.getElementById('legend-rate'), pick(ids), this.colors);
  };

  /* The conversion model's versions (docs/model.md): validation and live log loss, the current one marked. */
  Page.prototype.renderModelAccuracy = function (stats) {
    var section = document.getElementById('model-accuracy'), rows = stats.model && stats.model.accuracy;
    if (!rows || !rows.length) { section.hidden = true; return; }
    section.hidden = false;
    var loss = function (x) { return x === null || x === undefined ? '–' : x.toFixed(4); };
    var tbody = document.querySelector('#model-accuracy-table tbody');
    tbody.replaceChildren.apply(tbody, rows.slice().reverse().map(function (r) {
      return el('tr', { 'data-version': String(r.version) }, [
        el('td', { className: 'mono', text: r.version + (r.current ? ' (current)' : '') }),
        el('td', { className: r.status === 'rejected' ? 'muted' : '', text: r.status }),
        el('td', { text: r.trigger }),
        el('td', { className: 'num', text: loss(r.validation_log_loss) }),
        el('td', { className: 'num', text: loss(r.judged_against_log_loss) }),
        el('td', { className: 'num', text: loss(r.live_log_loss) + (r.live_rows ? ' (' + r.live_rows + ' rows)' : '') })
      ]);
    }));
  };

  /* Everything from the last answers; also after the marketer changes what is shown. */
  Page.prototype.render = function () {
    var stats = this.stats;
    this.renderHeader(stats);
    this.renderVariants(stats);  // first: it chooses the variants the others show
    this.renderCapacity(stats);
    this.renderEngagement(stats);
    this.renderSrm(stats);
    this.renderLift(stats);
    this.renderModelAccuracy(stats);
    this.renderSegments(stats);
    this.renderFactorial(stats);
    this.renderGuardrails(this.guardrails);
    this.renderAlerts(this.alerts);
    this.renderCharts(this.timeseries);
  };

  Page.prototype.flash = function (message) {
    var node = document.getElementById('flash');
    node.textContent = message || '';
    node.hidden = !message;
  };

  Page.prototype.refresh = function () {
    var self = this;
    if (this.inFlight) return this.inFlight;
    clearTimeout(this.timer);
    var alertsDue = this.polls++ % ALERT_POLLS === 0;
    this.inFlight = Promise.all([this.api.call('GET', '/stats'), this.api.call('GET', '/timeseries'),
                                 this.hasGuardrails ? this.api.call('GET', '/guardrails') : null,
                                 alertsDue ? this.api.call('GET', '/alerts') : null])
      .then(function (results) {
        self.stats = results[0];
        self.timeseries = results[1];
        if (results[2]) self.guardrails = results[2];
        if (results[3]) self.alerts = results[3].alerts;
        self.render();
        setLive(true);
      })
      .catch(function (err) { setLive(false, err.message); })
      .then(function () {
        self.inFlight = null;
        clearTimeout(self.timer);
        if (!document.hidden) self.timer = setTimeout(function () { self.refresh(); }, POLL_MS);
      });
    return this.inFlight;
  };

  Page.prototype.act = function (button, method, path, body) {
    var self = this;
    this.busy = true;
    button.disabled = true;
    this.flash('');
    return this.api.call(method, path, body)
      .catch(function (err) { self.flash('Could not ' + button.textContent.toLowerCase() + ': ' + err.message); })
      .then(function () {
        self.busy = false;
        return (self.inFlight || Promise.resolve()).then(function () { return self.refresh(); });
      });
  };

  Page.prototype.toggle = function (id, button) {
    var v = (this.stats.variants || []).filter(function (x) { return x.id === id; })[0];
    var status = v && v.status === 'paused' ? 'active' : 'paused';
    return this.act(button, 'PATCH', '/variants/' + encodeURIComponent(id), { status: status });
  };

  Page.prototype.promote = function (id, button) {
    var self = this;
    confirmDialog('Promote variant ' + id + '?',
      'Every visitor will get variant ' + id + ' from now on, and the experiment ends. This cannot be undone here.',
      'Promote')
      .then(function (ok) {
        if (ok) self.act(button, 'POST', '/promote', { variant: id });
      });
  };

  function confirmDialog(title, text, action) {
    var dialog = document.getElementById('confirm');
    setText('confirm-title', title);
    setText('confirm-text', text);
    setText('confirm-ok', action);
    return new Promise(function (resolve) {
      dialog.addEventListener('close', function done() {
        dialog.removeEventListener('close', done);
        resolve(dialog.returnValue === 'ok');
      });
      dialog.returnValue = '';
      dialog.showModal();
    });
  }

  /* ---- the experiments list ------------------------------------------ */

  /* One page at a time from the admin API (GET /experiments?limit=&cursor=), so the page
   * stays as light with 10,000 experiments as with ten. The API's cursors only go forward:
   * the ones already followed are kept to go back. Search, status and order live in the
   * address, so a reload or a shared link shows the same list (from its first page). */
  var LIST_POLL_MS = 5000;
  var SEARCH_DELAY_MS = 250;
  var FIRST_ORDER = { id: 'asc', trials: 'desc', rate: 'desc', updated: 'desc' };

  function when(seconds) {
    if (!seconds) return '–';
    var d = new Date(seconds * 1000), two = function (n) { return String(n).padStart(2, '0'); };
    return d.getFullYear() + '-' + two(d.getMonth() + 1) + '-' + two(d.getDate()) + ' ' +
      two(d.getHours()) + ':' + two(d.getMinutes());
  }

  function ListPage(api, base, size) {
    var params = new URLSearchParams(window.location.search);
    var sort = FIRST_ORDER[params.get('sort')] ? params.get('sort') : 'id';
    var order = params.get('order') === 'asc' || params.get('order') === 'desc' ? params.get('order') : FIRST_ORDER[sort];
    this.api = api;
    this.base = base;
    this.size = size;
    this.query = { q: params.get('q') || '', status: params.get('status') || '', sort: sort, order: order };
    this.cursor = '';      // this page's cursor ('' the first page)
    this.before = [];      // the cursors of the pages before this one
    this.next = null;      // the API's next_cursor
    this.seq = 0;          // answers to anything but the latest request are dropped
  }

  ListPage.prototype.url = function () {
    var q = this.query, params = new URLSearchParams({ limit: String(this.size), sort: q.sort, order: q.order });
    if (q.q) params.set('q', q.q);
    if (q.status) params.set('status', q.status);
    if (this.cursor) params.set('cursor', this.cursor);
    return '?' + params.toString();
  };

  ListPage.prototype.load = function () {
    var self = this, seq = ++this.seq;
    clearTimeout(this.timer);
    return this.api.call('GET', this.url())
      .then(function (data) {
        if (seq !== self.seq) return;
        self.render(data);
        setLive(true);
        self.showError('');
      })
      .catch(function (err) {
        if (seq !== self.seq) return;
        setLive(false, err.message);
        self.showError('Could not load the experiments: ' + err.message);
      })
      .then(function () {
        if (seq !== self.seq) return;
        if (!document.hidden) self.timer = setTimeout(function () { self.load(); }, LIST_POLL_MS);
      });
  };

  ListPage.prototype.showError = function (message) {
    var node = document.getElementById('list-error');
    node.textContent = message;
    node.hidden = !message;
  };

  ListPage.prototype.row = function (e) {
    var link = el('a', { className: 'strong', href: this.base + '/experiments/' + encodeURIComponent(e.id),
                         text: e.name || e.id });
    var cells = [
      el('td', {}, [link, el('div', { className: 'muted small mono', text: e.id })]),
      el('td', { className: 'mono', text: e.host + e.path_prefix }),
      el('td', { 'data-field': 'status' }, [el('span', { className: 'badge status-' + e.status, text: e.status })]),
      el('td', { className: 'mono', text: e.policy }),
      el('td', { className: 'num', 'data-field': 'variants', text: String(e.variants.length) }),
      el('td', { className: 'num', 'data-field': 'trials', text: NUMBER.format(e.trials) }),
      el('td', { className: 'num', 'data-field': 'conversions', text: NUMBER.format(e.conversions) }),
      el('td', { className: 'num', 'data-field': 'rate', text: e.trials ? pct(e.rate) : '–' }),
      el('td', { className: 'num', 'data-field': 'updated', text: when(e.updated_at),
                 title: e.updated_at ? new Date(e.updated_at * 1000).toISOString() : 'not known' })
    ];
    return el('tr', { 'data-experiment': e.id }, cells);
  };

  ListPage.prototype.render = function (data) {
    var self = this, rows = data.experiments, q = this.query;
    document.querySelector('#experiments tbody').replaceChildren.apply(
      document.querySelector('#experiments tbody'), rows.map(function (e) { return self.row(e); }));
    this.next = data.next_cursor;
    var first = this.before.length * this.size + 1;
    setText('list-range', rows.length ? NUMBER.format(first) + '–' + NUMBER.format(first + rows.length - 1) +
            ' of ' + NUMBER.format(data.total) : '');
    document.getElementById('list-empty').hidden = data.total > 0 || Boolean(q.q || q.status);
    document.getElementById('list-none').hidden = rows.length > 0 || !(q.q || q.status);
    document.getElementById('page-prev').disabled = !this.before.length;
    document.getElementById('page-next').disabled = !this.next;
    document.querySelectorAll('#experiments th[data-sort]').forEach(function (th) {
      th.setAttribute('aria-sort', th.dataset.sort !== q.sort ? 'none' : q.order === 'asc' ? 'ascending' : 'descending');
    });
  };

  /* A new search, filter or order: back to the first page. */
  ListPage.prototype.change = function (changes) {
    Object.assign(this.query, changes);
    this.cursor = '';
    this.before = [];
    var q = this.query, params = new URLSearchParams();
    if (q.q) params.set('q', q.q);
    if (q.status) params.set('status', q.status);
    if (q.sort !== 'id' || q.order !== 'asc') { params.set('sort', q.sort); params.set('order', q.order); }
    window.history.replaceState(null, '', window.location.pathname + (params.toString() ? '?' + params : ''));
    return this.load();
  };

  ListPage.prototype.page = function (forward) {
    if (forward && this.next) {
      this.before.push(this.cursor);
      this.cursor = this.next;
    } else if (!forward && this.before.length) {
      this.cursor = this.before.pop();
    } else {
      return Promise.resolve();
    }
    return this.load();
  };

  ListPage.prototype.sortBy = function (key) {
    var q = this.query;
    return this.change(key === q.sort ? { order: q.order === 'asc' ? 'desc' : 'asc' }
                                      : { sort: key, order: FIRST_ORDER[key] });
  };

  ListPage.prototype.bind = function () {
    var self = this, search = document.getElementById('search'), status = document.getElementById('status-filter');
    var typing = null;
    search.value = this.query.q;
    status.value = this.query.status;
    search.addEventListener('input', function () {
      clearTimeout(typing);
      typing = setTimeout(function () { self.change({ q: search.value.trim() }); }, SEARCH_DELAY_MS);
    });
    document.getElementById('list-filter').addEventListener('submit', function (event) {
      event.preventDefault();
      clearTimeout(typing);
      self.change({ q: search.value.trim() });
    });
    status.addEventListener('change', function () { self.change({ status: status.value }); });
    document.querySelectorAll('#experiments th[data-sort] button').forEach(function (button) {
      button.addEventListener('click', function () { self.sortBy(button.parentNode.dataset.sort); });
    });
    document.getElementById('page-prev').addEventListener('click', function () { self.page(false); });
    document.getElementById('page-next').addEventListener('click', function () { self.page(true); });
  };

  function startList() {
    var page = new ListPage(new Api(meta('croupier-api'), '', '', meta('croupier-login')), meta('croupier-base'),
                            Number(meta('croupier-page-size')) || 50);
    window.croupierList = page;  // for debugging from the console
    page.bind();
    page.load();
    document.addEventListener('visibilitychange', function () {
      if (document.hidden) clearTimeout(page.timer);
      else page.load();
    });
  }

  function start() {
    if (document.body.dataset.page === 'experiments') return startList();
    if (document.body.dataset.page !== 'experiment') return;
    var page = new Page(new Api(meta('croupier-api'), meta('croupier-csrf'), meta('croupier-csrf-header'),
                                meta('croupier-login')));
    window.croupierDashboard = page;  // for debugging from the console
    page.bind();
    page.refresh();
    page.loadStrategies();
    // polling a hidden tab costs the router for nothing; catch up when it shows again
    document.addEventListener('visibilitychange', function () {
      if (document.hidden) {
        clearTimeout(page.timer);
        clearTimeout(page.strategyTimer);
      } else {
        page.refresh();
        page.loadStrategies();
      }
    });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
