//! Baselines the benchmarks compare theta with. Not part of the library.
#![warn(missing_docs)]

pub mod peak;
pub mod plain;
