"""The web preview's page: the stream and the live predictions, polled from /api/status. Relative
URLs, so it also works behind a reverse proxy under a sub-path. A token-protected preview hands the
page its token as a cookie, so none of its URLs carries one. FPS and latency are drawn on the stream,
frame by frame; the panel does not repeat them from another moment."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgecam</title>
<style>
  body { margin: 0; background: #111; color: #eee; font: 15px/1.4 system-ui, sans-serif; }
  main { display: grid; grid-template-columns: minmax(0, 1fr) 280px; gap: 16px; padding: 16px;
         align-items: start; }
  @media (max-width: 800px) { main { grid-template-columns: 1fr; } }
  #stream { width: 100%; height: auto; background: #000; border-radius: 6px; }
  h1 { font-size: 18px; margin: 0 0 8px; }
  .row { display: grid; grid-template-columns: 1fr 64px; gap: 8px; margin: 4px 0; }
  .bar { height: 6px; background: #2a6; border-radius: 3px; grid-column: 1 / 3; }
  #stats, #state { color: #aaa; font-variant-numeric: tabular-nums; }
  #state.error { color: #f66; }
</style>
</head>
<body>
<main>
  <img id="stream" alt="live camera stream">
  <section>
    <h1 id="model">edgecam</h1>
    <div id="predictions">waiting for the first frame…</div>
    <p id="stats"></p>
    <p><button id="shot" hidden>Take a photo</button> <span id="saved"></span></p>
    <p id="state"></p>
  </section>
</main>
<script>
const img = document.getElementById("stream");
img.src = "stream.mjpg";
img.onerror = () => setTimeout(() => { img.src = "stream.mjpg?" + Date.now(); }, 1000);

const shot = document.getElementById("shot");
shot.onclick = async () => {
  const response = await fetch("api/shot", { method: "POST" });
  const answer = await response.json();
  document.getElementById("saved").textContent = answer.saved ? "saved " + answer.saved : answer.error;
};
function show(status) {
  if (status.shots) {
    shot.hidden = false;
    shot.textContent = "Take a photo of '" + status.shots + "'";
  }
  const p = status.prediction;
  if (!p) return;
  document.getElementById("model").textContent = p.model + " · " + p.backend + " · " + p.source;
  const list = document.getElementById("predictions");
  list.replaceChildren(...p.top.map((t) => {
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = t.label;
    const score = document.createElement("span");
    score.textContent = (t.score * 100).toFixed(1) + "%";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (t.score * 100).toFixed(1) + "%";
    row.append(label, score, bar);
    return row;
  }));
  document.getElementById("stats").textContent = "frame " + p.frame + " · " + status.frames +
    " classified, " + status.dropped + " dropped";
}

async function poll() {
  const state = document.getElementById("state");
  try {
    const response = await fetch("api/status", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    show(await response.json());
    state.textContent = "";
    state.className = "";
  } catch (e) {
    state.textContent = "edgecam is not answering (" + e.message + ")";
    state.className = "error";
  }
  setTimeout(poll, 500);
}
poll();
</script>
</body>
</html>
"""
