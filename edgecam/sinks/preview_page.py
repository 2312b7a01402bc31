"""The web preview's page: the stream (a tile per camera when the run has several) and the live
predictions, polled from /api/status. Relative URLs, so it also works behind a reverse proxy under a
sub-path. A token-protected preview hands the page its token as a cookie, so none of its URLs
carries one. FPS and latency are drawn on the stream, frame by frame; the panel does not repeat
them from another moment."""

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
  #stream, .tile img { width: 100%; height: auto; background: #000; border-radius: 6px; }
  #grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 8px; }
  .tile { margin: 0; }
  .tile figcaption, h2 { color: #aaa; font-size: 14px; margin: 4px 0; }
  h1 { font-size: 18px; margin: 0 0 8px; }
  .row { display: grid; grid-template-columns: 1fr 64px; gap: 8px; margin: 4px 0; }
  .bar { height: 6px; background: #2a6; border-radius: 3px; grid-column: 1 / 3; }
  #stats, #state { color: #aaa; font-variant-numeric: tabular-nums; }
  #state.error { color: #f66; }
</style>
</head>
<body>
<main>
  <div id="view"><img id="stream" alt="live camera stream"></div>
  <section>
    <h1 id="model">edgecam</h1>
    <div id="predictions">waiting for the first frame…</div>
    <p id="stats"></p>
    <p><button id="shot" hidden>Take a photo</button> <span id="saved"></span></p>
    <p id="state"></p>
  </section>
</main>
<script>
function play(img, url) {  // an MJPEG stream that comes back after an error
  img.src = url;
  img.onerror = () => setTimeout(() => { img.src = url + "?" + Date.now(); }, 1000);
}
play(document.getElementById("stream"), "stream.mjpg");

let tiled = false;
function tile(cameras) {  // several cameras: a tile and a stream each
  const grid = document.createElement("div");
  grid.id = "grid";
  grid.replaceChildren(...cameras.map((c) => {
    const figure = document.createElement("figure");
    figure.className = "tile";
    const img = document.createElement("img");
    img.alt = "camera " + c.name;
    play(img, "stream/" + encodeURIComponent(c.name) + ".mjpg");
    const caption = document.createElement("figcaption");
    caption.textContent = c.name;
    figure.append(img, caption);
    return figure;
  }));
  document.getElementById("view").replaceChildren(grid);
  tiled = true;
}

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
  if (status.cameras && !tiled) tile(status.cameras);
  if (!p) return;
  document.getElementById("model").textContent = p.model + " · " + p.backend +
    (status.cameras ? " · " + status.cameras.length + " cameras" : " · " + p.source);
  const list = document.getElementById("predictions");
  if (status.cameras) {
    list.replaceChildren(...status.cameras.flatMap((c) => {
      const heading = document.createElement("h2");
      heading.textContent = c.name + (c.prediction ? " · " + c.prediction.source : "");
      return [heading, ...(c.prediction ? rows(c.prediction.top.slice(0, 3)) : [])];
    }));
  } else {
    list.replaceChildren(...rows(p.top));
  }
  document.getElementById("stats").textContent = "frame " + p.frame + " · " + status.frames +
    " classified, " + status.dropped + " dropped";
}

function rows(top) {
  return top.map((t) => {
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
  });
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
