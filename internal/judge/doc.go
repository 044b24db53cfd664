// Package judge decides whether a canary is worse than its baseline on one metric. It is pure: it takes the
// samples a caller has already measured (one value per interval and side, e.g. the error rate or p99 latency
// from Prometheus) and returns a Result with a Verdict and a sentence a person can act on. It does no I/O,
// keeps no state and is safe for concurrent use.
//
// # Why a Mann-Whitney U test
//
// Ferry runs the canary (new digest) next to a fresh baseline (previous digest, same size, started at the
// same time), so the two samples differ only by the image and share the same traffic, noise and warm-up.
// Comparing against that baseline rather than against the long-running fleet or a fixed threshold keeps
// the comparison fair. Metrics such as error rates and latencies are skewed, bounded at zero and have
// outliers, so the judge uses the Mann-Whitney U test (the Wilcoxon rank-sum test): it compares ranks, not
// values, and assumes no normal distribution. The implementation is github.com/aclements/go-moremath/stats,
// which computes the exact distribution of U for small samples (including ties) and a tie- and
// continuity-corrected normal approximation for large ones.
//
// The test is one-sided: the alternative hypothesis is "the canary tends to be worse", where worse means
// higher for LowerIsBetter metrics (errors, latency) and lower for HigherIsBetter ones (throughput,
// success ratio). A canary that is better than its baseline is never evidence against it, and a one-sided
// test needs fewer intervals than a two-sided one to see a real regression.
//
// A p-value alone does not say whether a difference matters (with enough samples a 1% regression is
// significant), and a large difference alone does not say whether it is noise (with three samples it
// often is). So the judge also compares the medians: RelativeDeviation is (canary - baseline) / |baseline|,
// signed so that positive is worse, and Settings.MaxDeviation is how much worse the user tolerates.
//
// # Decision rule
//
// Rules are applied in order:
//
//  1. Settings invalid (see Settings.Validate), any NaN or ±Inf in either sample, or fewer than
//     Settings.MinSamples values on either side: Inconclusive. An Inconclusive verdict is never a pass or
//     a fail: the caller should wait for more intervals or fix its query.
//  2. RelativeDeviation > MaxDeviation and p < Alpha: Fail. The canary is worse beyond tolerance and the
//     evidence is significant.
//  3. RelativeDeviation > MaxDeviation and p >= Alpha: Marginal. The canary looks worse beyond tolerance,
//     but the evidence is too weak to fail it automatically; a person decides (or more intervals are
//     collected).
//  4. Otherwise: Pass. This includes a canary that is significantly worse but within tolerance: the
//     tolerance is what the user said they accept.
//
// When every value on both sides is the same the test has nothing to rank; the judge treats that as no
// evidence of a difference (p = 1) and, since the medians are then equal, the verdict is Pass.
//
// The judge is sample-size aware. Below MinSamples it refuses to judge. Above it, the exact U distribution
// makes small samples pay for their size: with n values per side and no ties the smallest possible
// one-sided p-value is 1/C(2n, n) (0.05 for n=3, 0.014 for n=4, 0.004 for n=5), so a few intervals can at
// most reach Marginal, and the Reason says when more samples are needed.
//
// # Baseline median of zero
//
// A relative deviation from zero is undefined, and zero is common (an error rate with no errors). The
// judge defines it by the only limit that makes sense for a tolerance: if both medians are 0 the deviation
// is 0; if the canary's median is worse than a baseline of 0 the deviation is +Inf (no relative tolerance
// covers it, so it is Fail or Marginal depending on the evidence); if better it is -Inf. Callers that
// serialize a Result to JSON must handle ±Inf, which encoding/json rejects.
package judge
