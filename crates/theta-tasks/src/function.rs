//! What the one-dimensional function-regression families (sinusoids, the
//! article's curves) share: tasks y = f(x) with x drawn uniformly.

use theta_core::random::{Rng, uniform};
use theta_core::{Real, Split, Task};

/// A task of `support` and `query` points with one input and one output, all zeros.
pub(crate) fn empty_1d<T: Real>(support: usize, query: usize) -> Task<T> {
    Task { support: Split::zeros(support, 1, Some(1)), query: Split::zeros(query, 1, Some(1)) }
}

/// Fills both splits with x ~ U[x_range] and y = f(x): the support xs
/// first, then the query xs, each in row order.
pub(crate) fn fill_1d<T: Real>(
    rng: &mut Rng,
    x_range: (f64, f64),
    task: &mut Task<T>,
    f: impl Fn(f64) -> f64,
) {
    for split in [&mut task.support, &mut task.query] {
        let (x, y, _) = split.parts_mut();
        let y = y.expect("function tasks are regression tasks");
        for (x, y) in x.iter_mut().zip(y.iter_mut()) {
            let xv = uniform(rng, x_range.0, x_range.1);
            *x = T::from_f64(xv);
            *y = T::from_f64(f(xv));
        }
    }
}
