//! The images of Omniglot: read from the official zips, kept as 28×28 ink
//! bytes, cached in one checksummed file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use theta_core::fs::{fnv1a64, write_atomic};

use crate::error::{OmniglotError, Result};
use crate::image::{PIXELS, SIDE, SOURCE_SIDE, decode_png, shrink};

/// The official release's two archives, in theta's canonical order.
pub const ZIPS: [&str; 2] = ["images_background.zip", "images_evaluation.zip"];

/// One of the two official archives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Archive {
    /// `images_background.zip`: 30 alphabets, 964 characters.
    Background,
    /// `images_evaluation.zip`: 20 alphabets, 659 characters.
    Evaluation,
}

/// One handwritten character: a class, with its drawings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Character {
    /// The archive it comes from.
    pub archive: Archive,
    /// Its alphabet's folder name, e.g. "Armenian".
    pub alphabet: String,
    /// Its folder name, e.g. "character07".
    pub name: String,
    /// How many drawings it has (20 in the official release).
    pub drawings: usize,
    /// Index of its first image.
    first: usize,
}

/// Where [`Omniglot::load`] found the images.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadReport {
    /// The cache file used or written.
    pub cache: PathBuf,
    /// True if the images came from the cache, false if they were decoded.
    pub from_cache: bool,
    /// A cache that was there but unusable (corrupt, another version), or
    /// could not be written: the images are fine, the next load will be slow.
    pub cache_problem: Option<String>,
}

/// All Omniglot images as 28×28 ink bytes (strokes 255, paper 0), character
/// by character: the background archive's characters, then the evaluation
/// archive's, each sorted by alphabet and character folder name, drawings in
/// file-name order.
#[derive(Clone, Debug, PartialEq)]
pub struct Omniglot {
    characters: Vec<Character>,
    pixels: Vec<u8>,
}

const MAGIC: &[u8; 8] = b"THETAOMN";
/// Version of the cache format (and of the image pipeline: a new filter is a new version).
const CACHE_VERSION: u32 = 1;

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> OmniglotError + '_ {
    move |source| OmniglotError::Io { path: path.to_path_buf(), source }
}

impl Omniglot {
    /// The characters, in the canonical order.
    pub fn characters(&self) -> &[Character] {
        &self.characters
    }

    /// Images in all.
    pub fn num_images(&self) -> usize {
        self.pixels.len() / PIXELS
    }

    /// Drawing `drawing` of character `character`: 784 ink bytes, row-major.
    ///
    /// # Panics
    /// If either index is out of range.
    pub fn image(&self, character: usize, drawing: usize) -> &[u8] {
        let c = &self.characters[character];
        assert!(drawing < c.drawings, "character {character} has {} drawings", c.drawings);
        &self.pixels[(c.first + drawing) * PIXELS..][..PIXELS]
    }

    /// Loads the official release from the folder `data` (which holds
    /// [`ZIPS`]), through a cache file in `cache_dir`: the first load decodes
    /// the 32,460 PNGs (a few seconds, `progress(done, total)` after each),
    /// later loads read the cache (well under a second). The cache is keyed
    /// by a checksum of the zips, so changed zips are decoded again.
    pub fn load(
        data: &Path,
        cache_dir: &Path,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Omniglot, LoadReport)> {
        let mut zips = Vec::with_capacity(ZIPS.len());
        for name in ZIPS {
            let path = data.join(name);
            if !path.is_file() {
                return Err(OmniglotError::Missing(path));
            }
            let bytes = std::fs::read(&path).map_err(io_error(&path))?;
            zips.push((path, bytes));
        }
        let sums: Vec<u8> = zips.iter().flat_map(|(_, b)| fnv1a64(b).to_le_bytes()).collect();
        let fingerprint = fnv1a64(&sums);
        let cache = cache_dir.join(format!("omniglot-{SIDE}x{SIDE}-{fingerprint:016x}.bin"));
        let mut cache_problem = None;
        if cache.is_file() {
            match Omniglot::read_cache(&cache, fingerprint) {
                Ok(o) => return Ok((o, LoadReport { cache, from_cache: true, cache_problem })),
                Err(e) => cache_problem = Some(format!("{e}; decoded the zips again")),
            }
        }
        let archives = [Archive::Background, Archive::Evaluation];
        let mut opened = Vec::with_capacity(zips.len());
        for (path, bytes) in &zips {
            opened.push((path, open_zip(path, bytes)?));
        }
        let total: usize = opened.iter().map(|(_, z)| z.len()).sum();
        let mut done = 0;
        let mut o = Omniglot { characters: Vec::new(), pixels: Vec::new() };
        for ((path, zip), archive) in opened.iter_mut().zip(archives) {
            o.read_zip(path, zip, archive, &mut || {
                done += 1;
                progress(done, total);
            })?;
        }
        let written = std::fs::create_dir_all(cache_dir)
            .and_then(|()| write_atomic(&cache, &o.encode(fingerprint)));
        if let Err(e) = written {
            cache_problem = Some(format!("cannot write the cache {}: {e}", cache.display()));
        }
        Ok((o, LoadReport { cache, from_cache: false, cache_problem }))
    }

    /// Reads one archive without a cache (files named
    /// `<set>/<Alphabet>/<character>/<drawing>.png`), appending its
    /// characters.
    pub fn from_zip(path: &Path, archive: Archive) -> Result<Omniglot> {
        if !path.is_file() {
            return Err(OmniglotError::Missing(path.to_path_buf()));
        }
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        let mut o = Omniglot { characters: Vec::new(), pixels: Vec::new() };
        o.read_zip(path, &mut open_zip(path, &bytes)?, archive, &mut || {})?;
        Ok(o)
    }

    fn read_zip(
        &mut self,
        path: &Path,
        zip: &mut Zip<'_>,
        archive: Archive,
        progress: &mut dyn FnMut(),
    ) -> Result<()> {
        let corrupt = |e: zip::result::ZipError| corrupt_zip(path, e);
        let mut found: BTreeMap<CharacterKey, Vec<Drawing>> = BTreeMap::new();
        let mut png = Vec::new();
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(corrupt)?;
            let name = entry.name().map_err(corrupt)?.into_owned();
            progress();
            if entry.is_dir() {
                continue;
            }
            let bad = |reason: String| OmniglotError::BadEntry {
                path: path.to_path_buf(),
                entry: name.clone(),
                reason,
            };
            let parts: Vec<&str> = name.split('/').collect();
            let [.., alphabet, character, file] = parts[..] else {
                return Err(bad("expected <set>/<Alphabet>/<character>/<drawing>.png".into()));
            };
            if !file.to_ascii_lowercase().ends_with(".png") {
                return Err(bad(
                    "not a PNG file (entries are <set>/<Alphabet>/<character>/<drawing>.png)"
                        .into(),
                ));
            }
            png.clear();
            entry.read_to_end(&mut png).map_err(|e| bad(format!("cannot be read ({e})")))?;
            let (w, h, brightness) = decode_png(&png).map_err(bad)?;
            if (w, h) != (SOURCE_SIDE, SOURCE_SIDE) {
                return Err(bad(format!(
                    "image is {w}x{h}, Omniglot images are {SOURCE_SIDE}x{SOURCE_SIDE}"
                )));
            }
            let mut small = vec![0u8; PIXELS];
            shrink(&brightness, &mut small);
            found
                .entry((alphabet.to_string(), character.to_string()))
                .or_default()
                .push((file.to_string(), small));
        }
        if found.is_empty() {
            return Err(OmniglotError::CorruptZip {
                path: path.to_path_buf(),
                reason: "it holds no images".into(),
            });
        }
        for ((alphabet, name), mut drawings) in found {
            drawings.sort_by(|a, b| a.0.cmp(&b.0));
            let first = self.num_images();
            for (_, px) in &drawings {
                self.pixels.extend_from_slice(px);
            }
            self.characters.push(Character {
                archive,
                alphabet,
                name,
                drawings: drawings.len(),
                first,
            });
        }
        Ok(())
    }

    /// The cache file's bytes. Layout, little-endian:
    ///
    /// ```text
    /// b"THETAOMN" | version: u32 | side: u32 | fingerprint of the zips: u64 |
    /// characters: u32 | per character: archive u8, alphabet (u16 length + UTF-8),
    /// name (u16 length + UTF-8), drawings u32 | pixels: u8 × images × side² |
    /// FNV-1a-64 of all before: u64
    /// ```
    fn encode(&self, fingerprint: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() + 64 * self.characters.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CACHE_VERSION.to_le_bytes());
        out.extend_from_slice(&(SIDE as u32).to_le_bytes());
        out.extend_from_slice(&fingerprint.to_le_bytes());
        out.extend_from_slice(&(self.characters.len() as u32).to_le_bytes());
        for c in &self.characters {
            out.push(c.archive as u8);
            for s in [&c.alphabet, &c.name] {
                out.extend_from_slice(&(s.len() as u16).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            out.extend_from_slice(&(c.drawings as u32).to_le_bytes());
        }
        out.extend_from_slice(&self.pixels);
        let sum = fnv1a64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads a cache file written for zips of checksum `fingerprint`.
    fn read_cache(path: &Path, fingerprint: u64) -> Result<Omniglot> {
        let bytes = std::fs::read(path).map_err(io_error(path))?;
        Omniglot::decode(&bytes, fingerprint)
            .map_err(|reason| OmniglotError::BadCache { path: path.to_path_buf(), reason })
    }

    fn decode(bytes: &[u8], fingerprint: u64) -> Result<Omniglot, String> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err("not a theta Omniglot cache".into());
        }
        let (body, sum) = bytes.split_at(bytes.len().max(16) - 8);
        if sum.len() != 8 || fnv1a64(body) != u64::from_le_bytes(sum.try_into().expect("8")) {
            return Err("checksum mismatch (truncated or corrupt)".into());
        }
        let mut r = Reader { bytes: &body[8..] };
        let version = r.u32()?;
        if version != CACHE_VERSION {
            return Err(format!("cache version {version}, this build reads {CACHE_VERSION}"));
        }
        if r.u32()? as usize != SIDE || r.u64()? != fingerprint {
            return Err("written for other images".into());
        }
        let n = r.u32()? as usize;
        let mut characters = Vec::with_capacity(n.min(1 << 16));
        let mut first = 0;
        for _ in 0..n {
            let archive = match r.take(1)?[0] {
                0 => Archive::Background,
                1 => Archive::Evaluation,
                k => return Err(format!("unknown archive {k}")),
            };
            let alphabet = r.string()?;
            let name = r.string()?;
            let drawings = r.u32()? as usize;
            characters.push(Character { archive, alphabet, name, drawings, first });
            first += drawings;
        }
        let pixels = r.take(first * PIXELS)?.to_vec();
        if !r.bytes.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(Omniglot { characters, pixels })
    }
}

/// (alphabet, character folder): sorts characters into the canonical order.
type CharacterKey = (String, String);
/// (file name, 784 ink bytes): sorts drawings by file name.
type Drawing = (String, Vec<u8>);

/// A zip archive read from memory.
type Zip<'a> = zip::ZipArchive<std::io::Cursor<&'a [u8]>>;

fn corrupt_zip(path: &Path, e: zip::result::ZipError) -> OmniglotError {
    OmniglotError::CorruptZip { path: path.to_path_buf(), reason: e.to_string() }
}

/// Opens an archive (its central directory), naming the file if it is not a zip.
fn open_zip<'a>(path: &Path, bytes: &'a [u8]) -> Result<Zip<'a>> {
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| corrupt_zip(path, e))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("truncated".into());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a name is not UTF-8".into())
    }
}
