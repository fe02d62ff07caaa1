/* The dashboard: the KPIs over time, the rising learning patterns and the overdue postmortems, from the
   GraphQL API only. Signed in with an API token (kept in this browser's localStorage, sent as
   "Authorization: Token <key>") or, without one, with this origin's session (the sessionid cookie; POSTs
   carry X-CSRFToken from the csrftoken cookie). Nothing is loaded from another host. */
(function () {
  "use strict";

  var STORAGE_KEY = "ikl.dashboard.token";
  var GRAPHQL = document.body.getAttribute("data-graphql");
  var QUERY = [
    "query Dashboard($weeks: Int!, $team: String, $namespace: String) {",
    "  me { username role clearance }",
    "  kpis(weeks: $weeks, team: $team, namespace: $namespace) {",
    "    since until",
    "    overall { incidents incidentsResolved meanTimeToDetect meanTimeToResolve postmortemsDue",
    "      postmortemCompletionRate medianTimeToPublish actionItemClosureRate overdueActionItems kbViews",
    "      kbSearches kbZeroResultRate recommendationsGenerated recommendationAcceptanceRate",
    "      meanEffectivenessRating }",
    "    perWeek { weekStart postmortemCompletionRate actionItemClosureRate recommendationAcceptanceRate",
    "      medianTimeToPublish kbSearches kbZeroResultRate incidentsBySeverity }",
    "    risingPatterns { name patternType isValidated earlier recent }",
    "  }",
    "  overduePostmortems(pageSize: 10, ordering: \"due_date\") { totalCount results { title severity status dueDate } }",
    "}"
  ].join("\n");
  var SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
  var COLORS = { blue: "#2563eb", green: "#16a34a", orange: "#ea580c", red: "#dc2626", grey: "#6b7280",
                 purple: "#7c3aed", CRITICAL: "#991b1b", HIGH: "#dc2626", MEDIUM: "#f59e0b", LOW: "#9ca3af" };
  var charts = {};

  function $(id) { return document.getElementById(id); }

  function readToken() {
    try { return window.localStorage.getItem(STORAGE_KEY) || ""; } catch (e) { return ""; }
  }

  function writeToken(token) {
    try {
      if (token) window.localStorage.setItem(STORAGE_KEY, token); else window.localStorage.removeItem(STORAGE_KEY);
    } catch (e) { /* storage disabled: the token lasts as long as the page */ }
  }

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split(/;\s*/) : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  /* A POST to /graphql: the token, or the session's CSRF token (a session's POST needs it). */
  function headers() {
    var h = { "Accept": "application/json", "Content-Type": "application/json" };
    var token = $("token").value.trim().replace(/^Token\s+/i, "");
    if (token) h.Authorization = "Token " + token;
    else if (cookie("csrftoken")) h["X-CSRFToken"] = cookie("csrftoken");
    return h;
  }

  function say(text, bad) {
    $("status").textContent = text;
    $("status").className = bad ? "status bad" : "status";
  }

  function pct(x) { return x === null || x === undefined ? "no data" : (100 * x).toFixed(0) + " %"; }
  function hours(s) { return s === null || s === undefined ? "no data" : (s / 3600).toFixed(1) + " h"; }
  function num(x) { return x === null || x === undefined ? "no data" : String(x); }
  function day(iso) { return iso ? iso.slice(0, 10) : ""; }

  function tiles(o) {
    var items = [
      ["Postmortems on time", pct(o.postmortemCompletionRate), o.postmortemsDue + " due"],
      ["Median time to publish", hours(o.medianTimeToPublish), "resolution → published"],
      ["Action items closed", pct(o.actionItemClosureRate), o.overdueActionItems + " overdue now"],
      ["Recommendations applied", pct(o.recommendationAcceptanceRate), o.recommendationsGenerated + " generated"],
      ["Mean effectiveness", num(o.meanEffectivenessRating), "rating 1-5"],
      ["KB searches", num(o.kbSearches), pct(o.kbZeroResultRate) + " found nothing"],
      ["Incidents", num(o.incidents), o.incidentsResolved + " resolved"],
      ["Mean time to resolve", hours(o.meanTimeToResolve), "detect: " + hours(o.meanTimeToDetect)]
    ];
    var box = $("tiles");
    box.textContent = "";
    items.forEach(function (t) {
      var div = document.createElement("div");
      div.className = "tile";
      var label = document.createElement("span"); label.className = "label"; label.textContent = t[0];
      var value = document.createElement("span"); value.className = "value"; value.textContent = t[1];
      var note = document.createElement("span"); note.className = "note"; note.textContent = t[2];
      div.appendChild(label); div.appendChild(value); div.appendChild(note);
      box.appendChild(div);
    });
  }

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
                                     plugins: { legend: { position: "bottom" } } }, config.options || {});
    charts[id] = new Chart($(id), config);
  }

  function line(label, data, color, axis) {
    return { type: "line", label: label, data: data, borderColor: color, backgroundColor: color,
             spanGaps: true, tension: 0.2, yAxisID: axis || "y" };
  }

  function render(kpis) {
    var weeks = kpis.perWeek;
    var labels = weeks.map(function (w) { return day(w.weekStart); });
    var rate = function (key) { return weeks.map(function (w) { return w[key] === null ? null : 100 * w[key]; }); };
    tiles(kpis.overall);
    draw("rates", { type: "line", data: { labels: labels, datasets: [
      line("Postmortems on time (%)", rate("postmortemCompletionRate"), COLORS.blue),
      line("Action items closed (%)", rate("actionItemClosureRate"), COLORS.green),
      line("Recommendations applied (%)", rate("recommendationAcceptanceRate"), COLORS.purple)] },
      options: { scales: { y: { min: 0, max: 100 } } } });
    draw("publish", { type: "bar", data: { labels: labels, datasets: [{ label: "Median hours to publish",
      data: weeks.map(function (w) { return w.medianTimeToPublish === null ? null : w.medianTimeToPublish / 3600; }),
      backgroundColor: COLORS.blue }] } });
    draw("searches", { data: { labels: labels, datasets: [
      { type: "bar", label: "Searches", data: weeks.map(function (w) { return w.kbSearches; }),
        backgroundColor: COLORS.grey, yAxisID: "y" },
      line("Found nothing (%)", rate("kbZeroResultRate"), COLORS.orange, "y1")] },
      options: { scales: { y: { beginAtZero: true }, y1: { position: "right", min: 0, max: 100,
                                                          grid: { drawOnChartArea: false } } } } });
    draw("severity", { type: "bar", data: { labels: labels, datasets: SEVERITIES.map(function (s) {
      return { label: s, backgroundColor: COLORS[s],
               data: weeks.map(function (w) { return (w.incidentsBySeverity || {})[s] || 0; }) };
    }) }, options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
  }

  function fill(tableId, rows, empty) {
    var body = $(tableId).querySelector("tbody");
    body.textContent = "";
    if (!rows.length) {
      var tr = document.createElement("tr"); var td = document.createElement("td");
      td.colSpan = 4; td.textContent = empty; tr.appendChild(td); body.appendChild(tr);
      return;
    }
    rows.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (c) { var td = document.createElement("td"); td.textContent = c; tr.appendChild(td); });
      body.appendChild(tr);
    });
  }

  function load() {
    var token = $("token").value.trim();
    writeToken(token);
    say("Loading…");
    var variables = { weeks: parseInt($("weeks").value, 10), team: $("team").value.trim() || null,
                      namespace: $("namespace").value.trim() || null };
    fetch(GRAPHQL, { method: "POST", headers: headers(), credentials: "same-origin",
                     body: JSON.stringify({ query: QUERY, variables: variables }) })
      .then(function (r) { return r.json().then(function (body) { return { status: r.status, body: body }; }); })
      .then(function (res) {
        var errors = res.body.errors || [];
        if (res.status === 401 || (errors[0] && errors[0].extensions && errors[0].extensions.code === "NOT_AUTHENTICATED")) {
          say("Not signed in: paste an API token (`ikl create_token NAME` prints one) or sign in with a session.", true);
          return;
        }
        if (errors.length || !res.body.data) {
          say("The API refused: " + (errors[0] ? errors[0].message : "HTTP " + res.status), true);
          return;
        }
        var data = res.body.data;
        render(data.kpis);
        fill("rising", data.kpis.risingPatterns.map(function (p) {
          return [p.name + (p.isValidated ? " ✓" : ""), p.patternType || "", String(p.earlier), String(p.recent)];
        }), "No pattern rose in this window.");
        fill("overdue", data.overduePostmortems.results.map(function (p) {
          return [p.title, p.severity, p.status, day(p.dueDate)];
        }), "No postmortem is overdue.");
        say("Weeks " + day(data.kpis.since) + " to " + day(data.kpis.until) + "; " +
            data.overduePostmortems.totalCount + " overdue postmortem(s). Figures count only what you may see.");
        $("who").textContent = "as " + data.me.username + " (" + data.me.role.toLowerCase() + ", " +
          data.me.clearance + ")";
      })
      .catch(function (e) { say("Could not reach the API: " + e, true); });
  }

  if (typeof Chart === "undefined") {
    say("The chart library did not load: reload the page.", true);
    return;
  }
  $("token").value = readToken();
  $("load").addEventListener("click", load);
  ["weeks"].forEach(function (id) { $(id).addEventListener("change", load); });
  load();
})();
