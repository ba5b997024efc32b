//! Checkpoints: everything a run needs to continue exactly, in one file
//! written atomically.
//!
//! Layout of `checkpoint.theta` (format version 1), all little-endian:
//!
//! ```text
//! b"THETACKP" | version: u32 | header length: u64 | header (JSON) |
//! θ: f32 × P | [Adam m: f32 × P | Adam v: f32 × P] | FNV-1a-64 of all before: u64
//! ```
//!
//! The header holds the run's configuration, the step, the task generator's
//! state, P, the outer optimizer's kind and Adam's step count. A file is
//! written to a temporary name in the same folder, flushed to disk, then
//! renamed over the old one (and the folder flushed), so a crash leaves the
//! previous checkpoint or the new one, never half of one.

use std::path::Path;

use serde::{Deserialize, Serialize};
use theta_core::Rng;
use theta_meta::TrainState;
use theta_optim::AdamState;

use crate::config::TrainConfig;
use crate::run::OuterState;

const MAGIC: &[u8; 8] = b"THETACKP";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// The file name inside a run folder.
pub(crate) const FILE: &str = "checkpoint.theta";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    config: TrainConfig,
    step: u64,
    rng: Rng,
    params: usize,
    optimizer: String,
    adam_steps: u64,
}

/// A run's configuration and state.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Checkpoint {
    pub(crate) config: TrainConfig,
    pub(crate) state: TrainState<f32, OuterState>,
}

/// The bytes of a checkpoint.
pub(crate) fn encode(c: &Checkpoint) -> Vec<u8> {
    let (optimizer, adam_steps, moments) = match &c.state.optimizer {
        OuterState::Adam(s) => ("adam", s.t, Some((&s.m, &s.v))),
        OuterState::Sgd => ("sgd", 0, None),
    };
    let header = Header {
        config: c.config.clone(),
        step: c.state.step,
        rng: c.state.rng.clone(),
        params: c.state.theta.len(),
        optimizer: optimizer.into(),
        adam_steps,
    };
    let header = serde_json::to_vec(&header).expect("a header always serialises");
    let mut out = Vec::with_capacity(32 + header.len() + 12 * c.state.theta.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    let mut put = |v: &[f32]| v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
    put(&c.state.theta);
    if let Some((m, v)) = moments {
        put(m);
        put(v);
    }
    let sum = theta_core::fs::fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads checkpoint bytes, refusing anything that is not a whole, intact
/// version-1 checkpoint.
pub(crate) fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err("not a theta checkpoint (it does not start with THETACKP)".into());
    }
    if bytes.len() < 20 + 8 {
        return Err("truncated checkpoint".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!(
            "checkpoint format version {version}; this theta reads version {VERSION}"
        ));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if theta_core::fs::fnv1a64(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes")) {
        return Err("corrupt or truncated checkpoint (checksum mismatch)".into());
    }
    let header_len = u64::from_le_bytes(body[12..20].try_into().expect("8 bytes")) as usize;
    let payload_start = 20usize
        .checked_add(header_len)
        .filter(|&e| e <= body.len())
        .ok_or("truncated checkpoint")?;
    let header: Header = serde_json::from_slice(&body[20..payload_start])
        .map_err(|e| format!("checkpoint header is unreadable: {e}"))?;
    let p = header.params;
    let arrays = match header.optimizer.as_str() {
        "adam" => 3,
        "sgd" => 1,
        other => return Err(format!("checkpoint names an unknown optimizer {other:?}")),
    };
    let payload = &body[payload_start..];
    if payload.len() != arrays * p * 4 {
        return Err(format!(
            "checkpoint payload holds {} bytes, {} expected",
            payload.len(),
            arrays * p * 4
        ));
    }
    let floats: Vec<f32> = payload
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let theta = floats[..p].to_vec();
    let optimizer = if arrays == 3 {
        OuterState::Adam(AdamState {
            m: floats[p..2 * p].to_vec(),
            v: floats[2 * p..].to_vec(),
            t: header.adam_steps,
        })
    } else {
        OuterState::Sgd
    };
    Ok(Checkpoint {
        config: header.config,
        state: TrainState { theta, optimizer, rng: header.rng, step: header.step },
    })
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync
/// of the folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    theta_core::fs::write_atomic(path, bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Saves a checkpoint into a run folder.
pub(crate) fn save(dir: &Path, c: &Checkpoint) -> Result<(), String> {
    write_atomic(&dir.join(FILE), &encode(c))
}

/// Loads the checkpoint of a run folder, naming the file in any error.
pub(crate) fn load(dir: &Path) -> Result<Checkpoint, String> {
    let path = dir.join(FILE);
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}
