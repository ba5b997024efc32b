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
/// their ys in place (so that a family can evaluate it in SIMD); the batches
/// live on the stack.
pub(crate) fn fill_1d<T: Real>(
    rng: &mut Rng,
    x_range: (f64, f64),
    task: &mut Task<T>,
    f: impl Fn(&mut [f64]),
) {
    const BATCH: usize = 64;
    for split in [&mut task.support, &mut task.query] {
        let (x, y, _) = split.parts_mut();
        let y = y.expect("function tasks are regression tasks");
        for (x, y) in x.chunks_mut(BATCH).zip(y.chunks_mut(BATCH)) {
            let mut values = [0.0; BATCH];
            let values = &mut values[..x.len()];
            for (v, x) in values.iter_mut().zip(x.iter_mut()) {
                *v = uniform(rng, x_range.0, x_range.1);
                *x = T::from_f64(*v);
            }
            f(values);
            for (y, &v) in y.iter_mut().zip(values.iter()) {
                *y = T::from_f64(v);
            }
        }
    }
}
