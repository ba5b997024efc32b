//! Points, splits and tasks.
//!
//! A *task* τ has a support set (the K examples adaptation may use,
//! `L_s = L_τ,train`) and a query set (`L_q = L_τ,test`, on which the adapted
//! parameters are judged). Each is a [`Split`]: inputs `x` as an `N × d_0`
//! row-major [`Matrix`], and [`Targets`]: `N × d_L` values for regression or
//! `N` labels for classification.

use crate::error::{Error, Result, check_len};
use theta_kernels::{Real, TargetsRef};

/// A dense row-major matrix that owns its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T: Real> Matrix<T> {
    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix { rows, cols, data: vec![T::ZERO; rows * cols] }
    }

    /// Wraps row-major `data`, checking that it holds `rows × cols` values.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<T>) -> Result<Self> {
        check_len("matrix values", rows * cols, data.len())?;
        Ok(Matrix { rows, cols, data })
    }

    /// Builds a matrix from rows of equal length.
    pub fn from_rows(rows: &[Vec<T>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for row in rows {
            check_len("matrix row length", cols, row.len())?;
            data.extend_from_slice(row);
        }
        Ok(Matrix { rows: rows.len(), cols, data })
    }

    /// Number of rows (points).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The values, row-major.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The values, row-major, for writing in place (the shape is fixed).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Converts every value to another float type.
    pub fn cast<U: Real>(&self) -> Matrix<U> {
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|&x| U::from_f64(x.to_f64())).collect(),
        }
    }
}

/// The targets of a split.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets<T> {
    /// Regression targets, one row of `d_L` values per point.
    Values(Matrix<T>),
    /// Class labels, one per point.
    Labels(Vec<u32>),
}

impl<T: Real> Targets<T> {
    /// Number of points.
    pub fn len(&self) -> usize {
        match self {
            Targets::Values(m) => m.rows(),
            Targets::Labels(l) => l.len(),
        }
    }

    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// "values" or "labels", for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Targets::Values(_) => "values",
            Targets::Labels(_) => "labels",
        }
    }

    /// The borrowed form the loss kernels read.
    pub fn as_ref(&self) -> TargetsRef<'_, T> {
        match self {
            Targets::Values(m) => TargetsRef::Values(m.as_slice()),
            Targets::Labels(l) => TargetsRef::Labels(l),
        }
    }

    /// Converts values to another float type (labels are unchanged).
    pub fn cast<U: Real>(&self) -> Targets<U> {
        match self {
            Targets::Values(m) => Targets::Values(m.cast()),
            Targets::Labels(l) => Targets::Labels(l.clone()),
        }
    }
}

/// A set of points with their targets: a task's support or query set.
///
/// Built by [`Split::new`], which checks that inputs and targets agree on the
/// number of points, that there is at least one, and that every value is
/// finite, once, so that the passes over it need not.
#[derive(Clone, Debug, PartialEq)]
pub struct Split<T> {
    x: Matrix<T>,
    y: Targets<T>,
}

impl<T: Real> Split<T> {
    /// Validates and wraps inputs and targets. `name` ("support", "query")
    /// appears in the error messages.
    pub fn new(name: &'static str, x: Matrix<T>, y: Targets<T>) -> Result<Self> {
        if x.rows() == 0 {
            return Err(Error::Empty(name));
        }
        check_len(
            match name {
                "support" => "support targets (one per input row)",
                "query" => "query targets (one per input row)",
                _ => "targets (one per input row)",
            },
            x.rows(),
            y.len(),
        )?;
        if x.as_slice().iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("an input of the {name} set").into()));
        }
        if let Targets::Values(m) = &y
            && m.as_slice().iter().any(|v| !v.is_finite())
        {
            return Err(Error::NonFinite(format!("a target of the {name} set").into()));
        }
        Ok(Split { x, y })
    }

    /// A split of `rows` zero inputs of width `input_dim` and zero targets:
    /// `Some(d)` values per point, or labels when `None`. Samplers fill it in
    /// place.
    pub fn zeros(rows: usize, input_dim: usize, output_dim: Option<usize>) -> Self {
        let y = match output_dim {
            Some(d) => Targets::Values(Matrix::zeros(rows, d)),
            None => Targets::Labels(vec![0; rows]),
        };
        Split { x: Matrix::zeros(rows, input_dim), y }
    }

    /// Number of points `N`.
    pub fn len(&self) -> usize {
        self.x.rows()
    }

    /// Always false for a validated split; here for the convention.
    pub fn is_empty(&self) -> bool {
        self.x.rows() == 0
    }

    /// The inputs, `N × d_0`.
    pub fn x(&self) -> &Matrix<T> {
        &self.x
    }

    /// The targets.
    pub fn y(&self) -> &Targets<T> {
        &self.y
    }

    /// Writable inputs and targets for in-place sampling: the values, never
    /// the shapes, can change. Labels are `None` for regression, values `None`
    /// for classification.
    pub fn parts_mut(&mut self) -> (&mut [T], Option<&mut [T]>, Option<&mut [u32]>) {
        let x = self.x.as_mut_slice();
        match &mut self.y {
            Targets::Values(m) => (x, Some(m.as_mut_slice()), None),
            Targets::Labels(l) => (x, None, Some(l.as_mut_slice())),
        }
    }

    /// Converts to another float type.
    pub fn cast<U: Real>(&self) -> Split<U> {
        Split { x: self.x.cast(), y: self.y.cast() }
    }
}

/// A task τ: a support set for adaptation and a query set for evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Task<T> {
    /// The points adaptation may use (`L_s`).
    pub support: Split<T>,
    /// The points the adapted parameters are judged on (`L_q`).
    pub query: Split<T>,
}

impl<T: Real> Task<T> {
    /// Converts to another float type.
    pub fn cast<U: Real>(&self) -> Task<U> {
        Task { support: self.support.cast(), query: self.query.cast() }
    }
}
