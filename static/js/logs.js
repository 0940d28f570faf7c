// The Logs page: the daily histogram (drag across it to filter by those days), the
// auto-refresh switch, and opening a row's message in the side panel.
(function () {
  "use strict";

  const COLORS = {
    delivered: "#16a34a", engaged: "#0ea5e9", in_flight: "#6366f1",
    failed: "#dc2626", complained: "#f59e0b", canceled: "#9ca3af",
  };
  let chart = null;

  function drawHistogram() {
    const holder = document.getElementById("histogram-chart");
    const source = document.getElementById("histogram-data");
    if (chart) { chart.destroy(); chart = null; }
    if (!holder || !source || typeof uPlot === "undefined") return;
    const data = JSON.parse(source.textContent);
    if (!data.days.length) { holder.textContent = "No messages in this period."; return; }
    holder.textContent = "";
    const xs = data.days.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
    // Stack: each series is drawn as the running total of itself and those below it.
    const running = new Array(xs.length).fill(0);
    const stacked = data.stacks.map(([key]) =>
      (data.series[key] || []).map((n, i) => (running[i] += n)));
    const series = [{}];
    const values = [xs];
    for (let s = data.stacks.length - 1; s >= 0; s--) {  // tallest first, so smaller bars paint over it
      const [key, label] = data.stacks[s];
      series.push({
        label, fill: COLORS[key], stroke: COLORS[key], width: 0, points: { show: false },
        paths: uPlot.paths.bars({ size: [0.8, 40] }),
        value: (u, v, si, i) => (i == null ? "" : data.series[key][i]),
      });
      values.push(stacked[s]);
    }
    chart = new uPlot({
      width: holder.clientWidth || 900, height: 180,
      series, scales: { x: { time: true } },
      axes: [{ space: 60 }, { size: 50 }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { live: true },
      hooks: { setSelect: [onSelect] },
    }, values, holder);
  }

  function onSelect(u) {
    if (u.select.width < 2) return;
    const from = u.posToVal(u.select.left, "x");
    const to = u.posToVal(u.select.left + u.select.width, "x");
    const day = (t) => new Date(t * 1000).toISOString().slice(0, 10);
    const form = document.getElementById("filters");
    form.querySelector("[name=period]").value = "custom";
    form.querySelector("[name=date_from]").value = day(Math.floor(from / 86400) * 86400);
    form.querySelector("[name=date_to]").value = day(Math.floor(to / 86400) * 86400);
    u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
    form.requestSubmit();
  }

  function restoreAutoRefresh() {
    const toggle = document.getElementById("auto-refresh");
    if (!toggle) return;
    toggle.checked = localStorage.getItem("logs.autoRefresh") === "1";
    toggle.addEventListener("change", () =>
      localStorage.setItem("logs.autoRefresh", toggle.checked ? "1" : "0"));
  }

  // Tabs and column headers are plain links without JavaScript; with it they set the
  // filter form's tab or sort and submit it, so only the results are fetched and swapped.
  function submitWith(name, value) {
    const form = document.getElementById("filters");
    let input = form.querySelector(`input[name=${name}]`);
    if (!input) {
      input = Object.assign(document.createElement("input"), { type: "hidden", name });
      form.appendChild(input);
    }
    input.value = value;
    form.requestSubmit();
  }

  document.addEventListener("click", (event) => {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button) return;  // new tab
    const form = document.getElementById("filters");
    const tab = event.target.closest("nav.tabs a[data-tab]");
    if (tab && form) {
      event.preventDefault();
      document.querySelectorAll("nav.tabs a").forEach((a) => a.removeAttribute("aria-current"));
      tab.setAttribute("aria-current", "page");
      submitWith("tab", tab.dataset.tab);
      return;
    }
    const header = event.target.closest("#log-results thead th a");
    if (header && form) {
      event.preventDefault();
      submitWith("sort", new URL(header.href).searchParams.get("sort") || "");
      return;
    }
    // The recipient link opens the panel like a click anywhere on the row does.
    if (event.target.closest("tr[hx-get] a.recipient")) event.preventDefault();
  });

  // The view may have changed without a page load: come back to the one on screen.
  document.addEventListener("submit", (event) => {
    const next = event.target.closest(".columns-chooser form")?.querySelector("[name=next]");
    if (next) next.value = window.location.pathname + window.location.search;
  });

  document.addEventListener("DOMContentLoaded", () => { restoreAutoRefresh(); drawHistogram(); });
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.detail.target && event.detail.target.id === "live") drawHistogram();
  });
  window.addEventListener("resize", () => {
    if (chart) chart.setSize({ width: document.getElementById("histogram-chart").clientWidth, height: 180 });
  });
})();
