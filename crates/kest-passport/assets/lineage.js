// The Kest lineage view. Reads each JSON data block (script.kest-data),
// lays its DAG out in layers and draws it into the section that holds it. Every text
// from a passport goes in through textContent: nothing it holds is ever parsed as HTML.
(function () {
  "use strict";
  var W = 200, H = 86, GAP_X = 28, GAP_Y = 36, PAD = 16;
  var COLLAPSE_OVER = 60, RUN_MIN = 12, RUN_KEEP = 3;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // A verified entry's time is any integer up to 2^53 - 1 and more than a Date can hold:
  // show the number when it is not a date, never throw.
  function when(ms) {
    var date = new Date(ms);
    return isFinite(date.getTime()) ? date.toISOString() : String(ms) + " ms (not a representable date)";
  }

  function render(section, data) {
    var entries = data.entries, n = entries.length;
    var canvas = section.querySelector(".kest-canvas");
    var details = section.querySelector(".kest-details");
    var expanded = {};
    var children = entries.map(function () { return []; });
    entries.forEach(function (e) {
      e.parent_indices.forEach(function (p) { children[p].push(e.index); });
    });
    // Linear runs: consecutive entries with one parent that has one child.
    function inRun(i) {
      var e = entries[i];
      return e.parent_indices.length === 1 && children[e.parent_indices[0]].length === 1 && children[i].length <= 1;
    }
    function runs() {
      var found = [], i = 0;
      if (n <= COLLAPSE_OVER) return found;
      while (i < n) {
        if (inRun(i)) {
          var start = i;
          while (i + 1 < n && inRun(i + 1) && entries[i + 1].parent_indices[0] === i) i++;
          if (i - start + 1 >= RUN_MIN) found.push([start, i]);
        }
        i++;
      }
      return found;
    }
    function select(index) {
      var previous = canvas.querySelector(".kest-node.selected");
      if (previous) previous.classList.remove("selected");
      var node = canvas.querySelector('.kest-node[data-entry-index="' + index + '"]');
      if (node) { node.classList.add("selected"); node.scrollIntoView({ block: "nearest", inline: "nearest" }); }
      show(entries[index]);
    }
    function row(dl, name, value) {
      dl.appendChild(el("dt", null, name));
      var dd = el("dd");
      if (value instanceof Node) dd.appendChild(value); else dd.textContent = value === undefined || value === null ? "" : String(value);
      dl.appendChild(dd);
    }
    function show(e) {
      details.textContent = "";
      details.appendChild(el("h3", null, "#" + e.index + " " + e.operation));
      var dl = el("dl", "kest-entry-details");
      dl.setAttribute("data-entry-index", String(e.index));
      row(dl, "entry_id", e.entry_id);
      row(dl, "principal", e.principal);
      row(dl, "classification", e.payload.classification);
      row(dl, "trust", e.trust + (e.raised ? " (raised from " + e.bound + (e.declared ? ", declared" : ", not declared") + ")" : ""));
      row(dl, "taints", e.taints.join(", "));
      row(dl, "added", (e.payload.added_taints || []).join(", "));
      row(dl, "removed", (e.payload.removed_taints || []).join(", "));
      row(dl, "hash", e.hash);
      var parents = el("div", "kest-parents");
      if (e.parent_indices.length === 0) parents.textContent = "root";
      e.parents.forEach(function (hash, k) {
        var link = el("a", null, hash.slice(0, 16) + "…");
        var target = e.parent_links[k];
        if (target !== null) link.addEventListener("click", function () { select(target); });
        parents.appendChild(link);
        parents.appendChild(document.createElement("br"));
      });
      row(dl, "parents", parents);
      row(dl, "time", when(e.payload.timestamp_ms));
      row(dl, "runtime", (e.payload.runtime || {}).name + " " + (e.payload.runtime || {}).version);
      row(dl, "labels", el("pre", "kest-labels", JSON.stringify(e.payload.labels, null, 1)));
      row(dl, "policy context", el("pre", "kest-policy", JSON.stringify(e.payload.policy_context, null, 1)));
      if (e.fault) row(dl, "fault", e.fault);
      details.appendChild(dl);
    }
    function layout() {
      canvas.textContent = "";
      var hidden = {}, placeholders = {};
      runs().forEach(function (r) {
        var key = r[0] + "-" + r[1];
        if (expanded[key]) return;
        for (var i = r[0] + RUN_KEEP; i <= r[1] - RUN_KEEP; i++) hidden[i] = key;
        placeholders[r[0] + RUN_KEEP] = { key: key, count: r[1] - r[0] + 1 - 2 * RUN_KEEP };
      });
      // Layers: longest path from a root, counting a collapsed run as one step.
      var layer = new Array(n), slot = {};
      for (var i = 0; i < n; i++) {
        var l = 0;
        entries[i].parent_indices.forEach(function (p) { l = Math.max(l, layer[p] + (hidden[p] && hidden[i] === hidden[p] ? 0 : 1)); });
        layer[i] = l;
      }
      var perLayer = {}, pos = {}, maxX = 0, maxY = 0;
      function place(key, l) {
        var c = perLayer[l] || 0; perLayer[l] = c + 1;
        var p = { x: PAD + c * (W + GAP_X), y: PAD + l * (H + GAP_Y) };
        maxX = Math.max(maxX, p.x + W); maxY = Math.max(maxY, p.y + H);
        pos[key] = p; return p;
      }
      var svgNS = "http://www.w3.org/2000/svg";
      var svg = document.createElementNS(svgNS, "svg");
      canvas.appendChild(svg);
      for (var j = 0; j < n; j++) {
        var e = entries[j];
        if (hidden[j]) {
          var ph = placeholders[j];
          if (ph) {
            var p0 = place("run" + j, layer[j]);
            var run = el("div", "kest-run", "… " + ph.count + " entries in a straight line (click to show)");
            run.style.left = p0.x + "px"; run.style.top = p0.y + "px";
            run.addEventListener("click", (function (key) { return function () { expanded[key] = true; layout(); }; })(ph.key));
            canvas.appendChild(run);
            pos[j] = p0;
          } else {
            pos[j] = pos["run" + (function () { for (var k = j; k >= 0; k--) if (placeholders[k]) return k; return j; })()];
          }
          continue;
        }
        var p = place(j, layer[j]);
        var node = el("div", "kest-node" + (e.raised ? " raised" : "") + (e.fault ? " faulty" : ""));
        node.setAttribute("data-entry-index", String(e.index));
        node.setAttribute("data-entry-id", e.entry_id);
        node.setAttribute("tabindex", "0");
        node.style.left = p.x + "px"; node.style.top = p.y + "px";
        node.appendChild(el("div", "op", "#" + e.index + " " + e.operation));
        node.appendChild(el("div", "who", e.principal));
        node.appendChild(el("div", "trust", "trust " + e.trust + (e.raised ? " ▲ from " + e.bound : "")));
        var tags = el("div", "taints");
        e.taints.forEach(function (t) { tags.appendChild(el("span", "kest-taint", t)); });
        node.appendChild(tags);
        node.addEventListener("click", (function (index) { return function () { select(index); }; })(e.index));
        canvas.appendChild(node);
      }
      (data.denials || []).forEach(function (d, k) {
        var l = d.after === null ? 0 : layer[d.after] + 1;
        var p = place("denial" + k, l);
        var box = el("div", "kest-denial");
        box.setAttribute("data-denial-index", String(k));
        box.appendChild(el("div", "op", "denied: " + d.operation));
        box.appendChild(el("div", "who", d.principal));
        box.appendChild(el("div", null, d.policy + ": " + d.reason));
        box.style.left = p.x + "px"; box.style.top = p.y + "px";
        canvas.appendChild(box);
        if (d.after !== null) edge(svg, pos[d.after], p, "#b3261e");
      });
      for (var m = 0; m < n; m++) {
        entries[m].parent_indices.forEach(function (par) {
          if (hidden[m] && hidden[m] === hidden[par]) return;
          edge(svg, pos[par], pos[m], "#9aa5b5");
        });
      }
      canvas.style.width = maxX + PAD + "px"; canvas.style.height = maxY + PAD + "px";
      svg.setAttribute("width", maxX + PAD); svg.setAttribute("height", maxY + PAD);
    }
    function edge(svg, from, to, colour) {
      if (!from || !to || from === to) return;
      var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      var x1 = from.x + W / 2, y1 = from.y + H, x2 = to.x + W / 2, y2 = to.y;
      path.setAttribute("d", "M" + x1 + "," + y1 + " C" + x1 + "," + (y1 + GAP_Y / 2) + " " + x2 + "," + (y2 - GAP_Y / 2) + " " + x2 + "," + y2);
      path.setAttribute("fill", "none"); path.setAttribute("stroke", colour); path.setAttribute("stroke-width", "1.5");
      svg.appendChild(path);
    }
    layout();
    if (n > 0) show(entries[n - 1]);
  }

  // One passport that cannot be drawn never keeps the others from being drawn.
  document.querySelectorAll("script.kest-data").forEach(function (script) {
    try {
      render(script.parentNode, JSON.parse(script.textContent));
    } catch (error) {
      var note = el("p", "kest-draw-error", "this passport could not be drawn: " + error);
      script.parentNode.appendChild(note);
    }
  });
})();
