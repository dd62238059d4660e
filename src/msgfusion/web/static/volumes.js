// The volume page: upload two volumes, follow the job, read the result in NiiVue.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { job: null, timer: null, sources: null, fused: null };
window.msgfusionViewer = state; // what the browser tests look at

function show(id, visible) { $(id).hidden = !visible; }

function message(text) {
  $("message").textContent = text;
  show("message", Boolean(text));
}

function niivueAvailable() { return typeof window.niivue !== "undefined"; }

async function submit(event) {
  event.preventDefault();
  message("");
  show("results", false);
  show("qa-section", false);
  const form = new FormData($("volume-form"));
  $("fuse-button").disabled = true;
  try {
    const answer = await fetch("/api/volume-jobs", { method: "POST", body: form });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.error || answer.statusText);
    state.job = body;
    show("job", true);
    poll();
  } catch (err) {
    message(String(err.message || err));
    $("fuse-button").disabled = false;
  }
}

async function poll() {
  const answer = await fetch(state.job.url);
  const job = await answer.json();
  if (!answer.ok) { finish(job.error || answer.statusText); return; }
  state.job = job;
  $("stage").textContent = job.status;
  $("progress").value = job.progress;
  if (["queued", "reading", "registering", "fusing"].includes(job.status)) {
    state.timer = setTimeout(poll, 400);
    return;
  }
  if (job.qa) {
    $("qa").src = job.qa;
    $("registration").textContent = job.registration;
    show("qa-section", true);
  }
  if (job.status === "done") { finish(""); await view(job); return; }
  if (job.status === "doubtful") {
    finish("The registration looks doubtful, so nothing was fused: " + job.message +
           ". Check the figure below; to fuse anyway, tick \"fuse even if the registration " +
           "looks doubtful\" and fuse again.");
    return;
  }
  finish(job.status === "cancelled" ? "Cancelled." : job.message);
}

function finish(text) {
  show("job", false);
  $("fuse-button").disabled = false;
  message(text);
}

async function cancel() {
  if (state.job) await fetch(state.job.url + "/cancel", { method: "POST" });
}

function colormap(scale) {
  const n = scale.rgb.length;
  return {
    R: scale.rgb.map((c) => c[0]), G: scale.rgb.map((c) => c[1]), B: scale.rgb.map((c) => c[2]),
    A: scale.rgb.map((_, i) => (i === 0 ? 0 : 255)),
    I: scale.rgb.map((_, i) => Math.round((i * 255) / (n - 1))),
  };
}

function drawColorbar(scale) {
  const canvas = $("colorbar");
  const ctx = canvas.getContext("2d");
  const gradient = ctx.createLinearGradient(0, 0, canvas.width, 0);
  scale.rgb.forEach((c, i) => gradient.addColorStop(i / (scale.rgb.length - 1), `rgb(${c})`));
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  $("cb-low").textContent = `${scale.low} (low ${scale.unit})`;
  $("cb-high").textContent = `${scale.high} (high ${scale.unit})`;
  $("cb-meaning").textContent = scale.meaning;
}

function metricsTable(job) {
  const table = $("metrics");
  table.textContent = "";
  const head = table.insertRow();
  ["method", "NIfTI", "DICOM", ...job.metric_labels.map((m) => m.label)].forEach((t) => {
    const th = document.createElement("th");
    th.textContent = t;
    head.appendChild(th);
  });
  job.results.forEach((r) => {
    const row = table.insertRow();
    row.insertCell().textContent = r.method;
    [["NIfTI", r.download], ["DICOM (zip)", r.dicom]].forEach(([label, url]) => {
      const a = document.createElement("a");
      a.href = url;
      a.textContent = label;
      row.insertCell().appendChild(a);
    });
    job.metric_labels.forEach((m) => {
      const v = r.metrics[m.label];
      row.insertCell().textContent = v === null ? "n/a" : v.toFixed(4);
    });
  });
  $("metrics-legend").textContent = job.metric_labels
    .map((m) => `${m.label}: ${m.description} (${m.better} is better)`).join("; ");
}

async function view(job) {
  show("results", true);
  drawColorbar(job.scale);
  metricsTable(job);
  const choice = $("result-choice");
  choice.textContent = "";
  job.results.forEach((r, i) => choice.add(new Option(r.method, String(i))));
  [$("mr-low").value, $("mr-high").value] = job.mr_range;
  if (!niivueAvailable()) return;
  const options = { backColor: [0, 0, 0, 1], isColorbar: true, show3Dcrosshair: true,
                    isRadiologicalConvention: true, dragMode: 1 };
  if (!state.sources) {
    state.sources = new niivue.Niivue(options);
    await state.sources.attachToCanvas($("nv-sources"));
    state.fused = new niivue.Niivue({ ...options, isColorbar: false });
    await state.fused.attachToCanvas($("nv-fused"));
    state.sources.broadcastTo(state.fused, { "2d": true, "3d": true });
    state.fused.broadcastTo(state.sources, { "2d": true, "3d": true });
  }
  const nv = state.sources;
  nv.addColormap("msgfusion-func", colormap(job.scale));
  await nv.loadVolumes([
    { url: job.sources.mr, name: "mr.nii.gz", colormap: "gray",
      cal_min: job.mr_range[0], cal_max: job.mr_range[1] },
    { url: job.sources.func, name: "func.nii.gz", colormap: "msgfusion-func",
      opacity: $("opacity").value / 100, cal_min: job.scale.low, cal_max: job.scale.high },
  ]);
  await showResult(0);
  setView();
  state.ready = true;
}

async function showResult(index) {
  await state.fused.loadVolumes([{ url: state.job.results[index].url, name: "fused.nii.gz" }]);
  state.shown = index;
}

function setView() {
  const type = Number($("view").value);
  state.sources.setSliceType(type);
  state.fused.setSliceType(type);
}

function setSlice() {
  // the slider moves the cursor through the volume along the axis of the view (z for axial and
  // multiplanar views, y for coronal, x for sagittal); both viewers follow
  const axis = { 0: 2, 1: 1, 2: 0, 3: 2, 4: 2 }[Number($("view").value)];
  for (const nv of [state.sources, state.fused]) {
    const pos = [...nv.scene.crosshairPos];
    pos[axis] = $("slice").value / 1000;
    nv.scene.crosshairPos = pos;
    nv.drawScene();
  }
}

function setWindow() {
  const vol = state.sources.volumes[0];
  vol.cal_min = Number($("mr-low").value);
  vol.cal_max = Number($("mr-high").value);
  state.sources.updateGLVolume();
}

document.addEventListener("DOMContentLoaded", () => {
  $("volume-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  $("view").addEventListener("change", () => state.sources && setView());
  $("opacity").addEventListener("input", () => {
    if (state.sources) state.sources.setOpacity(1, $("opacity").value / 100);
  });
  $("slice").addEventListener("input", () => state.sources && setSlice());
  for (const id of ["mr-low", "mr-high"]) {
    $(id).addEventListener("change", () => state.sources && setWindow());
  }
  $("result-choice").addEventListener("change", () => showResult(Number($("result-choice").value)));
});
