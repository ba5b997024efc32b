//! What goes wrong reading Omniglot, named down to the zip entry.

use std::path::PathBuf;

/// An error reading the Omniglot zips or the cache, or configuring tasks.
#[derive(Debug, thiserror::Error)]
pub enum OmniglotError {
    /// A zip of the official release is not where it was looked for.
    #[error(
        "{} not found: download images_background.zip and images_evaluation.zip from \
         https://github.com/brendenlake/omniglot (folder python/) and pass their folder with --data",
        .0.display()
    )]
    Missing(PathBuf),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A zip that cannot be read as a zip.
    #[error("{}: not a readable zip archive ({reason})", path.display())]
    CorruptZip {
        /// The archive.
        path: PathBuf,
        /// What the zip reader said.
        reason: String,
    },
    /// One entry of a zip that is not an Omniglot image.
    #[error("{}: entry {entry}: {reason}", path.display())]
    BadEntry {
        /// The archive.
        path: PathBuf,
        /// The entry's name inside it.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A cache file that is truncated, corrupt or of another version; it is
    /// rebuilt from the zips, so users rarely see this.
    #[error("{}: {reason}", path.display())]
    BadCache {
        /// The cache file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A task configuration the split cannot serve.
    #[error("{0}")]
    Protocol(String),
}

/// Results of this crate.
pub type Result<T, E = OmniglotError> = std::result::Result<T, E>;
