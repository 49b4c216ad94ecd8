// The correlax zoomable viewer: one mammogram at a time (loaded when selected), each method's per-class map
// as an overlay to toggle, an opacity slider, true boxes and map peaks as markers. Works from file://.
// The URL hash holds the view (#image=0&overlays=method/label,...&opacity=0.6&zoom=1&x=..&y=..), so a
// view can be shared or reproduced; once everything shown has loaded, body[data-state] describes it.
// The image list comes from the page's JSON block as text, and every name in it (ids, methods, labels) reaches
// the page through textContent and DOM properties only, never as HTML; the page's CSP allows no inline script.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("viewer-data").textContent);
  const $ = (id) => document.getElementById(id);
  const viewer = OpenSeadragon({
    element: $("osd"), drawer: "canvas", showNavigationControl: false, maxZoomPixelRatio: 16,
    visibilityRatio: 0.5, gestureSettingsMouse: { clickToZoom: false }, immediateRender: true,
  });
  const state = { image: 0, overlays: new Set(), opacity: 0.6, boxes: true, peaks: true };
  let layers = {};  // "method/label" -> tiled image, for the image shown
  let pending = 0;  // tiled images requested and not yet added
  let pendingView = null;  // zoom / centre from the hash, applied once the image is open

  // a layer's name in the URL: "method/label", each part encoded so that "/" and "," in names stay apart
  const key = (method, label) => encodeURIComponent(method) + "/" + encodeURIComponent(label);
  const tiles = (source) => new OpenSeadragon.DziTileSource(Object.assign({}, source));  // a Deep Zoom pyramid
  const fixed = (value) => (value === null ? "n/a" : value.toFixed(3));
  const current = () => data.images[state.image];

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    if (p.has("image")) state.image = Math.min(Math.max(0, parseInt(p.get("image"), 10) || 0), data.images.length - 1);
    if (p.has("overlays")) state.overlays = new Set(p.get("overlays").split(",").filter(Boolean));
    if (p.has("opacity")) state.opacity = Math.min(1, Math.max(0, parseFloat(p.get("opacity"))));
    if (p.has("boxes")) state.boxes = p.get("boxes") !== "0";
    if (p.has("peaks")) state.peaks = p.get("peaks") !== "0";
    pendingView = p.has("zoom") ? { zoom: parseFloat(p.get("zoom")), x: p.get("x"), y: p.get("y") } : null;
  }

  function writeHash() {
    const p = new URLSearchParams({ image: state.image, overlays: [...state.overlays].join(","),
      opacity: state.opacity, boxes: +state.boxes, peaks: +state.peaks });
    const base = viewer.world.getItemAt(0);
    if (base) {
      const centre = base.viewportToImageCoordinates(viewer.viewport.getCenter(true));
      p.set("zoom", (viewer.viewport.getZoom(true) / viewer.viewport.getHomeZoom()).toFixed(3));
      p.set("x", centre.x.toFixed(0));
      p.set("y", centre.y.toFixed(0));
    }
    history.replaceState(null, "", "#" + p.toString());
  }

  function reportState() {
    const items = [...Array(viewer.world.getItemCount()).keys()].map((i) => viewer.world.getItemAt(i));
    // OpenSeadragon loads no tiles for an item at opacity 0, so only the visible ones count
    const loaded = items.length > 0 && pending === 0 && items.every((t) => t.getOpacity() === 0 || t.getFullyLoaded());
    document.body.dataset.state = JSON.stringify({
      image: state.image, id: current().id, overlays: [...state.overlays].filter((k) => k in layers),
      opacity: state.opacity, zoom: viewer.viewport.getZoom(true) / viewer.viewport.getHomeZoom(),
      items: items.length, loaded: loaded,
    });
  }

  function openImage(index) {
    state.image = index;
    layers = {};
    const entry = current();
    const caption = $("caption");
    caption.textContent = entry.id + " — " + entry.width + " × " + entry.height + " px";
    caption.title = caption.textContent;  // the whole name where the caption ends in an ellipsis
    viewer.open({ tileSource: tiles(entry.tiles), x: 0, width: 1 });
    buildLayerTable();
  }

  function showLayer(k) {
    const entry = current();
    const overlay = entry.overlays.find((o) => key(o.method, o.label) === k);
    if (!overlay) return;
    if (layers[k]) { layers[k].setOpacity(state.opacity); return; }
    pending += 1;
    viewer.addTiledImage({
      tileSource: tiles(overlay.tiles), x: 0, width: 1, opacity: state.opacity,
      success: (e) => { pending -= 1; layers[k] = e.item; e.item.addHandler("fully-loaded-change", reportState);
                        if (!state.overlays.has(k)) e.item.setOpacity(0); drawMarkers(); reportState(); },
      error: () => { pending -= 1; reportState(); },
    });
  }

  function applyOverlays() {
    for (const k of state.overlays) showLayer(k);
    for (const k in layers) if (!state.overlays.has(k)) layers[k].setOpacity(0);
    drawMarkers();
    writeHash();
    reportState();
  }

  function marker(cls, title, color) {
    const el = document.createElement("div");
    el.className = cls;
    el.title = title;
    if (color) el.style.borderColor = color;
    return el;
  }

  function drawMarkers() {
    viewer.clearOverlays();
    const base = viewer.world.getItemAt(0);
    if (!base) return;
    const entry = current();
    if (state.boxes) {
      for (const [label, boxes] of Object.entries(entry.boxes)) {
        for (const [x0, y0, x1, y1] of boxes) {
          viewer.addOverlay(marker("box", "true box: " + label), base.imageToViewportRectangle(x0, y0, x1 - x0, y1 - y0));
        }
      }
    }
    if (state.peaks) {
      for (const p of entry.peaks) {
        if (!state.overlays.has(key(p.method, p.label))) continue;
        const title = p.method + " peak, " + p.label + (p.value === null ? "" : ": " + fixed(p.value));
        viewer.addOverlay({ element: marker("peak", title, data.colors[p.method]),
          location: base.imageToViewportCoordinates(p.x + 0.5, p.y + 0.5), placement: "CENTER" });
      }
    }
  }

  function buildLayerTable() {
    const entry = current();
    const methods = [...new Set(entry.overlays.map((o) => o.method))];
    const labels = [...new Set(entry.overlays.map((o) => o.label))];
    const table = $("layers");
    const header = (text) => { const th = document.createElement("th"); th.textContent = text; th.title = text; return th; };
    const top = document.createElement("tr");
    top.append(header(""), ...labels.map(header));
    table.replaceChildren(top);
    for (const m of methods) {
      const row = document.createElement("tr");
      const name = header(m);
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = data.colors[m] || "#fff";
      name.prepend(swatch);
      row.appendChild(name);
      for (const l of labels) {
        const cell = document.createElement("td");
        const o = entry.overlays.find((o) => o.method === m && o.label === l);
        if (o) {
          const box = document.createElement("input");
          box.type = "checkbox";
          box.checked = state.overlays.has(key(m, l));
          box.title = m + ", " + l + " (values " + fixed(o.range[0]) + " … " + fixed(o.range[1]) + ")";
          box.dataset.layer = key(m, l);
          box.addEventListener("change", () => {
            if (box.checked) state.overlays.add(key(m, l)); else state.overlays.delete(key(m, l));
            applyOverlays();
          });
          cell.appendChild(box);
        }
        row.appendChild(cell);
      }
      table.appendChild(row);
    }
  }

  viewer.addHandler("open", () => {
    const base = viewer.world.getItemAt(0);
    base.addHandler("fully-loaded-change", reportState);
    if (pendingView) {
      const v = pendingView;
      const size = base.getContentSize();
      const x = v.x === null ? size.x / 2 : parseFloat(v.x), y = v.y === null ? size.y / 2 : parseFloat(v.y);
      viewer.viewport.zoomTo(viewer.viewport.getHomeZoom() * v.zoom, null, true);
      viewer.viewport.panTo(base.imageToViewportCoordinates(x, y), true);
      pendingView = null;
    }
    applyOverlays();
  });
  viewer.addHandler("animation-finish", () => { writeHash(); reportState(); });
  viewer.addHandler("update-viewport", reportState);  // a frame was drawn: tiles may have arrived

  const select = $("image");
  data.images.forEach((entry, i) => select.add(new Option(entry.id, i)));
  select.addEventListener("change", () => openImage(+select.value));  // the chosen overlays stay on
  $("opacity").addEventListener("input", (e) => { state.opacity = +e.target.value; applyOverlays(); });
  $("boxes").addEventListener("change", (e) => { state.boxes = e.target.checked; applyOverlays(); });
  $("peaks").addEventListener("change", (e) => { state.peaks = e.target.checked; applyOverlays(); });
  $("zoom-in").addEventListener("click", () => viewer.viewport.zoomBy(2));
  $("zoom-out").addEventListener("click", () => viewer.viewport.zoomBy(0.5));
  $("zoom-fit").addEventListener("click", () => viewer.viewport.goHome());

  readHash();
  select.value = state.image;
  $("opacity").value = state.opacity;
  $("boxes").checked = state.boxes;
  $("peaks").checked = state.peaks;
  openImage(state.image);
})();
