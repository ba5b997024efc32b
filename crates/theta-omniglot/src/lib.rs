//! Omniglot for theta: the few-shot classification benchmark of the MAML
//! papers, read straight from the official release's zips.
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use theta_omniglot::{Omniglot, OmniglotTasks, Protocol, Side};
//!
//! let (data, _report) =
//!     Omniglot::load(Path::new("omniglot"), Path::new(".cache"), &mut |_, _| {})?;
//! let train = OmniglotTasks::new(Arc::new(data), Protocol::default(), Side::Train, 5, 1, 15)?;
//! # Ok::<(), theta_omniglot::OmniglotError>(())
//! ```
//!
//! * [`Omniglot`]: the 32,460 drawings as 28×28 ink images (shrunk by area
//!   averaging, see [`SIDE`]), cached in a checksummed file after the first
//!   load.
//! * [`OmniglotTasks`]: N-way K-shot tasks, a [`theta_core::TaskDistribution`],
//!   with the split and rotations of cbfinn/maml (see its docs for every
//!   choice where papers differ).
#![warn(missing_docs)]

mod dataset;
mod error;
mod image;
mod tasks;

pub use dataset::{Archive, Character, LoadReport, Omniglot, ZIPS};
pub use error::{OmniglotError, Result};
pub use image::{PIXELS, SIDE, SOURCE_SIDE};
pub use tasks::{MAX_DRAWINGS, MAX_WAY, OmniglotTasks, Protocol, Side, split_characters};
