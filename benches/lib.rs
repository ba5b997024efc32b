//! What the benchmarks share: the baselines they compare theta with (the FMA
//! peak, plain loops) and issue 5's sinusoid workload. Not part of the library.
#![warn(missing_docs)]

pub mod peak;
pub mod plain;
pub mod workload;
