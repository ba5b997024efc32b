//! What the one-dimensional function-regression families (sinusoids, the
//! article's curves) share: tasks y = f(x) with x drawn uniformly.

use theta_core::random::{Rng, uniform};
use theta_core::{Real, Split, Task};

/// A task of `support` and `query` points with one input and one output, all zeros.
pub(crate) fn empty_1d<T: Real>(support: usize, query: usize) -> Task<T> {
    Task { support: Split::zeros(support, 1, Some(1)), query: Split::zeros(query, 1, Some(1)) }
}

/// Fills both splits with x ~ U[x_range] and y = f(x): the support xs
/// first, then the query xs, each in row order. `f` maps a batch of xs to
/// their ys in place, each value on its own (so that a family can evaluate
/// it in SIMD); the batches live on the stack and run on across the two
/// splits (10 support and 10 query points are one batch of 20, not two of
/// 10: the sinusoid's vectorised sine then takes 8 + 8 + 4 lanes instead of
/// 8 + 2 + 8 + 2).
pub(crate) fn fill_1d<T: Real>(
    rng: &mut Rng,
    x_range: (f64, f64),
    task: &mut Task<T>,
    f: impl Fn(&mut [f64]),
) {
    const BATCH: usize = 64;
    let (xs_s, ys_s, _) = task.support.parts_mut();
    let (xs_q, ys_q, _) = task.query.parts_mut();
    let expect = "function tasks are regression tasks";
    let (ys_s, ys_q) = (ys_s.expect(expect), ys_q.expect(expect));
    let (ns, total) = (xs_s.len(), xs_s.len() + xs_q.len());
    let mut done = 0;
    while done < total {
        let mut values = [0.0; BATCH];
        let values = &mut values[..(total - done).min(BATCH)];
        for (i, v) in values.iter_mut().enumerate() {
            let p = done + i;
            *v = uniform(rng, x_range.0, x_range.1);
            let x = if p < ns { &mut xs_s[p] } else { &mut xs_q[p - ns] };
            *x = T::from_f64(*v);
        }
        f(values);
        for (i, &v) in values.iter().enumerate() {
            let p = done + i;
            let y = if p < ns { &mut ys_s[p] } else { &mut ys_q[p - ns] };
            *y = T::from_f64(v);
        }
        done += values.len();
    }
}
