/* Sorting, filters and the Pareto plots' frontier. Without JavaScript every table is complete and in its
   rendered order, every plot shows every point, and the filter bar stays hidden. The view (filters and the
   leaderboards' sort) lives in the URL's query, so a link shares it. */
(function () {
  "use strict";
  var GAP = 6, CANDIDATES = [  /* as reports/svg.py */
    [1, 0, "start", 1], [-1, 0, "end", 1], [0, -1, "middle", 1], [0, 1, "middle", 1],
    [1, -1, "start", 1], [1, 1, "start", 1], [-1, -1, "end", 1], [-1, 1, "end", 1],
    [0, -1, "middle", 2.6], [0, 1, "middle", 2.6], [1, -1, "start", 2.6], [1, 1, "start", 2.6],
    [-1, -1, "end", 2.6], [-1, 1, "end", 2.6]];
  var params = new URLSearchParams(location.search);
  function each(list, fn) { Array.prototype.forEach.call(list, fn); }

  function save() {
    var text = params.toString();
    history.replaceState(null, "", location.pathname + (text ? "?" + text : "") + location.hash);
  }

  /* ------------------------------------------------------------------------------------ sorting */
  function key(td) { var v = td.getAttribute("data-v"); return v === null ? td.textContent.trim() : v; }
  function sortBy(table, index, ascending) {
    var th = table.tHead.rows[0].cells[index];
    var numeric = th.getAttribute("data-num") === "1";
    each(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index]), y = key(b.cells[index]);
      if (x === "" || y === "") { return (x === "") - (y === ""); }  /* missing values last, either way */
      var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function columnOf(table, name) {
    var cells = table.tHead.rows[0].cells;
    for (var i = 0; i < cells.length; i++) { if (cells[i].getAttribute("data-key") === name) { return i; } }
    return -1;
  }
  function sortBoards(name, ascending) {  /* the leaderboards share their columns: they sort together */
    each(document.querySelectorAll("table.board"), function (t) {
      var i = columnOf(t, name);
      if (i >= 0) { sortBy(t, i, ascending); }
    });
  }
  each(document.querySelectorAll("table.sortable"), function (table) {
    each(table.tHead.rows[0].cells, function (th, index) {
      th.classList.add("sort");
      th.tabIndex = 0;
      th.title = (th.title ? th.title + " · " : "") + "click to sort";
      function go() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        if (table.classList.contains("board")) {
          sortBoards(th.getAttribute("data-key"), ascending);
          params.set("sort", th.getAttribute("data-key"));
          params.set("order", ascending ? "asc" : "desc");
          save();
        } else {
          sortBy(table, index, ascending);
        }
      }
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); }
      });
    });
  });
  if (params.get("sort")) { sortBoards(params.get("sort"), params.get("order") !== "desc"); }

  /* ------------------------------------------------------------------------------------ filters */
  var form = document.getElementById("filters");
  if (!form) { return; }
  form.hidden = false;
  var fields = Array.prototype.slice.call(form.querySelectorAll("select, input"));
  fields.forEach(function (f) {
    var v = params.get(f.name);
    if (v !== null) {
      f.value = v;
      if (f.tagName === "SELECT" && f.value !== v) { f.value = ""; }  /* a value this report does not have */
    }
  });
  function state() {
    var s = {};
    fields.forEach(function (f) { s[f.name] = f.value.trim(); });
    return s;
  }
  function keep(el, s) {
    var d = el.dataset;
    for (var i = 0; i < fields.length; i++) {
      var f = fields[i];
      if (f.tagName === "SELECT" && s[f.name] && d[f.name] !== s[f.name]) { return false; }
    }
    if (s.q && (d.model || "").toLowerCase().indexOf(s.q.toLowerCase()) < 0) { return false; }
    if (s.budget !== "" && !isNaN(Number(s.budget))) {
      if (d.lat === undefined || Number(d.lat) > Number(s.budget)) { return false; }
    }
    if (s.acc !== "" && !isNaN(Number(s.acc))) {
      if (d.acc === undefined || Number(d.acc) < Number(s.acc)) { return false; }
    }
    return true;
  }

  /* Pareto frontier of the points shown: lower x better, lower y better unless the plot says higher. */
  function frontier(points, higher) {
    var xs = points.map(function (p) { return Number(p.dataset.x); });
    var ys = points.map(function (p) { return higher ? -Number(p.dataset.y) : Number(p.dataset.y); });
    return points.map(function (p, i) {
      for (var j = 0; j < points.length; j++) {
        if (xs[j] <= xs[i] && ys[j] <= ys[i] && (xs[j] < xs[i] || ys[j] < ys[i])) { return false; }
      }
      return true;
    });
  }
  function overlaps(a, b) { return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]; }
  function candidates(x, y, w, h) {  /* as reports/svg.py _candidates */
    var out = [], d = GAP;
    CANDIDATES.forEach(function (c) {
      var tx = x + c[0] * d, x0 = c[2] === "start" ? tx : c[2] === "end" ? tx - w : tx - w / 2, y0;
      if (c[1] === 0) { y0 = y - h / 2; } else if (c[1] < 0) { y0 = y - (c[0] === 0 ? d : d * 0.6) * c[3] - h; }
      else { y0 = y + (c[0] === 0 ? d : d * 0.6) * c[3]; }
      out.push([[x0, y0, x0 + w, y0 + h], tx, y0 + h * 0.8, c[2]]);
    });
    return out;
  }
  function placeLabels(svg, front, shown) {
    var group = svg.querySelector("g.labels"), area = svg.querySelector("rect.area");
    while (group.firstChild) { group.removeChild(group.firstChild); }
    var frame = [Number(area.getAttribute("x")), Number(area.getAttribute("y"))];
    frame.push(frame[0] + Number(area.getAttribute("width")), frame[1] + Number(area.getAttribute("height")));
    var obstacles = shown.map(function (p) {
      var x = Number(p.dataset.px), y = Number(p.dataset.py);
      return [x - 5.5, y - 5.5, x + 5.5, y + 5.5];
    });
    for (var i = 1; i < front.length; i++) {  /* the frontier's step line (front is sorted by x) */
      var ax = Number(front[i - 1].dataset.px), ay = Number(front[i - 1].dataset.py);
      var bx = Number(front[i].dataset.px), by = Number(front[i].dataset.py);
      obstacles.push([ax, ay - 1, bx, ay + 1], [bx - 1, Math.min(ay, by), bx + 1, Math.max(ay, by)]);
    }
    var placed = [];
    front.forEach(function (p) {
      var x = Number(p.dataset.px), y = Number(p.dataset.py);
      var text = document.createElementNS("http://www.w3.org/2000/svg", "text");
      text.setAttribute("class", "lab");
      text.textContent = p.dataset.label;
      group.appendChild(text);
      var w = text.getComputedTextLength() + 1, h = parseFloat(getComputedStyle(text).fontSize);
      var spot = candidates(x, y, w, h).filter(function (c) {
        var b = c[0];
        return b[0] >= frame[0] && b[1] >= frame[1] && b[2] <= frame[2] && b[3] <= frame[3] &&
          !placed.some(function (o) { return overlaps(b, o); }) &&
          !obstacles.some(function (o) { return overlaps(b, o); });
      })[0];
      if (!spot) { group.removeChild(text); return; }
      placed.push(spot[0]);
      text.setAttribute("x", spot[1].toFixed(2));
      text.setAttribute("y", spot[2].toFixed(2));
      text.setAttribute("text-anchor", spot[3]);
    });
  }
  function redraw(svg, s) {
    var all = Array.prototype.slice.call(svg.querySelectorAll(".pt"));
    var shown = all.filter(function (p) { var on = keep(p, s); p.classList.toggle("off", !on); return on; });
    if (shown.length === all.length && !svg.dataset.redrawn) { return shown.length; }  /* as rendered */
    svg.dataset.redrawn = "1";
    var mask = frontier(shown, svg.dataset.higher === "1");
    var front = shown.filter(function (p, i) { p.classList.toggle("front", mask[i]); return mask[i]; });
    all.forEach(function (p) { if (p.classList.contains("off")) { p.classList.remove("front"); } });
    front.sort(function (a, b) { return Number(a.dataset.px) - Number(b.dataset.px); });
    var d = front.map(function (p, i) {
      return (i === 0 ? "M" + p.dataset.px + " " : "H" + p.dataset.px + "V") + p.dataset.py;
    }).join("");
    svg.querySelector("path.frontier").setAttribute("d", d);
    placeLabels(svg, front, shown);
    var table = document.getElementById(svg.id + "-data");
    if (table) {  /* the plot's data: a row per point, shown with it, its frontier cell recomputed */
      var on = {}, off = {};
      front.forEach(function (p) { on[p.dataset.i] = true; });
      all.forEach(function (p) { off[p.dataset.i] = p.classList.contains("off"); });
      each(table.querySelectorAll("tbody tr"), function (tr) {
        tr.hidden = off[tr.dataset.i];
        var cell = tr.querySelector("td.fr");
        if (cell) { cell.textContent = on[tr.dataset.i] ? "yes" : "no"; cell.setAttribute("data-v", on[tr.dataset.i] ? "yes" : "no"); }
      });
    }
    return shown.length;
  }
  function apply() {
    var s = state();
    each(document.querySelectorAll("tr[data-f]"), function (tr) { tr.hidden = !keep(tr, s); });
    each(document.querySelectorAll("table.board"), function (table) {
      var rows = table.tBodies[0].rows, shown = 0;
      each(rows, function (tr) { shown += tr.hidden ? 0 : 1; });
      var count = document.getElementById(table.id + "-count");
      if (count) { count.textContent = shown + " of " + rows.length + " rows shown"; }
    });
    var hidden = 0;
    each(document.querySelectorAll("figure.pareto"), function (figure) {
      var svg = figure.querySelector("svg.pareto");
      var shown = redraw(svg, s), total = svg.querySelectorAll(".pt").length;
      figure.hidden = shown === 0;
      hidden += shown === 0 ? 1 : 0;
      figure.querySelector(".count").textContent = shown + " of " + total + " points shown";
    });
    var filtered = fields.some(function (f) { return s[f.name] !== ""; });
    each(document.querySelectorAll("section.plots"), function (section) {  /* no plot shown: no heading */
      var figures = section.querySelectorAll("figure.pareto");
      var shown = Array.prototype.some.call(figures, function (f) { return !f.hidden; });
      section.hidden = figures.length ? !shown : filtered;
    });
    var note = document.getElementById("plots-hidden");
    if (note) { note.textContent = hidden ? hidden + " plots have no point matching the filters and are hidden." : ""; }
    fields.forEach(function (f) { if (s[f.name]) { params.set(f.name, s[f.name]); } else { params.delete(f.name); } });
    save();
  }
  fields.forEach(function (f) { f.addEventListener(f.tagName === "SELECT" ? "change" : "input", apply); });
  form.addEventListener("submit", function (e) { e.preventDefault(); });
  form.addEventListener("reset", function () { setTimeout(apply, 0); });
  apply();
})();
