// The fusion page: send the pair, show sources and results with one shared zoom and pan,
// the overlay with its opacity slider, and the metrics. Plain JavaScript, no build step.
"use strict";

const view = { scale: 1, x: 0, y: 0 };
let viewports = [];

function applyView() {
  for (const vp of viewports) {
    const w = vp.clientWidth;
    vp.firstElementChild.style.transform =
      `translate(${view.x * w}px, ${view.y * w}px) scale(${view.scale})`;
  }
}

// Zoom and pan are kept in units of the viewport width, so panels of any size stay in step.
function makeInteractive(vp) {
  vp.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = vp.getBoundingClientRect();
    const px = (e.clientX - r.left) / r.width, py = (e.clientY - r.top) / r.width;
    const factor = e.deltaY < 0 ? 1.2 : 1 / 1.2;
    const s = Math.min(Math.max(view.scale * factor, 1), 16);
    view.x = px - (px - view.x) * (s / view.scale);
    view.y = py - (py - view.y) * (s / view.scale);
    view.scale = s;
    applyView();
  }, { passive: false });
  vp.addEventListener("pointerdown", (e) => {
    vp.setPointerCapture(e.pointerId);
    vp.classList.add("dragging");
    let last = [e.clientX, e.clientY];
    const move = (ev) => {
      view.x += (ev.clientX - last[0]) / vp.clientWidth;
      view.y += (ev.clientY - last[1]) / vp.clientWidth;
      last = [ev.clientX, ev.clientY];
      applyView();
    };
    const up = () => {
      vp.classList.remove("dragging");
      vp.removeEventListener("pointermove", move);
      vp.removeEventListener("pointerup", up);
    };
    vp.addEventListener("pointermove", move);
    vp.addEventListener("pointerup", up);
  });
  vp.addEventListener("dblclick", () => { Object.assign(view, { scale: 1, x: 0, y: 0 }); applyView(); });
  viewports.push(vp);
}

function panel(title, url, download) {
  const box = document.createElement("div");
  const head = document.createElement("div");
  head.className = "panel-title";
  const h = document.createElement("strong");
  h.textContent = title;
  head.append(h);
  if (download) {
    const a = document.createElement("a");
    a.href = download;
    a.textContent = "download";
    a.className = "download";
    head.append(a);
  }
  const vp = document.createElement("div");
  vp.className = "viewport";
  const z = document.createElement("div");
  z.className = "zoomable";
  const img = document.createElement("img");
  img.src = url;
  img.alt = title;
  z.append(img);
  vp.append(z);
  box.append(head, vp);
  makeInteractive(vp);
  return box;
}

function showMessage(text) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.hidden = !text;
}

function render(data) {
  const notes = document.getElementById("notes");
  notes.textContent = data.warnings.join(" ");
  notes.hidden = data.warnings.length === 0;
  viewports = [];
  Object.assign(view, { scale: 1, x: 0, y: 0 });
  const panels = document.getElementById("panels");
  panels.replaceChildren(
    ...data.sources.map((s) => panel(s.label, s.url)),
    ...data.results.map((r) => panel(`fused: ${r.method}`, r.url, r.download)));
  document.getElementById("overlay-base").src = data.sources[0].url;
  document.getElementById("overlay-top").src = data.sources[1].url;
  makeInteractive(document.getElementById("overlay"));
  const table = document.getElementById("metrics");
  const head = document.createElement("tr");
  for (const label of ["method", ...data.metrics.map((m) => m.label)]) {
    const th = document.createElement("th");
    th.textContent = label;
    head.append(th);
  }
  const rows = data.results.map((r) => {
    const tr = document.createElement("tr");
    const cells = [r.method, ...data.metrics.map((m) => {
      const v = r.metrics[m.label];
      return v === null ? "n/a" : v.toFixed(4);
    })];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = c;
      tr.append(td);
    }
    return tr;
  });
  table.replaceChildren(head, ...rows);
  document.getElementById("metrics-legend").textContent = data.metrics
    .map((m) => `${m.label}: ${m.description} (${m.better} is better)`).join("; ");
  document.getElementById("results").hidden = false;
  applyView();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("fuse-form");
  const opacity = document.getElementById("opacity");
  const top = document.getElementById("overlay-top");
  const setOpacity = () => { top.style.opacity = opacity.value / 100; };
  opacity.addEventListener("input", setOpacity);
  setOpacity();
  window.addEventListener("resize", applyView);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showMessage("");
    const busy = document.getElementById("busy");
    busy.hidden = false;
    try {
      const resp = await fetch("/api/fuse", { method: "POST", body: new FormData(form) });
      let data;
      try { data = await resp.json(); } catch { data = { error: `the server answered ${resp.status}` }; }
      if (!resp.ok || data.error) {
        showMessage(data.error || `the server answered ${resp.status}`);
        document.getElementById("notes").hidden = true;
        document.getElementById("results").hidden = true;
      } else {
        render(data);
      }
    } catch (err) {
      showMessage(`could not reach the server (${err})`);
    } finally {
      busy.hidden = true;
    }
  });
});
