/**
 * The Mann–Whitney U test (Wilcoxon rank-sum), two-sided, with the normal approximation and the
 * tie correction: valid for the thousands of samples a timing test takes. It compares ranks, not
 * means, so the long tail of a busy machine's latencies cannot fake or hide a shift.
 */
export interface RankTestResult {
  u: number;
  z: number;
  /** Two-sided p-value: how likely samples this far apart are when both come from one distribution. */
  p: number;
}

export function mannWhitneyU(a: readonly number[], b: readonly number[]): RankTestResult {
  const n1 = a.length;
  const n2 = b.length;
  const all = [...a.map((v) => ({ v, first: true })), ...b.map((v) => ({ v, first: false }))].sort((x, y) => x.v - y.v);
  let rankSumA = 0;
  let tieTerm = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j]?.v === all[i]?.v) j++;
    const rank = (i + 1 + j) / 2; // the mean of ranks i+1 … j
    for (let k = i; k < j; k++) if (all[k]?.first) rankSumA += rank;
    const t = j - i;
    tieTerm += t * t * t - t;
    i = j;
  }
  const u = rankSumA - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  const z = sigma === 0 ? 0 : (u - (n1 * n2) / 2) / sigma;
  return { u, z, p: Math.min(1, 2 * normalTail(Math.abs(z))) };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** P(Z > z) for a standard normal Z (Abramowitz–Stegun 7.1.26: absolute error below 1.5e-7, ample for p thresholds of 1e-4). */
function normalTail(z: number): number {
  const x = z / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return 0.5 * poly * Math.exp(-x * x);
}
