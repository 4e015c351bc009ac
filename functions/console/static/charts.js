// Charts as plain SVG built with createElementNS: bars for the ten classes, a training curve, a
// confusion-matrix heat map, and paired bars for a distribution against its reference. Sizes are
// attributes (the viewBox scales them), so no inline style is needed under the CSP.
import { el, svg, percent } from "./dom.js";

/** Horizontal bars, one per class, longest = 1: probabilities or per-class accuracy. */
export function classBars(values, { labels, highlight, title } = {}) {
  const names = labels || Object.keys(values);
  const rowHeight = 24;
  const width = 320;
  const labelWidth = 92;
  const barSpace = width - labelWidth - 56;
  const chart = svg("svg", {
    class: "chart bars",
    viewBox: `0 0 ${width} ${names.length * rowHeight}`,
    role: "img",
    "aria-label": title || "Bar chart",
  });
  names.forEach((name, i) => {
    const value = Number(values[name] || 0);
    const y = i * rowHeight;
    chart.append(
      svg("text", { x: labelWidth - 6, y: y + 17, "text-anchor": "end", class: "axis" }, name),
      svg("rect", { x: labelWidth, y: y + 4, width: barSpace, height: rowHeight - 8, class: "track" }),
      svg("rect", {
        x: labelWidth, y: y + 4, width: Math.max(0, Math.min(1, value)) * barSpace, height: rowHeight - 8,
        class: name === highlight ? "bar top" : "bar", "data-label": name,
      }, svg("title", {}, `${name}: ${percent(value)}`)),
      svg("text", { x: labelWidth + barSpace + 6, y: y + 17, class: "value" }, percent(value)),
    );
  });
  return chart;
}

/** Two bars per class: a distribution (the window's) against its reference. */
export function pairedBars(values, reference, labels, title) {
  const rowHeight = 26;
  const width = 320;
  const labelWidth = 84;
  const barSpace = width - labelWidth - 56;
  const top = Math.max(0.01, ...labels.map((l) => Math.max(values[l] || 0, reference[l] || 0)));
  const chart = svg("svg", { class: "chart bars", viewBox: `0 0 ${width} ${labels.length * rowHeight + 18}`, role: "img", "aria-label": title });
  labels.forEach((name, i) => {
    const y = i * rowHeight;
    const now = values[name] || 0;
    const ref = reference[name] || 0;
    chart.append(
      svg("text", { x: labelWidth - 6, y: y + 15, "text-anchor": "end", class: "axis" }, name),
      svg("rect", { x: labelWidth, y: y + 3, width: (now / top) * barSpace, height: 10, class: "bar" },
        svg("title", {}, `${name}: ${percent(now)} in the window`)),
      svg("rect", { x: labelWidth, y: y + 14, width: (ref / top) * barSpace, height: 7, class: "bar reference" },
        svg("title", {}, `${name}: ${percent(ref)} in the reference`)),
      svg("text", { x: labelWidth + barSpace + 6, y: y + 13, class: "value" }, percent(now)),
    );
  });
  const legendY = labels.length * rowHeight + 12;
  chart.append(
    svg("rect", { x: labelWidth, y: legendY - 8, width: 10, height: 8, class: "bar" }),
    svg("text", { x: labelWidth + 14, y: legendY, class: "axis" }, "this window"),
    svg("rect", { x: labelWidth + 100, y: legendY - 8, width: 10, height: 8, class: "bar reference" }),
    svg("text", { x: labelWidth + 114, y: legendY, class: "axis" }, "reference"),
  );
  return chart;
}

/** The training curve: loss (left axis) and accuracy (0..1, right axis) per epoch. */
export function trainingCurve(points, epochs) {
  const width = 360;
  const height = 180;
  const pad = { left: 40, right: 40, top: 12, bottom: 28 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const lastEpoch = Math.max(1, epochs || 1, ...points.map((p) => p.epoch));
  const maxLoss = Math.max(0.1, ...points.map((p) => p.loss || 0)) * 1.1;
  const x = (epoch) => pad.left + (lastEpoch === 0 ? 0 : (epoch / lastEpoch) * innerW);
  const yLoss = (loss) => pad.top + innerH - (loss / maxLoss) * innerH;
  const yAcc = (acc) => pad.top + innerH - acc * innerH;
  const chart = svg("svg", { class: "chart curve", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Training curve: ${points.length} epochs of ${lastEpoch}` });
  chart.append(
    svg("line", { x1: pad.left, y1: pad.top + innerH, x2: pad.left + innerW, y2: pad.top + innerH, class: "gridline" }),
    svg("line", { x1: pad.left, y1: pad.top, x2: pad.left, y2: pad.top + innerH, class: "gridline" }),
    svg("text", { x: pad.left - 4, y: pad.top + 8, "text-anchor": "end", class: "axis" }, maxLoss.toFixed(2)),
    svg("text", { x: pad.left - 4, y: pad.top + innerH, "text-anchor": "end", class: "axis" }, "0"),
    svg("text", { x: pad.left + innerW + 4, y: pad.top + 8, class: "axis" }, "100%"),
    svg("text", { x: pad.left + innerW + 4, y: pad.top + innerH, class: "axis" }, "0%"),
    svg("text", { x: pad.left + innerW / 2, y: height - 6, "text-anchor": "middle", class: "axis" }, `epoch (of ${lastEpoch})`),
  );
  const line = (key, y, cls) => {
    const usable = points.filter((p) => typeof p[key] === "number");
    if (!usable.length) return;
    if (usable.length > 1) { // one epoch is a point, not a line
      chart.append(svg("polyline", { points: usable.map((p) => `${x(p.epoch)},${y(p[key])}`).join(" "), class: `line ${cls}` }));
    }
    for (const p of usable) chart.append(svg("circle", { cx: x(p.epoch), cy: y(p[key]), r: 3, class: `dot ${cls}` },
      svg("title", {}, `epoch ${p.epoch}: ${key} ${key === "accuracy" ? percent(p[key]) : p[key].toFixed(3)}`)));
  };
  line("loss", yLoss, "loss");
  line("accuracy", yAcc, "accuracy");
  return el("figure", { class: "curve-figure" }, chart,
    el("figcaption", {}, el("span", { class: "key loss" }, "loss"), " ", el("span", { class: "key accuracy" }, "training accuracy")));
}

/** A confusion matrix (rows: true class, columns: predicted) as a heat map, each row shaded by its share. */
export function heatMap(matrix, labels) {
  const cell = 26;
  const left = 74;
  const topSpace = 74;
  const size = labels.length * cell;
  const chart = svg("svg", { class: "chart heat", viewBox: `0 0 ${left + size + 4} ${topSpace + size + 4}`, role: "img",
    "aria-label": "Confusion matrix: rows are the true class, columns the predicted class" });
  labels.forEach((name, i) => {
    chart.append(
      svg("text", { x: left - 4, y: topSpace + i * cell + 17, "text-anchor": "end", class: "axis" }, name),
      svg("text", { x: 0, y: 0, class: "axis", transform: `translate(${left + i * cell + 17} ${topSpace - 4}) rotate(-60)` }, name),
    );
  });
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((count, j) => {
      const share = count / total;
      const level = Math.min(9, Math.round(share * 9)); // ten shades in the stylesheet
      chart.append(svg("rect", { x: left + j * cell, y: topSpace + i * cell, width: cell - 1, height: cell - 1,
        class: `cell shade-${level}${i === j ? " diagonal" : ""}` },
      svg("title", {}, `true ${labels[i]}, predicted ${labels[j]}: ${count} (${percent(share)})`)));
      if (count) {
        chart.append(svg("text", { x: left + j * cell + cell / 2, y: topSpace + i * cell + 17, "text-anchor": "middle",
          class: `count${level >= 5 ? " light" : ""}` }, String(count)));
      }
    });
  });
  return chart;
}

/** A value against its threshold on a 0..max scale (the drift score). */
export function gauge(value, threshold, { max = 1, verdict = true } = {}) {
  const width = 320;
  const chart = svg("svg", { class: "chart gauge", viewBox: `0 0 ${width} 44`, role: "img",
    "aria-label": `Drift ${value === null ? "unknown" : value.toFixed(3)} against threshold ${threshold}` });
  const scale = (v) => 4 + (Math.min(max, Math.max(0, v)) / max) * (width - 8);
  chart.append(svg("rect", { x: 4, y: 10, width: width - 8, height: 14, class: "track" }));
  if (value !== null && value !== undefined) {
    chart.append(svg("rect", { x: 4, y: 10, width: scale(value) - 4, height: 14, class: verdict && value > threshold ? "bar alarm" : "bar" }));
  }
  chart.append(
    svg("line", { x1: scale(threshold), y1: 4, x2: scale(threshold), y2: 30, class: "threshold" }),
    svg("text", { x: Math.min(width - 90, scale(threshold) + 4), y: 40, class: "axis" }, `threshold ${threshold}`),
  );
  return chart;
}
