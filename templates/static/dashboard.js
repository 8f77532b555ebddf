// The operators' dashboard: polls the public /api/health and /api/metrics, draws the latency chart as SVG,
// and calls the admin endpoints with the key typed into this tab (sessionStorage only, sent as X-Admin-Key);
// /api/metrics gets the key too, to add today's top callers, which it lists for an operator only.
(function () {
  "use strict";
  var REFRESH_MS = 5000;
  var HISTORY = 60; // samples kept for the chart: five minutes at one refresh every 5 s
  var KEY_SLOT = "backend-ai.admin-key";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var samples = [];
  var timer = null;
  var rejectedKey = null; // the admin key /api/metrics refused: not sent with refreshes again until it changes

  function $(id) { return document.getElementById(id); }

  function make(tag, attrs, text, ns) {
    var node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) node.textContent = text; // textContent only: data never becomes markup
    return node;
  }

  function setText(id, text) { $(id).textContent = text; }
  function isNum(x) { return typeof x === "number" && isFinite(x); }
  function pct(x) { return isNum(x) ? (x * 100).toFixed(1) + "%" : "–"; }
  function ms(x) { return isNum(x) ? x.toFixed(1) + " ms" : "–"; }
  function usd(x) { return isNum(x) ? "$" + x.toFixed(6) : "–"; }
  function count(x) { return isNum(x) ? String(Math.round(x)) : "–"; }
  function perSecond(x) { return isNum(x) ? x.toFixed(2) : "–"; }
  function budget(x) { return x === null || x === undefined ? "none" : usd(x); }
  function sum(obj) { return Object.keys(obj || {}).reduce(function (a, k) { return a + (obj[k] || 0); }, 0); }
  function clock(epochSeconds) { return new Date(epochSeconds * 1000).toLocaleTimeString(); }
  function split(obj, format) {
    var keys = Object.keys(obj || {});
    return keys.length ? keys.map(function (k) { return k + " " + format(obj[k]); }).join(" · ") : "none";
  }

  function readKey() { try { return sessionStorage.getItem(KEY_SLOT) || ""; } catch (e) { return ""; } }
  function storeKey(key) {
    try { if (key) sessionStorage.setItem(KEY_SLOT, key); else sessionStorage.removeItem(KEY_SLOT); } catch (e) { /* private mode */ }
  }

  function getJSON(url, options) {
    return fetch(url, Object.assign({ cache: "no-store", credentials: "same-origin" }, options || {}))
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          return { status: response.status, body: body };
        });
      });
  }

  function renderHealth(report) {
    var badge = $("overall-status");
    badge.textContent = report.status;
    badge.className = "status status-" + report.status;
    badge.setAttribute("data-status", report.status);
    var list = $("status-reasons");
    list.replaceChildren.apply(list, (report.reasons || []).map(function (r) { return make("li", {}, r); }));
  }

  function renderCards(m) {
    var avoided = m.cost_usd.avoided || {};
    setText("cache-hit-rate", pct(m.cache.hit_rate));
    $("cache-hit-rate").setAttribute("data-value", String(m.cache.hit_rate));
    setText("cache-hits", count(m.cache.hits) + " hits of " + count(m.cache.lookups) + " lookups");
    setText("cost-spent", usd(m.cost_usd.spent));
    setText("cost-by-provider", split(m.cost_usd.by_provider, usd));
    setText("cost-avoided", usd(sum(avoided)));
    setText("cost-avoided-cache", usd(avoided.cache || 0));
    setText("cost-avoided-singleflight", usd(avoided.singleflight || 0));
    setText("upstream-calls", count(sum(m.upstream_calls)));
    setText("upstream-by-provider", split(m.upstream_calls, count));
    // Which provider gave the AI answers: the fallback's share, and local (degraded) answers.
    setText("answers-by-provider", split(m.answers_by_provider || {}, count));
    setText("speech-characters", count(m.speech_characters));
    var today = m.today || {};
    setText("conversations-today", count(today.conversations));
    setText("turns-today", count(today.turns));
    setText("database-state", today.database || "–");
    var jobs = today.jobs || {};
    setText("jobs-queued", count(jobs.queued));
    setText("jobs-running", count(jobs.running));
    setText("jobs-failed", count(jobs.failed));
    setText("rate-limited", count(m.rate_limited));
    setText("tokens", "tokens: " + split(m.tokens, count));
    setText("window-seconds", isNum(m.window_seconds) ? Math.round(m.window_seconds) + " s" : "since start");
  }

  function callerRow(c) {
    var row = make("tr", { "data-caller": c.caller });
    row.appendChild(make("th", { scope: "row" }, c.caller));
    row.appendChild(make("td", { "data-field": "cost_usd" }, usd(c.cost_usd)));
    var limit = budget(c.budget_usd) + (c.override ? " (override)" : "");
    row.appendChild(make("td", { "data-field": "budget_usd" }, limit));
    var over = make("td", { "data-field": "over_budget" }, c.over_budget ? "yes" : "no");
    over.classList.toggle("bad", !!c.over_budget);
    row.appendChild(over);
    return row;
  }

  function renderSpend(spend) {
    spend = spend || {};
    setText("spend-today", usd(spend.today_usd));
    setText("budget-per-caller", budget(spend.per_caller_default_usd));
    setText("budget-per-key", budget(spend.per_key_usd));
    setText("budget-refusals", split(spend.refusals, count));
    // Absent unless /api/metrics accepted the admin key. The list is ranked anew each refresh: rebuilt, not updated.
    var callers = spend.top_callers;
    $("callers-table").hidden = !callers || !callers.length;
    $("callers-empty").hidden = !!(callers && callers.length);
    var key = readKey(), hint = "Enter the admin key to see today's top callers.";
    if (key && key === rejectedKey) hint = "The admin key was refused (401): enter the right one to see them.";
    setText("callers-empty", callers ? "No paid calls today." : hint);
    var body = $("callers-body");
    body.replaceChildren.apply(body, (callers || []).map(callerRow));
  }

  var ROUTE_FIELDS = [["count", count], ["requests_per_second", perSecond], ["error_rate", pct],
    ["client_error_rate", pct], ["p50_ms", ms], ["p95_ms", ms], ["p99_ms", ms], ["total_count", count]];

  function renderRoutes(routes) {
    var body = $("routes-body");
    var names = Object.keys(routes).sort();
    $("routes-empty").hidden = names.length > 0;
    names.forEach(function (name) {
      // Rows are kept and updated in place so a refresh never replaces what the operator is looking at.
      var row = body.querySelector('tr[data-route="' + CSS.escape(name) + '"]');
      if (!row) {
        row = make("tr", { "data-route": name });
        row.appendChild(make("th", { scope: "row" }, name));
        ROUTE_FIELDS.forEach(function (f) { row.appendChild(make("td", { "data-field": f[0] })); });
        body.appendChild(row);
        $("chart-route").appendChild(make("option", { value: name }, name));
      }
      var r = routes[name];
      ROUTE_FIELDS.forEach(function (f) {
        var cell = row.querySelector('td[data-field="' + f[0] + '"]');
        cell.textContent = f[1](r[f[0]]);
        cell.classList.toggle("bad", (f[0] === "error_rate" && r.error_rate > 0.05));
      });
    });
  }

  function breakerCard(name) {
    var card = make("article", { class: "breaker", "data-breaker": name });
    var head = make("div", { class: "breaker-head" });
    head.appendChild(make("h3", {}, name));
    head.appendChild(make("span", { class: "badge", "data-field": "state" }, "–"));
    card.appendChild(head);
    var facts = make("dl", {});
    [["failure_rate", "Failure rate"], ["calls_in_window", "Calls in window"],
      ["opened_at", "Opened at"], ["next_probe_at", "Next probe"]].forEach(function (f) {
      facts.appendChild(make("dt", {}, f[1]));
      facts.appendChild(make("dd", { "data-field": f[0] }, "–"));
    });
    card.appendChild(facts);
    var actions = make("div", { class: "actions" });
    var reset = make("button", { type: "button", class: "reset", "data-action": "reset" }, "Reset");
    var open = make("button", { type: "button", class: "danger", "data-action": "open" }, "Force open");
    reset.addEventListener("click", function () { breakerAction("reset", name); });
    open.addEventListener("click", function () {
      if (window.confirm("Force the " + name + " breaker open? Calls to it fail until it is reset.")) breakerAction("open", name);
    });
    actions.appendChild(reset);
    actions.appendChild(open);
    card.appendChild(actions);
    return card;
  }

  function renderBreakers(breakers) {
    var box = $("breakers");
    Object.keys(breakers || {}).sort().forEach(function (name) {
      var card = box.querySelector('article[data-breaker="' + CSS.escape(name) + '"]');
      if (!card) { card = breakerCard(name); box.appendChild(card); }
      var b = breakers[name];
      var field = function (f) { return card.querySelector('[data-field="' + f + '"]'); };
      var badge = field("state");
      badge.textContent = b.state;
      badge.className = "badge state-" + b.state;
      card.setAttribute("data-state", b.state);
      field("failure_rate").textContent = pct(b.failure_rate);
      field("calls_in_window").textContent = count(b.calls_in_window);
      field("opened_at").textContent = isNum(b.opened_at) && b.opened_at > 0 ? clock(b.opened_at) : "–";
      var probe = "–";
      if (b.state === "forced_open") probe = "held open until reset";
      else if (isNum(b.next_probe_at)) {
        var wait = Math.round(b.next_probe_at - Date.now() / 1000);
        probe = clock(b.next_probe_at) + (wait > 0 ? " (in " + wait + " s)" : " (due)");
      }
      field("next_probe_at").textContent = probe;
    });
  }

  // The "all routes" series: the worst p95 (percentiles do not add up) and the total request rate.
  function point(sample, route) {
    var routes = sample.routes, names = route ? [route] : Object.keys(routes), p95 = null, rate = 0;
    names.forEach(function (n) {
      var r = routes[n];
      if (!r) return;
      if (isNum(r.p95_ms)) p95 = p95 === null ? r.p95_ms : Math.max(p95, r.p95_ms);
      rate += isNum(r.requests_per_second) ? r.requests_per_second : 0;
    });
    return { t: sample.t, p95: p95, rate: rate };
  }

  function renderChart() {
    var chart = $("latency-chart"), W = 1000, H = 240, L = 64, R = 64, T = 14, B = 30;
    var route = $("chart-route").value;
    var pts = samples.map(function (s) { return point(s, route); });
    var maxP95 = Math.max(1, Math.max.apply(null, pts.map(function (p) { return p.p95 || 0; })) * 1.15);
    var maxRate = Math.max(0.1, Math.max.apply(null, pts.map(function (p) { return p.rate; })) * 1.15);
    var x = function (i) { return L + i * (W - L - R) / Math.max(pts.length - 1, 1); };
    var y = function (v, max) { return T + (H - T - B) * (1 - v / max); };
    var nodes = [];
    var text = function (tx, ty, anchor, value, cls) {
      nodes.push(make("text", { x: tx, y: ty, "text-anchor": anchor, class: cls || "axis-label" }, value, SVG_NS));
    };
    [0, 0.5, 1].forEach(function (f) {
      var gy = y(f, 1);
      nodes.push(make("line", { x1: L, x2: W - R, y1: gy, y2: gy, class: "grid" }, undefined, SVG_NS));
      text(L - 6, gy + 4, "end", (maxP95 * f).toFixed(0) + " ms", "axis-label p95");
      text(W - R + 6, gy + 4, "start", (maxRate * f).toFixed(2) + "/s", "axis-label rate");
    });
    if (!pts.length) text(W / 2, H / 2, "middle", "waiting for data");
    else {
      text(L, H - 8, "start", new Date(pts[0].t).toLocaleTimeString());
      text(x(pts.length - 1), H - 8, pts.length > 1 ? "end" : "start", new Date(pts[pts.length - 1].t).toLocaleTimeString());
    }
    // A refresh without traffic in the window has no p95: the line breaks there rather than dropping to zero.
    var series = function (key, max, cls) {
      var run = [];
      var flush = function () {
        if (run.length > 1) nodes.push(make("polyline", { points: run.join(" "), class: "line " + cls }, undefined, SVG_NS));
        if (run.length === 1) {
          var xy = run[0].split(",");
          nodes.push(make("circle", { cx: xy[0], cy: xy[1], r: 3, class: "dot " + cls }, undefined, SVG_NS));
        }
        run = [];
      };
      pts.forEach(function (p, i) {
        if (p[key] === null) flush(); else run.push(x(i).toFixed(1) + "," + y(p[key], max).toFixed(1));
      });
      flush();
    };
    series("p95", maxP95, "p95");
    series("rate", maxRate, "rate");
    chart.replaceChildren.apply(chart, nodes);
  }

  // A wrong key is refused (401) and counted towards the address's lockout like any wrong admin key: it is sent once,
  // then refreshes go without it until another is typed, so a typo costs one failure rather than one per refresh.
  function getMetrics() {
    var key = readKey();
    if (!key || key === rejectedKey) return getJSON("/api/metrics");
    return getJSON("/api/metrics", { headers: { "X-Admin-Key": key } }).then(function (answer) {
      if (answer.status !== 401) return answer;
      rejectedKey = key; // said in the callers' panel: the admin message box belongs to the admin actions
      return getJSON("/api/metrics");
    });
  }

  function refresh() {
    window.clearTimeout(timer);
    return Promise.all([getJSON("/api/health"), getMetrics()]).then(function (answers) {
      var health = answers[0].body, metrics = answers[1].body;
      // /api/health answers 503 when unhealthy, with the full report as the error's details: data, not a failure.
      var report = health && (health.data || (health.error && health.error.details));
      if (!report || !report.status) throw new Error("/api/health answered " + answers[0].status);
      if (!metrics || !metrics.success) throw new Error("/api/metrics answered " + answers[1].status);
      renderHealth(report);
      renderCards(metrics.data);
      renderSpend(metrics.data.spend);
      renderRoutes(metrics.data.routes || {});
      renderBreakers(metrics.data.breakers);
      samples.push({ t: Date.now(), routes: metrics.data.routes || {} });
      if (samples.length > HISTORY) samples.shift();
      renderChart();
      var now = new Date();
      $("last-updated").textContent = now.toLocaleTimeString();
      $("last-updated").setAttribute("datetime", now.toISOString());
      $("refresh-error").hidden = true;
    }).catch(function (error) {
      $("refresh-error").textContent = "Refresh failed: " + error.message + " (showing the last data)";
      $("refresh-error").hidden = false;
    }).then(function () {
      window.clearTimeout(timer); // a manual refresh may have overlapped this one: keep a single timer
      timer = window.setTimeout(refresh, REFRESH_MS);
    });
  }

  function say(text, isError) {
    var box = $("admin-message");
    box.textContent = text;
    box.className = "message " + (isError ? "error" : "ok");
    box.hidden = false;
  }

  function admin(path, payload, label) {
    var key = readKey();
    if (!key) { say(label + " failed: enter the admin key first", true); return Promise.resolve(null); }
    var buttons = document.querySelectorAll("#breakers button, #cache-clear");
    buttons.forEach(function (b) { b.disabled = true; });
    return getJSON(path, {
      method: "POST", body: JSON.stringify(payload),
      headers: { "Content-Type": "application/json", "X-Admin-Key": key }
    }).then(function (answer) {
      var body = answer.body || {};
      if (answer.status >= 400 || !body.success) {
        var err = body.error || {};
        say(label + " failed: " + answer.status + " " + (err.code || "") + " " + (err.message || ""), true);
        return null;
      }
      say(label + " done at " + new Date().toLocaleTimeString(), false);
      return body.data;
    }).catch(function (error) {
      say(label + " failed: " + error.message, true);
      return null;
    }).then(function (data) {
      buttons.forEach(function (b) { b.disabled = false; });
      return data;
    });
  }

  function breakerAction(action, name) {
    var label = (action === "reset" ? "Reset " : "Force open ") + name;
    return admin("/api/circuit-breaker/" + action, { name: name }, label).then(function (data) {
      if (data && data.breakers) renderBreakers(data.breakers);
      return refresh();
    });
  }

  function clearCache(event) {
    event.preventDefault();
    var namespace = $("cache-namespace").value.trim();
    var what = namespace ? "the " + namespace + " namespace" : "the whole cache";
    if (!window.confirm("Clear " + what + "? Every worker and instance sharing it is affected.")) return;
    admin("/api/cache/clear", namespace ? { namespace: namespace } : {}, "Clear " + what).then(refresh);
  }

  function start() {
    var input = $("admin-key");
    input.value = readKey();
    input.addEventListener("input", function () { storeKey(input.value.trim()); });
    $("admin-key-form").addEventListener("submit", function (e) { e.preventDefault(); });
    $("admin-key-forget").addEventListener("click", function () { input.value = ""; storeKey(""); });
    $("cache-clear-form").addEventListener("submit", clearCache);
    $("refresh-now").addEventListener("click", refresh);
    $("chart-route").addEventListener("change", renderChart);
    renderChart();
    refresh();
  }

  document.addEventListener("DOMContentLoaded", start);
}());
