/**
 * The admin page: one self-contained HTML document (inline CSS and script, no build step, no
 * CDN), so it works offline and from a locked-down host. It polls `/clusters`, `/events` and
 * `/readyz` every 2 s (`?refresh=<ms>` to change) and renders with `textContent` only.
 */
export const ADMIN_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>proxyless admin</title>
<style>
  :root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --mute: #57606a; --line: #d0d7de; }
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
  header { background: #24292f; color: #fff; padding: 10px 20px; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header a { color: #9ecbff; }
  main { padding: 16px 20px; display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  h3 { font-size: 14px; margin: 14px 0 6px; display: flex; gap: 8px; align-items: center; }
  h4 { font-size: 13px; margin: 10px 0 4px; display: flex; gap: 8px; align-items: center; }
  .target { margin-left: 18px; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--mute); font-weight: 600; }
  .badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; color: #fff; }
  .ok { background: var(--ok); } .warn { background: var(--warn); } .bad { background: var(--bad); }
  .mute { color: var(--mute); }
  #events li { margin: 2px 0; } #events { padding-left: 18px; max-height: 70vh; overflow: auto; }
  #status { margin-left: auto; font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>proxyless</h1>
  <span id="ready" class="badge warn">…</span>
  <a href="/metrics">metrics</a><a href="/clusters">clusters</a><a href="/config_dump">config</a><a href="/events">events</a>
  <span id="status" class="mute"></span>
</header>
<main>
  <section><h2>Services</h2><div id="services"><p class="mute">loading…</p></div></section>
  <section><h2>Recent events</h2><ol id="events"></ol></section>
</main>
<script>
"use strict";
const refresh = Number(new URLSearchParams(location.search).get("refresh")) || 2000;
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function badge(text, kind) { return el("span", { class: "badge " + kind }, text); }
function endpointState(e) {
  if (e.ejected) return badge("ejected", "bad");
  if (e.unreachable) return badge("unreachable", "bad");
  if (e.health === "critical") return badge("unhealthy", "bad");
  if (e.health === "warning") return badge("warning", "warn");
  return badge("healthy", "ok");
}
function num(v, digits) { return v === undefined || v === null ? "–" : Number(v).toFixed(digits || 0); }
function serviceBlock(s, target) {
  const usable = s.endpoints.filter((e) => !e.ejected && !e.unreachable && e.health !== "critical").length;
  const title = el(target ? "h4" : "h3", target ? { "data-target": s.name } : { "data-service": s.name }, (target ? "\u21b3 " : "") + s.name,
    badge(usable + "/" + s.endpoints.length + " usable", usable === 0 ? "bad" : usable < s.endpoints.length ? "warn" : "ok"));
  if (s.circuitBreaker) title.append(badge("breaker " + s.circuitBreaker, s.circuitBreaker === "closed" ? "ok" : "bad"));
  if (s.stale) title.append(badge(s.staleForMs !== undefined ? "stale " + Math.round(s.staleForMs / 1000) + " s" : "stale", "warn"));
  if (s.panic) title.append(badge("panic", "bad"));
  if (s.priorities && s.priorities.some((l, i) => i > 0 && l.load > 0)) title.append(badge("priorities " + s.priorities.map((l) => "P" + l.priority + " " + l.load + "%").join(" / "), "warn"));
  if (!s.resolved) title.append(badge("resolving", "warn"));
  title.append(el("span", { class: "mute" }, [target ? "target" : "", s.policy, s.source, s.version !== undefined ? "v" + s.version : ""].filter(Boolean).join(" \u00b7 ")));
  const table = el("table", {}, el("tr", {}, ...["endpoint", "state", "in flight", "EWMA ms", "requests", "failures", "conns", "zone", "priority"].map((h) => el("th", {}, h))));
  for (const e of s.endpoints) {
    table.append(el("tr", { "data-endpoint": e.id }, el("td", {}, e.id), el("td", {}, endpointState(e)), el("td", {}, num(e.inFlight)),
      el("td", {}, num(e.ewmaMs, 1)), el("td", {}, num(e.requests)), el("td", {}, num(e.failures)), el("td", {}, num(e.connections)), el("td", {}, e.zone || ""), el("td", {}, e.priority ? String(e.priority) : "")));
  }
  return [title, table];
}
function renderServices(services) {
  const root = document.getElementById("services");
  root.replaceChildren();
  if (services.length === 0) root.append(el("p", { class: "mute" }, "no services yet"));
  for (const s of services) {
    root.append(...serviceBlock(s, false));
    // A routed service's calls go through its routing targets: each its own destination.
    for (const t of s.targets || []) root.append(el("div", { class: "target" }, ...serviceBlock(t, true)));
  }
}
function renderEvents(events) {
  const root = document.getElementById("events");
  root.replaceChildren(...events.slice(-100).reverse().map((e) =>
    el("li", { "data-type": e.type }, el("span", { class: "mute" }, e.time.slice(11, 23) + " "), (e.service ? e.service + ": " : ""), e.detail)));
}
async function tick() {
  try {
    const [c, ev, r] = await Promise.all([fetch("/clusters"), fetch("/events"), fetch("/readyz")]);
    renderServices((await c.json()).services);
    renderEvents((await ev.json()).events);
    const ready = r.ok;
    const rb = document.getElementById("ready");
    rb.textContent = ready ? "ready" : "not ready";
    rb.className = "badge " + (ready ? "ok" : "warn");
    document.getElementById("status").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    document.getElementById("status").textContent = "admin server unreachable: " + err;
  }
  setTimeout(tick, refresh);
}
tick();
</script>
</body>
</html>
`;
