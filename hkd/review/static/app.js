// The IMIL review page: plain JavaScript, no build step.
"use strict";
// Access: the session cookie set when the page was opened with ?token= (HttpOnly; sent by the browser).
const $ = (id) => document.getElementById(id);
const state = { round: null, samples: [], marks: {}, index: 0, regions: [], tool: "rect",
  zoom: 1, image: null, cam: null, drawing: null, dirty: false };

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = src;
  });
}

async function loadRounds() {
  const { rounds } = await api("api/rounds");
  const select = $("round");
  select.innerHTML = "";
  for (const r of rounds) {
    const option = document.createElement("option");
    option.value = r.round;
    option.textContent = `round ${r.round} (epoch ${r.epoch})` + (r.kind === "proposals" ? " · proposals to confirm" : "")
      + (r.closed ? " · closed" : "");
    select.appendChild(option);
  }
  if (!rounds.length) { $("message").textContent = "No IMIL round is waiting for review."; return; }
  await openRound(Number(select.value));
}

async function openRound(number) {
  const data = await api(`api/rounds/${number}`);
  state.round = number;
  state.samples = data.samples;
  state.proposals = data.kind === "proposals";
  $("accept").hidden = $("proposal-toggle").hidden = !state.proposals;
  $("skip").textContent = state.proposals ? "reject proposal" : "not an error / skip";
  state.marks = data.marks;
  state.closed = data.closed;  // training took this round's marks: read-only
  for (const id of ["save", "skip", "accept", "undo"]) $(id).disabled = Boolean(state.closed);
  $("export").href = `api/rounds/${number}/coco`;
  const firstOpen = state.samples.findIndex((s) => !state.marks[s.id]);
  await openSample(firstOpen >= 0 ? firstOpen : 0);
}

function renderQueue() {
  const nav = $("queue");
  nav.innerHTML = "";
  state.samples.forEach((s, i) => {
    const button = document.createElement("button");
    const mark = state.marks[s.id];
    button.className = (i === state.index ? "current " : "") + (mark ? mark.status : "");
    button.dataset.id = s.id;
    button.innerHTML = `<span class="dot"></span>${s.id} · ${s.label}`;
    button.onclick = () => openSample(i);
    nav.appendChild(button);
  });
  const done = state.samples.filter((s) => state.marks[s.id]).length;
  $("progress").textContent = `${done} / ${state.samples.length} done`;
}

async function openSample(index) {
  if (state.dirty && !confirm("Discard the unsaved marks of this sample?")) return;
  state.index = Math.max(0, Math.min(index, state.samples.length - 1));
  const s = state.samples[state.index];
  const mark = state.marks[s.id];
  state.regions = mark ? JSON.parse(JSON.stringify(mark.regions)) : [];
  state.dirty = false;
  $("label").textContent = s.label;
  $("prediction").textContent = s.prediction;
  $("confidence").textContent = (100 * s.confidence).toFixed(0) + "%";
  $("status").textContent = mark ? `${mark.status} by ${mark.who || "?"} (${mark.regions.length} regions)` : "not reviewed";
  $("comment").value = mark ? mark.comment : "";
  $("file").textContent = s.file || `row ${s.idx}`;
  if (state.closed) $("message").textContent = `Round ${state.round} was closed at ${state.closed}, when training took its marks: read-only.`;
  [state.image, state.cam, state.proposal] = await Promise.all([
    loadImage(`api/rounds/${state.round}/samples/${s.id}/image`),
    loadImage(`api/rounds/${state.round}/samples/${s.id}/cam`),
    s.proposal ? loadImage(`api/rounds/${state.round}/samples/${s.id}/proposal`) : null]);
  const fit = Math.min(($("stage").clientWidth - 4) / state.image.width, ($("stage").clientHeight - 4) / state.image.height);
  state.zoom = Math.max(0.1, Math.min(8, fit));  // fit the stage: small images are enlarged
  renderQueue();
  draw();
}

function drawRegions(context) {
  // Regions in order on an offscreen mask: erasers cut out what came before them.
  const mask = document.createElement("canvas");
  mask.width = state.image.width;
  mask.height = state.image.height;
  const m = mask.getContext("2d");
  const all = state.drawing ? state.regions.concat([state.drawing]) : state.regions;
  for (const r of all) {
    m.globalCompositeOperation = r.erase ? "destination-out" : "source-over";
    m.fillStyle = m.strokeStyle = "rgba(229, 83, 61, 0.55)";
    if (r.type === "rect") {
      m.fillRect(r.x, r.y, r.w, r.h);
    } else {
      m.lineWidth = r.width; m.lineCap = m.lineJoin = "round";
      m.beginPath();
      r.points.forEach(([x, y], i) => (i ? m.lineTo(x, y) : m.moveTo(x, y)));
      if (r.points.length === 1) m.lineTo(r.points[0][0] + 0.01, r.points[0][1]);
      m.stroke();
    }
  }
  context.drawImage(mask, 0, 0);
}

function draw() {
  if (!state.image) return;
  const canvas = $("canvas");
  canvas.width = Math.round(state.image.width * state.zoom);
  canvas.height = Math.round(state.image.height * state.zoom);
  const context = canvas.getContext("2d");
  context.setTransform(state.zoom, 0, 0, state.zoom, 0, 0);
  context.imageSmoothingEnabled = state.zoom < 1;
  context.drawImage(state.image, 0, 0);
  if ($("cam").checked) context.drawImage(state.cam, 0, 0, state.image.width, state.image.height);
  if (state.proposal && $("show-proposal").checked) context.drawImage(state.proposal, 0, 0, state.image.width, state.image.height);
  drawRegions(context);
  $("zoom").textContent = Math.round(state.zoom * 100) + "%";
}

function imagePoint(event) {
  const box = $("canvas").getBoundingClientRect();
  const clamp = (v, max) => Math.max(0, Math.min(max, v));
  return [clamp((event.clientX - box.left) / state.zoom, state.image.width),
          clamp((event.clientY - box.top) / state.zoom, state.image.height)];
}

function onDown(event) {
  if (!state.image) return;
  const [x, y] = imagePoint(event);
  const width = Number($("size").value);
  state.drawing = state.tool === "rect" ? { type: "rect", x, y, w: 0, h: 0, x0: x, y0: y }
    : { type: "stroke", points: [[x, y]], width, erase: state.tool === "eraser" };
  draw();
}

function onMove(event) {
  if (!state.drawing) return;
  const [x, y] = imagePoint(event);
  const d = state.drawing;
  if (d.type === "rect") {
    d.x = Math.min(d.x0, x); d.y = Math.min(d.y0, y); d.w = Math.abs(x - d.x0); d.h = Math.abs(y - d.y0);
  } else {
    d.points.push([x, y]);
  }
  draw();
}

function onUp() {
  const d = state.drawing;
  state.drawing = null;
  if (!d) return;
  if (d.type === "rect") {
    if (d.w < 1 || d.h < 1) { draw(); return; }
    state.regions.push({ type: "rect", x: d.x, y: d.y, w: d.w, h: d.h });
  } else {
    state.regions.push(d);
  }
  state.dirty = true;
  draw();
}

async function save(status) {
  if (state.closed) return;
  const s = state.samples[state.index];
  const current = state.marks[s.id];
  const body = { status, regions: status === "marked" ? state.regions : [], comment: $("comment").value,
    who: $("who").value, version: current ? current.version : 0 };
  if (status === "marked" && !state.regions.length) { $("message").textContent = "Draw a region first, or use 'not an error / skip'."; return; }
  try {
    state.marks[s.id] = await api(`api/rounds/${state.round}/samples/${s.id}/marks`, {
      method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    state.dirty = false;
    $("message").textContent = `Saved ${s.id} (${status}).`;
    localStorage.setItem("hkd-reviewer", $("who").value);
    await openSample(state.index + (state.index < state.samples.length - 1 ? 1 : 0));
  } catch (error) {
    $("message").textContent = "Not saved: " + error.message;
  }
}

function setTool(tool) {
  state.tool = tool;
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
}

function setZoom(factor) { state.zoom = Math.max(0.1, Math.min(16, state.zoom * factor)); draw(); }

document.querySelectorAll(".tool").forEach((b) => (b.onclick = () => setTool(b.dataset.tool)));
$("undo").onclick = () => { state.regions.pop(); state.dirty = true; draw(); };
$("cam").onchange = draw;
$("zoom-in").onclick = () => setZoom(1.25);
$("zoom-out").onclick = () => setZoom(0.8);
$("save").onclick = () => save("marked");
$("skip").onclick = () => save("not_an_error");
$("accept").onclick = () => save("accepted");
$("show-proposal").onchange = draw;
$("round").onchange = (e) => openRound(Number(e.target.value));
$("who").value = localStorage.getItem("hkd-reviewer") || "";
const canvas = $("canvas");
canvas.addEventListener("mousedown", onDown);
window.addEventListener("mousemove", onMove);
window.addEventListener("mouseup", onUp);
canvas.addEventListener("wheel", (e) => { if (e.ctrlKey || e.metaKey) { e.preventDefault(); setZoom(e.deltaY < 0 ? 1.1 : 0.9); } }, { passive: false });
window.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" && e.target.type !== "checkbox" && e.target.type !== "range") return;
  const keys = { ArrowRight: () => openSample(state.index + 1), ArrowLeft: () => openSample(state.index - 1),
    r: () => setTool("rect"), b: () => setTool("brush"), e: () => setTool("eraser"),
    z: () => $("undo").click(), c: () => { $("cam").checked = !$("cam").checked; draw(); },
    s: () => save("marked"), x: () => save("not_an_error"), a: () => state.proposals && save("accepted"), "+": () => setZoom(1.25), "-": () => setZoom(0.8) };
  if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
});
loadRounds().catch((error) => ($("message").textContent = error.message));
