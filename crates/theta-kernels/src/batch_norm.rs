//! Batch normalisation without scale, over the rows of a batch, and its four
//! passes. Per column j of an `N × d` row-major matrix `u`:
//!
//! ```text
//! forward            μ = mean u,  s = √(mean (u − μ)² + ε),  ẑ = (u − μ) / s
//! backward           δu = (δẑ − mean δẑ − ẑ · mean(δẑ ⊙ ẑ)) / s
//! tangent forward    q = mean(ẑ ⊙ Ru)   (= Rs),
//!                    Rẑ = (Ru − mean Ru − ẑ · q) / s
//! tangent backward   R(δu) = (Rδẑ − mean Rδẑ − Rẑ · mean(δẑ ⊙ ẑ)
//!                             − ẑ · mean(Rδẑ ⊙ ẑ + δẑ ⊙ Rẑ)) / s − δu · q / s
//! ```
//!
//! The Jacobian of ẑ in u is symmetric, so the backward and tangent forward
//! maps are the same operator; the tangent backward adds its derivative
//! along the direction (through ẑ and s). Statistics are always those of the
//! batch given (as cbfinn/maml, which keeps no running averages). The
//! per-column reductions add rows in order. Nothing here allocates: the
//! per-column buffers are the caller's.

use crate::real::Real;

fn check(len: usize, cols: usize) -> usize {
    assert!(cols > 0 && len.is_multiple_of(cols), "batch norm buffers are rows of {cols} columns");
    len / cols
}

/// Column means of `m` (rows of `out.len()` columns) into `out`.
fn column_means<T: Real>(m: &[T], out: &mut [T]) {
    let rows = check(m.len(), out.len());
    out.fill(T::ZERO);
    for row in m.chunks_exact(out.len()) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o += x;
        }
    }
    let inv = T::ONE / T::from_usize(rows);
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// Column means of `a ⊙ b` into `out`.
fn column_means_of_product<T: Real>(a: &[T], b: &[T], out: &mut [T]) {
    let rows = check(a.len(), out.len());
    out.fill(T::ZERO);
    for (ra, rb) in a.chunks_exact(out.len()).zip(b.chunks_exact(out.len())) {
        for ((o, &x), &y) in out.iter_mut().zip(ra).zip(rb) {
            *o += x * y;
        }
    }
    let inv = T::ONE / T::from_usize(rows);
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// Forward, in place: `u` becomes ẑ; `inv_s` (d values) receives 1/s. Uses
/// `mean` (d values) as work space.
pub fn forward<T: Real>(u: &mut [T], epsilon: T, inv_s: &mut [T], mean: &mut [T]) {
    let d = inv_s.len();
    column_means(u, mean);
    for row in u.chunks_exact_mut(d) {
        for (x, &m) in row.iter_mut().zip(mean.iter()) {
            *x -= m;
        }
    }
    column_means_of_product(u, u, inv_s);
    for s in inv_s.iter_mut() {
        *s = T::ONE / (*s + epsilon).sqrt();
    }
    for row in u.chunks_exact_mut(d) {
        for (x, &s) in row.iter_mut().zip(inv_s.iter()) {
            *x *= s;
        }
    }
}

/// The symmetric map `g ↦ (g − mean g − ẑ · mean(g ⊙ ẑ)) / s`, in place:
/// the backward pass (g = δẑ → δu) and the tangent forward (g = Ru → Rẑ).
/// Writes mean(g ⊙ ẑ) into `q` (for the tangent forward, that is Rs); uses
/// `mean` as work space.
pub fn project<T: Real>(z_hat: &[T], inv_s: &[T], g: &mut [T], q: &mut [T], mean: &mut [T]) {
    let d = inv_s.len();
    column_means(g, mean);
    column_means_of_product(g, z_hat, q);
    for (row, zr) in g.chunks_exact_mut(d).zip(z_hat.chunks_exact(d)) {
        for j in 0..d {
            row[j] = (row[j] - mean[j] - zr[j] * q[j]) * inv_s[j];
        }
    }
}

/// Tangent backward, fused with the backward pass: turns `delta` (δẑ → δu)
/// and `r_delta` (Rδẑ → R(δu)) in place, given ẑ, 1/s, the tangent Rẑ and
/// `rs` = Rs from the tangent forward. `work` holds 4·d values.
pub fn tangent_backward<T: Real>(
    z_hat: &[T],
    inv_s: &[T],
    r_z_hat: &[T],
    rs: &[T],
    delta: &mut [T],
    r_delta: &mut [T],
    work: &mut [T],
) {
    let d = inv_s.len();
    let (m1, rest) = work.split_at_mut(d);
    let (m2, rest) = rest.split_at_mut(d);
    let (rm1, rest) = rest.split_at_mut(d);
    let rm2 = &mut rest[..d];
    column_means(delta, m1);
    column_means_of_product(delta, z_hat, m2);
    column_means(r_delta, rm1);
    // mean(Rδẑ ⊙ ẑ + δẑ ⊙ Rẑ), two reductions added.
    column_means_of_product(r_delta, z_hat, rm2);
    let rows = check(delta.len(), d);
    let inv_n = T::ONE / T::from_usize(rows);
    for (dr, rzr) in delta.chunks_exact(d).zip(r_z_hat.chunks_exact(d)) {
        for j in 0..d {
            rm2[j] += dr[j] * rzr[j] * inv_n;
        }
    }
    for (((dr, rdr), zr), rzr) in delta
        .chunks_exact_mut(d)
        .zip(r_delta.chunks_exact_mut(d))
        .zip(z_hat.chunks_exact(d))
        .zip(r_z_hat.chunks_exact(d))
    {
        for j in 0..d {
            let du = (dr[j] - m1[j] - zr[j] * m2[j]) * inv_s[j];
            let rdu = (rdr[j] - rm1[j] - rzr[j] * m2[j] - zr[j] * rm2[j]) * inv_s[j]
                - du * rs[j] * inv_s[j];
            dr[j] = du;
            rdr[j] = rdu;
        }
    }
}
