// Draws the memory graph of hivegraph's `memory graph` page: one SVG element per node and edge,
// laid out once by d3-force (inlined before this script), then moved by hand (drag, pan, zoom).
// Data is shown with textContent only, never parsed as HTML.
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const data = JSON.parse(document.getElementById("hg-data").textContent);
  const NODE_COLOURS = { Task: "#4e79a7", Insight: "#f28e2b", Message: "#59a14f", Memory: "#af7aa1", Entity: "#9c755f" };
  const EDGE_COLOURS = {
    SIMILAR: "#4e79a7", HAS_STEP: "#bdb5b0", NEXT: "#59a14f", ANSWERS: "#76b7b2",
    SUPPORTS: "#e0a800", CONTRADICTS: "#e15759", MENTIONS: "#af7aa1",
  };
  const TIER = { Insight: -1, Task: 0, Message: 1, Memory: -0.4, Entity: 0.4 };
  const ENTITY_SIDE = { Memory: true, Entity: true };

  const svg = document.getElementById("hg-graph");
  const width = svg.clientWidth || 960;
  const height = svg.clientHeight || 640;
  const nodes = data.nodes.map((n) => Object.assign({}, n));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const links = data.edges
    .filter((e) => byId.has(e.source) && byId.has(e.target))
    .map((e) => Object.assign({}, e));
  const split = nodes.some((n) => !ENTITY_SIDE[n.label]) && nodes.some((n) => ENTITY_SIDE[n.label]);

  function el(name, parent, attrs) {
    const node = document.createElementNS(SVG, name);
    for (const key in attrs || {}) node.setAttribute(key, String(attrs[key]));
    if (parent) parent.appendChild(node);
    return node;
  }
  function html(name, parent, text, attrs) {
    const node = document.createElement(name);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const key in attrs || {}) node.setAttribute(key, String(attrs[key]));
    if (parent) parent.appendChild(node);
    return node;
  }
  function short(text, n) {
    const flat = String(text || "").replace(/\s+/g, " ").trim();
    return flat.length > n ? flat.slice(0, n - 1) + "\u2026" : flat;
  }
  function score(n) {
    const value = Number(n.properties.score);
    return Number.isFinite(value) ? value : 0;
  }
  function radius(n) {
    switch (n.label) {
      case "Task": return 9;
      case "Insight": return 6 + Math.min(6, 1.5 * Math.max(score(n), 0));
      case "Memory": return 6;
      default: return 5;
    }
  }
  function caption(n) {
    const p = n.properties;
    switch (n.label) {
      case "Insight": return "\u2605" + score(n) + " " + short(n.text, 30);
      case "Task": return short(n.text, 34) + (p.outcome === "success" ? " \u2713" : p.outcome === "failure" ? " \u2717" : "");
      case "Message": return (p.agent ? p.agent + " " : "") + "#" + (p.step !== undefined ? p.step : "?");
      case "Memory": return short(n.text, 24);
      default: return short(n.text, 24);
    }
  }
  function homeX(n) {
    if (!split) return 0;
    return ENTITY_SIDE[n.label] ? width * 0.3 : -width * 0.15;
  }
  function homeY(n) {
    return TIER[n.label] * height * 0.3;
  }

  // ---- layout: run the simulation to rest before drawing (the first paint is the final picture)
  if (nodes.length) {
    const distance = { HAS_STEP: 70, NEXT: 55, ANSWERS: 55, SIMILAR: 140, SUPPORTS: 140, CONTRADICTS: 140, MENTIONS: 70 };
    const simulation = d3.forceSimulation(nodes)
      .force("link", d3.forceLink(links).id((d) => d.id).distance((l) => distance[l.type] || 60).strength(0.3))
      .force("charge", d3.forceManyBody().strength(-160).distanceMax(400))
      .force("x", d3.forceX(homeX).strength(0.05))
      .force("y", d3.forceY(homeY).strength(0.3))
      .force("collide", d3.forceCollide((d) => radius(d) + 14).strength(0.9))
      .stop();
    simulation.tick(Math.min(500, 150 + nodes.length));
  }

  // ---- drawing
  const defs = el("defs", svg);
  for (const type in EDGE_COLOURS) {
    const marker = el("marker", defs, {
      id: "hg-arrow-" + type, viewBox: "0 -4 8 8", refX: 8, refY: 0, markerWidth: 8, markerHeight: 8, orient: "auto",
      markerUnits: "userSpaceOnUse",
    });
    el("path", marker, { d: "M0,-4L8,0L0,4", fill: EDGE_COLOURS[type] });
  }
  const root = el("g", svg, { id: "hg-root" });
  const bands = el("g", root, { class: "hg-bands" });
  const edgeLayer = el("g", root, { class: "hg-edges" });
  const nodeLayer = el("g", root, { class: "hg-nodes" });

  for (const l of links) {
    l.el = el("line", edgeLayer, {
      class: "hg-edge", "data-id": l.id, "data-type": l.type, stroke: EDGE_COLOURS[l.type],
      "stroke-width": l.type === "SIMILAR" ? 1 + 2 * Math.max(0, Math.min(1, l.weight)) : 1.3,
      "marker-end": "url(#hg-arrow-" + l.type + ")",
    });
    el("title", l.el).textContent = l.type + (l.type === "SIMILAR" ? " (similarity " + l.weight.toFixed(2) + ")" : "");
  }
  for (const n of nodes) {
    const g = el("g", nodeLayer, { class: "hg-node", "data-id": n.id, "data-label": n.label });
    el("circle", g, { r: radius(n), fill: NODE_COLOURS[n.label] || "#999" });
    el("text", g, { x: radius(n) + 3, y: 4 }).textContent = caption(n);
    el("title", g).textContent = n.label + ": " + short(n.text, 300);
    n.el = g;
  }
  if (!nodes.length) {
    el("text", svg, { x: width / 2, y: height / 2, "text-anchor": "middle", class: "hg-empty" })
      .textContent = "No current graph nodes in this scope.";
  }

  function place() {
    for (const l of links) {
      const s = l.source, t = l.target;
      const dx = t.x - s.x, dy = t.y - s.y, d = Math.hypot(dx, dy) || 1;
      const rs = radius(s), rt = radius(t) + 2;
      l.el.setAttribute("x1", (s.x + (dx * rs) / d).toFixed(1));
      l.el.setAttribute("y1", (s.y + (dy * rs) / d).toFixed(1));
      l.el.setAttribute("x2", (t.x - (dx * rt) / d).toFixed(1));
      l.el.setAttribute("y2", (t.y - (dy * rt) / d).toFixed(1));
    }
    for (const n of nodes) n.el.setAttribute("transform", "translate(" + n.x.toFixed(1) + "," + n.y.toFixed(1) + ")");
  }
  place();

  // tier names at the left of each band that has nodes
  const bounds = nodes.reduce(
    (b, n) => ({ x0: Math.min(b.x0, n.x), x1: Math.max(b.x1, n.x), y0: Math.min(b.y0, n.y), y1: Math.max(b.y1, n.y) }),
    { x0: Infinity, x1: -Infinity, y0: Infinity, y1: -Infinity },
  );
  const tiers = [["Insight", "insights"], ["Task", "tasks"], ["Message", "interactions"]];
  for (const [label, name] of tiers) {
    const members = nodes.filter((n) => n.label === label);
    if (!members.length) continue;
    const y = members.reduce((sum, n) => sum + n.y, 0) / members.length;
    el("text", bands, { x: bounds.x0 - 120, y: y, class: "hg-band" }).textContent = name;
  }
  if (split) {
    el("text", bands, { x: width * 0.3 - 40, y: bounds.y0 - 24, class: "hg-band" }).textContent = "entity graph";
  }

  // ---- view: fit, pan, zoom
  const view = { k: 1, x: width / 2, y: height / 2 };
  if (nodes.length) {
    const w = bounds.x1 - bounds.x0 + 360, h = bounds.y1 - bounds.y0 + 100;
    view.k = Math.min(width / w, height / h, 2);
    view.x = width / 2 - view.k * (bounds.x0 - 130 + w / 2);
    view.y = height / 2 - view.k * (bounds.y0 + (bounds.y1 - bounds.y0) / 2);
  }
  function applyView() {
    root.setAttribute("transform", "translate(" + view.x.toFixed(1) + "," + view.y.toFixed(1) + ") scale(" + view.k.toFixed(4) + ")");
  }
  applyView();
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const factor = Math.exp(-event.deltaY * 0.0015);
    const box = svg.getBoundingClientRect();
    const px = event.clientX - box.left, py = event.clientY - box.top;
    const k = Math.max(0.05, Math.min(8, view.k * factor));
    view.x = px - ((px - view.x) * k) / view.k;
    view.y = py - ((py - view.y) * k) / view.k;
    view.k = k;
    applyView();
  }, { passive: false });

  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    const g = event.target.closest ? event.target.closest(".hg-node") : null;
    drag = { node: g ? byId.get(g.getAttribute("data-id")) : null, x: event.clientX, y: event.clientY, moved: false };
    if (!drag.node) svg.classList.add("hg-panning");
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
    drag.x = event.clientX;
    drag.y = event.clientY;
    if (drag.node) {
      drag.node.x += dx / view.k;
      drag.node.y += dy / view.k;
      place();
    } else {
      view.x += dx;
      view.y += dy;
      applyView();
    }
  });
  svg.addEventListener("pointerup", () => {
    if (drag && drag.node && !drag.moved) select(drag.node);
    svg.classList.remove("hg-panning");
    drag = null;
  });

  // ---- details of the selected node
  const details = document.getElementById("hg-details");
  let selected = null;
  function select(n) {
    if (selected) selected.el.classList.remove("hg-selected");
    selected = n;
    n.el.classList.add("hg-selected");
    while (details.childNodes.length > 1) details.removeChild(details.lastChild);
    html("div", details, n.text, { class: "hg-text" });
    const dl = html("dl", details);
    const rows = [["label", n.label], ["id", n.id], ["scope", scopeText(n.scope)]];
    for (const key of Object.keys(n.properties).sort()) rows.push([key, n.properties[key]]);
    for (const [key, value] of rows) {
      html("dt", dl, key);
      html("dd", dl, value);
    }
    const touching = links.filter((l) => l.source === n || l.target === n);
    if (touching.length) {
      html("h2", details, "Edges (" + touching.length + ")");
      const ul = html("ul", details);
      for (const l of touching) {
        const out = l.source === n;
        const other = out ? l.target : l.source;
        const li = html("li", ul, (out ? l.type + " \u2192 " : "\u2190 " + l.type + " ") );
        const a = html("a", li, other.label + ": " + short(other.text, 40));
        a.addEventListener("click", () => select(other));
      }
    }
  }
  function scopeText(scope) {
    const parts = Object.keys(scope || {}).map((k) => k + "=" + scope[k]);
    return parts.length ? parts.join(", ") : "(every scope)";
  }

  // ---- legend: show or hide labels and edge types
  const legend = document.getElementById("hg-legend");
  const hidden = new Set();
  function refresh() {
    for (const n of nodes) n.el.classList.toggle("hg-hidden", hidden.has(n.label));
    for (const l of links) {
      const off = hidden.has(l.type) || hidden.has(l.source.label) || hidden.has(l.target.label);
      l.el.classList.toggle("hg-hidden", off);
    }
  }
  function toggle(key, colour, count, line) {
    const label = html("label", legend);
    const box = html("input", label, null, { type: "checkbox" });
    box.checked = true;
    box.addEventListener("change", () => {
      if (box.checked) hidden.delete(key); else hidden.add(key);
      refresh();
    });
    html("span", label, null, { class: "hg-swatch" + (line ? " hg-line" : ""), style: "background:" + colour });
    html("span", label, key);
    html("span", label, count, { class: "hg-count" });
  }
  for (const label in NODE_COLOURS) {
    const count = nodes.filter((n) => n.label === label).length;
    if (count) toggle(label, NODE_COLOURS[label], count, false);
  }
  for (const type in EDGE_COLOURS) {
    const count = links.filter((l) => l.type === type).length;
    if (count) toggle(type, EDGE_COLOURS[type], count, true);
  }

  // ---- search
  document.getElementById("hg-search").addEventListener("input", (event) => {
    const query = event.target.value.trim().toLowerCase();
    for (const n of nodes) {
      const hit = !query || n.text.toLowerCase().includes(query) || n.id.toLowerCase().includes(query);
      n.el.classList.toggle("hg-dim", !hit);
    }
    for (const l of links) l.el.classList.toggle("hg-dim", !!query);
  });

  // ---- summary line
  const summary = document.getElementById("hg-summary");
  const total = Object.values(data.totals).reduce((a, b) => a + b, 0);
  summary.textContent = nodes.length + " of " + total + " nodes, " + links.length + " edges \u00b7 scope " +
    scopeText(data.scope) + " \u00b7 " + data.generated;
  if (data.truncated) {
    html("span", summary, " \u00b7 limited to " + data.limit + " nodes (raise --limit, or use --focus)", { class: "hg-warn" });
  }
  document.documentElement.setAttribute("data-hg-nodes", String(nodes.length));
  document.documentElement.setAttribute("data-hg-edges", String(links.length));
  document.documentElement.setAttribute("data-hg-ready", "true");
})();
