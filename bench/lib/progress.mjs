// Progress bars on stderr for the long phases. On a terminal the bar redraws in place; elsewhere
// (CI logs, pipes) it prints a line at each quarter so a log still shows the run moving.

const WIDTH = 28;

function formatSeconds(s) {
  if (!Number.isFinite(s)) return "?";
  return s >= 90
    ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`
    : `${s.toFixed(0)}s`;
}

export function progressBar(label, total, { stream = process.stderr, unit = "" } = {}) {
  const tty = Boolean(stream.isTTY);
  const started = Date.now();
  let value = 0;
  let lastQuarter = -1;
  let lastDraw = 0;
  let finished = false;

  const draw = (force = false) => {
    const fraction = total > 0 ? Math.min(1, value / total) : 1;
    const elapsed = (Date.now() - started) / 1000;
    const eta = fraction > 0 ? (elapsed / fraction) * (1 - fraction) : Number.NaN;
    const counts = `${Math.round(value).toLocaleString("en-US")}/${Math.round(total).toLocaleString("en-US")}${unit}`;
    if (tty) {
      const now = Date.now();
      if (!force && now - lastDraw < 100) return;
      lastDraw = now;
      const filled = Math.round(fraction * WIDTH);
      const bar = `${"█".repeat(filled)}${"░".repeat(WIDTH - filled)}`;
      stream.write(
        `\r\x1b[2K${label} ${bar} ${(fraction * 100).toFixed(0).padStart(3)}% ${counts} ${formatSeconds(elapsed)}` +
          (fraction < 1 ? ` eta ${formatSeconds(eta)}` : ""),
      );
    } else {
      const quarter = Math.floor(fraction * 4);
      if (quarter > lastQuarter || force) {
        lastQuarter = quarter;
        stream.write(`${label}: ${(fraction * 100).toFixed(0)}% ${counts} (${formatSeconds(elapsed)})\n`);
      }
    }
  };

  draw(true);
  return {
    tick(n = 1) {
      value += n;
      draw();
    },
    set(v) {
      value = v;
      draw();
    },
    done() {
      if (finished) return;
      finished = true;
      value = total;
      if (tty) {
        draw(true);
        stream.write("\n");
      } else if (lastQuarter < 4) draw(true);
    },
  };
}

/** A bar that fills over a fixed duration (load-generator runs); returns a stop function. */
export function timedBar(label, seconds, options) {
  const bar = progressBar(label, seconds, { ...options, unit: "s" });
  const started = Date.now();
  const timer = setInterval(() => bar.set(Math.min(seconds, (Date.now() - started) / 1000)), 200);
  return () => {
    clearInterval(timer);
    bar.done();
  };
}
