//! Smooth weighted round-robin, precomputed.
//!
//! nginx's smooth weighted round-robin spreads a backend's turns evenly over the cycle
//! (weights 5:1:1 give `a a b a c a a`, not `a a a a a b c`), which matters for canaries: a 5 %
//! revision gets every twentieth request rather than a burst of them. The algorithm itself
//! needs a lock around its running "current weights"; instead the whole cycle is computed once
//! when the backend set changes and the hot path indexes it with one atomic counter.

/// Longest schedule we precompute. Weights whose reduced sum is larger are scaled down
/// proportionally (a nonzero weight never becomes zero), so a table stays small whatever
/// numbers the caller uses.
pub(crate) const MAX_SCHEDULE: u64 = 4096;

/// The smooth weighted round-robin cycle for `weights`: indices into `weights`, each index `i`
/// appearing `weights[i] / g` times where `g` is the gcd of the nonzero weights (after scaling
/// down to [`MAX_SCHEDULE`]). Zero weights never appear; all zero gives an empty schedule.
pub(crate) fn smooth_schedule(weights: &[u32]) -> Vec<u32> {
    let reduced = reduce(weights);
    let total: i64 = reduced.iter().map(|&w| w as i64).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut current = vec![0i64; reduced.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = usize::MAX;
        for (i, &w) in reduced.iter().enumerate() {
            if w == 0 {
                continue;
            }
            current[i] += w as i64;
            if best == usize::MAX || current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

/// Divides the weights by their gcd and scales them down when their sum exceeds
/// [`MAX_SCHEDULE`].
fn reduce(weights: &[u32]) -> Vec<u64> {
    let g = weights
        .iter()
        .filter(|&&w| w > 0)
        .fold(0u64, |g, &w| gcd(g, w as u64));
    if g == 0 {
        return vec![0; weights.len()];
    }
    let mut reduced: Vec<u64> = weights.iter().map(|&w| w as u64 / g).collect();
    let sum: u64 = reduced.iter().sum();
    if sum > MAX_SCHEDULE {
        for w in &mut reduced {
            if *w > 0 {
                *w = (*w * MAX_SCHEDULE / sum).max(1);
            }
        }
        let g = reduced
            .iter()
            .filter(|&&w| w > 0)
            .fold(0u64, |g, &w| gcd(g, w));
        for w in &mut reduced {
            *w /= g;
        }
    }
    reduced
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn letters(weights: &[u32]) -> String {
        smooth_schedule(weights)
            .into_iter()
            .map(|i| (b'a' + i as u8) as char)
            .collect()
    }

    #[test]
    fn known_sequences() {
        // nginx's documented example.
        assert_eq!(letters(&[5, 1, 1]), "aabacaa");
        assert_eq!(letters(&[1, 1, 1]), "abc");
        assert_eq!(letters(&[3, 1]), "aaba");
        assert_eq!(letters(&[2, 2, 2]), "abc");
        assert_eq!(letters(&[0, 1, 0]), "b");
        assert_eq!(letters(&[95, 5]).matches('b').count(), 1);
        assert_eq!(letters(&[95, 5]).len(), 20);
        assert_eq!(letters(&[]), "");
        assert_eq!(letters(&[0, 0]), "");
    }

    #[test]
    fn huge_weights_are_scaled_down_but_keep_every_backend() {
        let s = smooth_schedule(&[u32::MAX, 1, u32::MAX - 7]);
        assert!(s.len() as u64 <= MAX_SCHEDULE + 3);
        assert!(s.contains(&1));
        assert!(s.contains(&0) && s.contains(&2));
    }

    proptest! {
        #[test]
        fn shares_are_exact_and_spread(weights in proptest::collection::vec(0u32..50, 1..8)) {
            let s = smooth_schedule(&weights);
            let nonzero: Vec<u64> = weights.iter().filter(|&&w| w > 0).map(|&w| w as u64).collect();
            if nonzero.is_empty() {
                prop_assert!(s.is_empty());
                return Ok(());
            }
            let g = nonzero.iter().fold(0, |g, &w| gcd(g, w));
            let total: u64 = nonzero.iter().sum::<u64>() / g;
            prop_assert_eq!(s.len() as u64, total);
            for (i, &w) in weights.iter().enumerate() {
                let n = s.iter().filter(|&&x| x as usize == i).count() as u64;
                prop_assert_eq!(n, w as u64 / g);
                // Smoothness, with the bounds smooth weighted round-robin guarantees: with
                // W the total and c_i = k*w_i - W*seen_i its "current weight", the chosen
                // backend's c stays above -W (never more than one turn ahead of its exact
                // share), and since the c's sum to zero a backend's c stays below (n-1)*W
                // (never more than n-1 turns behind).
                let mut seen = 0u64;
                for (k, &x) in s.iter().enumerate() {
                    if x as usize == i {
                        seen += 1;
                    }
                    let exact = (k as u64 + 1) * (w as u64 / g);
                    let ideal = exact as f64 / total as f64;
                    let behind_limit = (nonzero.len() as f64 - 1.0).max(1.0);
                    prop_assert!(seen as f64 - ideal <= 1.0 + 1e-9, "{:?} {} ahead", weights, i);
                    prop_assert!(ideal - seen as f64 <= behind_limit + 1e-9, "{:?} {} behind", weights, i);
                }
            }
        }
    }
}
