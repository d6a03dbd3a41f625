// Small, dependency-free statistics and a seeded random generator for the benchmark.

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** n, mean, min, p50, p90, p99 and max of a list of numbers. */
export function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { n: 0, mean: null, min: null, p50: null, p90: null, p99: null, max: null };
  const mean = sorted.reduce((s, v) => s + v, 0) / n;
  return {
    n,
    mean,
    min: sorted[0],
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[n - 1],
  };
}

/** Rounds for display and JSON: 3 significant digits below 100, integers above. */
export function round(value, digits = 3) {
  if (value === null || value === undefined || !Number.isFinite(value)) return value ?? null;
  if (Math.abs(value) >= 100) return Math.round(value);
  return Number(value.toPrecision(digits));
}

/** mulberry32: a tiny, fast, seedable PRNG; the dataset is the same for the same seed. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    /** Integer in [min, max]. */
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick: (list) => list[Math.floor(next() * list.length)],
    /** Exponential with the given mean. */
    exp: (mean) => -Math.log(1 - next()) * mean,
    hex: (chars) => {
      let out = "";
      while (out.length < chars)
        out += Math.floor(next() * 4294967296)
          .toString(16)
          .padStart(8, "0");
      return out.slice(0, chars);
    },
    /** Index drawn from a cumulative distribution (ascending, last = 1). */
    fromCdf: (cdf) => {
      const u = next();
      let lo = 0;
      let hi = cdf.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cdf[mid] < u) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    },
  };
  return r;
}

/** Zipf weights 1/rank^s for ranks 1..n, normalised to sum 1. */
export function zipfWeights(n, s) {
  const raw = Array.from({ length: n }, (_, i) => 1 / (i + 1) ** s);
  const total = raw.reduce((a, b) => a + b, 0);
  return raw.map((w) => w / total);
}

/** Cumulative distribution of weights (the last entry is exactly 1). */
export function cdfOf(weights) {
  const total = weights.reduce((a, b) => a + b, 0);
  let acc = 0;
  const cdf = weights.map((w) => {
    acc += w / total;
    return acc;
  });
  cdf[cdf.length - 1] = 1;
  return cdf;
}

/** Splits `total` into integer parts proportional to weights (largest remainder), summing to total. */
export function apportion(total, weights) {
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (total * w) / sum);
  const parts = exact.map(Math.floor);
  let left = total - parts.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => [e - Math.floor(e), i]).sort((a, b) => b[0] - a[0]);
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) parts[order[k][1]] += 1;
  return parts;
}

/** Coefficient of variation (stddev / mean) of a list: the spread measure for shard loads. */
export function coefficientOfVariation(values) {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / n;
  return mean === 0 ? 0 : Math.sqrt(variance) / mean;
}
