//! The reader, the cache and the task sampler on tiny zips of PNGs written
//! here: every shape of bad input gets an error naming the entry.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use theta_core::TaskDistribution;
use theta_core::random::rng_from_seed;
use theta_omniglot::{
    Archive, Omniglot, OmniglotError, OmniglotTasks, PIXELS, Protocol, SIDE, Side, ZIPS,
};

/// A fresh folder under the system's temporary folder.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("theta-omniglot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `side`×`side` 8-bit grayscale PNG: white, with a black square of side
/// 15 at (`top`, `left`).
fn png(side: u32, top: usize, left: usize) -> Vec<u8> {
    let mut px = vec![255u8; (side * side) as usize];
    for y in top..top + 15 {
        for x in left..left + 15 {
            px[y * side as usize + x] = 0;
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(&px).unwrap();
    out
}

/// Where drawing `d` of character `c` puts its square: distinct for every
/// (character, drawing) of the fixtures, so an image says where it came from.
fn spot(c: usize, d: usize) -> (usize, usize) {
    (7 * (c % 12), 4 * d)
}

/// A zip's entries: (name, bytes).
type Entries = Vec<(String, Vec<u8>)>;

/// Writes a zip of `entries`.
fn write_zip(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// The official layout in miniature: `chars` characters in two alphabets,
/// 20 drawings each, entries in reverse order (the reader sorts).
fn fixture_entries(set: &str, chars: usize, offset: usize) -> Entries {
    let mut entries = Vec::new();
    for c in 0..chars {
        let alphabet = if c % 2 == 0 { "Alpha" } else { "Beta" };
        for d in 0..20 {
            let (top, left) = spot(offset + c, d);
            entries.push((
                format!("{set}/{alphabet}/character{:02}/{:04}_{:02}.png", c + 1, 100 + c, d + 1),
                png(105, top, left),
            ));
        }
    }
    entries.reverse();
    entries
}

/// A data folder with both zips: 6 background and 4 evaluation characters.
fn fixture(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    write_zip(&dir.join(ZIPS[0]), &fixture_entries("images_background", 6, 0));
    write_zip(&dir.join(ZIPS[1]), &fixture_entries("images_evaluation", 4, 6));
    dir
}

fn load(data: &Path) -> Result<(Omniglot, theta_omniglot::LoadReport), OmniglotError> {
    Omniglot::load(data, &data.join("cache"), &mut |_, _| {})
}

#[test]
fn reads_both_zips_in_canonical_order_and_shrinks_the_images() {
    let data = fixture("order");
    let (o, report) = load(&data).unwrap();
    assert!(!report.from_cache && report.cache_problem.is_none());
    assert_eq!(o.characters().len(), 10);
    assert_eq!(o.num_images(), 200);
    let names: Vec<String> =
        o.characters().iter().map(|c| format!("{}/{}", c.alphabet, c.name)).collect();
    assert_eq!(
        names,
        [
            "Alpha/character01",
            "Alpha/character03",
            "Alpha/character05",
            "Beta/character02",
            "Beta/character04",
            "Beta/character06",
            "Alpha/character01",
            "Alpha/character03",
            "Beta/character02",
            "Beta/character04",
        ]
    );
    assert_eq!(o.characters()[5].archive, Archive::Background);
    assert_eq!(o.characters()[6].archive, Archive::Evaluation);
    // Drawing 0 of Alpha/character03 (c = 2): a 15-pixel square of ink at
    // (14, 0) becomes 4×4 output pixels of ink, with partial edges.
    let img = o.image(1, 0);
    assert_eq!(img.len(), PIXELS);
    let (top, left) = spot(2, 0);
    let centre = ((top + 7) * 28 / 105) * SIDE + (left + 7) * 28 / 105;
    assert_eq!(img[centre], 255, "the middle of the square is full ink");
    assert_eq!(img[27 * SIDE + 27], 0, "the far corner is paper");
    let ink: f64 = img.iter().map(|&v| f64::from(v) / 255.0).sum();
    let expected = 15.0 * 15.0 / (3.75 * 3.75);
    assert!((ink - expected).abs() < 0.05, "total ink {ink} vs {expected}");
}

#[test]
fn the_second_load_comes_from_the_cache_and_a_damaged_cache_is_rebuilt() {
    let data = fixture("cache");
    let (first, _) = load(&data).unwrap();
    let (second, report) = load(&data).unwrap();
    assert!(report.from_cache);
    assert_eq!(first, second);
    // Flip one pixel byte: the checksum catches it, the zips are decoded again.
    let mut bytes = std::fs::read(&report.cache).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x10;
    std::fs::write(&report.cache, &bytes).unwrap();
    let (third, report) = load(&data).unwrap();
    assert!(!report.from_cache);
    assert!(report.cache_problem.unwrap().contains("checksum"));
    assert_eq!(first, third);
    // Truncated: the same.
    let bytes = std::fs::read(&report.cache).unwrap();
    std::fs::write(&report.cache, &bytes[..bytes.len() / 2]).unwrap();
    let (fourth, report) = load(&data).unwrap();
    assert!(!report.from_cache && report.cache_problem.is_some());
    assert_eq!(first, fourth);
    // And it was rewritten whole, with no temporary file left behind.
    assert!(load(&data).unwrap().1.from_cache);
    let files: Vec<_> = std::fs::read_dir(data.join("cache")).unwrap().collect();
    assert_eq!(files.len(), 1);
}

#[test]
fn changed_zips_are_decoded_again() {
    let data = fixture("changed");
    let (_, first) = load(&data).unwrap();
    write_zip(&data.join(ZIPS[1]), &fixture_entries("images_evaluation", 2, 6));
    let (o, second) = load(&data).unwrap();
    assert!(!second.from_cache);
    assert_ne!(first.cache, second.cache);
    assert_eq!(o.characters().len(), 8);
}

fn err(data: &Path) -> String {
    load(data).unwrap_err().to_string()
}

#[test]
fn a_missing_folder_says_where_to_get_the_data() {
    let e = err(Path::new("/nonexistent/omniglot"));
    assert!(e.contains("images_background.zip not found"), "{e}");
    assert!(e.contains("github.com/brendenlake/omniglot"), "{e}");
}

#[test]
fn bad_archives_and_entries_are_named() {
    let data = fixture("bad");
    let zip = data.join(ZIPS[1]);
    let cases: Vec<(&str, Entries, &str)> = vec![
        (
            "not a PNG",
            vec![("images_evaluation/A/character01/notes.txt".into(), b"hello".to_vec())],
            "entry images_evaluation/A/character01/notes.txt: not a PNG file",
        ),
        (
            "a corrupt PNG",
            vec![("images_evaluation/A/character01/01.png".into(), png(105, 0, 0)[..60].to_vec())],
            "entry images_evaluation/A/character01/01.png: not a readable PNG",
        ),
        (
            "the wrong size",
            vec![("images_evaluation/A/character01/01.png".into(), png(64, 0, 0))],
            "entry images_evaluation/A/character01/01.png: image is 64x64, Omniglot images are 105x105",
        ),
        (
            "too shallow",
            vec![("01.png".into(), png(105, 0, 0))],
            "entry 01.png: expected <set>/<Alphabet>/<character>/<drawing>.png",
        ),
        ("empty", vec![], "holds no images"),
    ];
    for (what, entries, expected) in cases {
        write_zip(&zip, &entries);
        let e = err(&data);
        assert!(e.contains(expected), "{what}: {e}");
        assert!(e.contains("images_evaluation.zip"), "{what}: {e}");
    }
    std::fs::write(&zip, b"PK\x03\x04 this is not really a zip").unwrap();
    let e = err(&data);
    assert!(e.contains("images_evaluation.zip: not a readable zip archive"), "{e}");
    // Nothing was cached from the failed loads.
    let cached = std::fs::read_dir(data.join("cache")).map_or(0, |d| d.count());
    assert_eq!(cached, 0);
}

/// Tasks from a fixture where every image says where it came from.
fn tasks(side: Side, n_way: usize, k: usize, q: usize) -> Result<OmniglotTasks, OmniglotError> {
    let data = fixture(&format!("tasks-{n_way}-{k}-{q}-{side:?}"));
    let (o, _) = load(&data).unwrap();
    OmniglotTasks::new(Arc::new(o), Protocol { seed: 1, train_characters: 6 }, side, n_way, k, q)
}

fn labels(s: &theta_core::Split<f64>) -> Vec<u32> {
    match s.y() {
        theta_core::Targets::Labels(l) => l.clone(),
        _ => panic!("classification tasks hold labels"),
    }
}

fn rows(task: &theta_core::Task<f64>) -> Vec<&[f64]> {
    (0..task.support.len())
        .map(|r| task.support.x().row(r))
        .chain((0..task.query.len()).map(|r| task.query.x().row(r)))
        .collect()
}

#[test]
fn tasks_hold_distinct_characters_and_drawings_class_by_class() {
    // Unrotated, every fixture image is unique, so equal rows would mean a
    // drawing (or character) drawn twice.
    let dist = tasks(Side::Train, 3, 2, 4).unwrap().without_rotations();
    let mut rng = rng_from_seed(5);
    for _ in 0..50 {
        let task = TaskDistribution::<f64>::sample(&dist, &mut rng).unwrap();
        assert_eq!((task.support.len(), task.query.len()), (6, 12));
        assert_eq!(labels(&task.support), [0, 0, 1, 1, 2, 2]);
        assert_eq!(labels(&task.query), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
        let rows = rows(&task);
        for (i, a) in rows.iter().enumerate() {
            assert!(a.iter().all(|&v| (0.0..=1.0).contains(&v)));
            assert!(a.contains(&1.0), "every image has its square");
            for b in &rows[i + 1..] {
                assert_ne!(a, b, "two points of a task are the same drawing");
            }
        }
    }
}

#[test]
fn classes_are_rotated_by_quarter_turns() {
    // Unrotated fixture squares start above source row 78, so output rows
    // 22 and below hold ink only in rotated images.
    let low_ink = |r: &[f64]| r[22 * SIDE..].iter().any(|&v| v > 0.0);
    let count = |dist: &OmniglotTasks| {
        let mut rng = rng_from_seed(6);
        let mut n = 0;
        for _ in 0..40 {
            let task = TaskDistribution::<f64>::sample(dist, &mut rng).unwrap();
            let rows = rows(&task);
            n += rows.iter().filter(|r| low_ink(r)).count();
        }
        n
    };
    let dist = tasks(Side::Train, 3, 2, 4).unwrap();
    assert_eq!(count(&dist.clone().without_rotations()), 0);
    assert!(count(&dist) > 100, "about half of the images are turned by 180° or 90°");
}

#[test]
fn the_split_is_disjoint_and_covers_every_character() {
    let train = tasks(Side::Train, 2, 1, 1).unwrap();
    let test = tasks(Side::Test, 2, 1, 1).unwrap();
    assert_eq!((train.num_characters(), test.num_characters()), (6, 4));
    let data = fixture("split");
    let (o, _) = load(&data).unwrap();
    let protocol = Protocol { seed: 1, train_characters: 6 };
    let mut all = theta_omniglot::split_characters(&o, protocol, Side::Train).unwrap();
    all.extend(theta_omniglot::split_characters(&o, protocol, Side::Test).unwrap());
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>(), "disjoint, and every character once");
    let other = Protocol { seed: 2, ..protocol };
    assert_ne!(
        theta_omniglot::split_characters(&o, protocol, Side::Test).unwrap(),
        theta_omniglot::split_characters(&o, other, Side::Test).unwrap(),
        "the seed decides the split"
    );
}

#[test]
fn sampling_is_a_function_of_the_seed() {
    let dist = tasks(Side::Test, 4, 1, 3).unwrap();
    let draw = |seed| {
        let mut rng = rng_from_seed(seed);
        TaskDistribution::<f32>::sample(&dist, &mut rng).unwrap()
    };
    assert_eq!(draw(9), draw(9));
    assert_ne!(draw(9), draw(10));
}

#[test]
fn requests_the_split_cannot_serve_name_the_numbers() {
    let e = tasks(Side::Test, 5, 1, 1).unwrap_err().to_string();
    assert_eq!(e, "n_way = 5 classes, but the test split holds only 4 characters");
    let e = tasks(Side::Train, 3, 6, 15).unwrap_err().to_string();
    assert!(e.contains("k_shot + query = 6 + 15 drawings per class"), "{e}");
    assert!(e.contains("have 20 drawings"), "{e}");
    let e = tasks(Side::Train, 1, 1, 1).unwrap_err().to_string();
    assert!(e.contains("between 2 and"), "{e}");
    let e = tasks(Side::Train, 2, 0, 1).unwrap_err().to_string();
    assert!(e.contains("at least 1"), "{e}");
    let data = fixture("protocol");
    let (o, _) = load(&data).unwrap();
    let e = OmniglotTasks::new(
        Arc::new(o),
        Protocol { seed: 1, train_characters: 10 },
        Side::Train,
        2,
        1,
        1,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("train_characters = 10 must be between 1 and 9"), "{e}");
}

#[test]
fn a_task_of_other_shapes_is_refused() {
    let dist = tasks(Side::Train, 3, 1, 1).unwrap();
    let other = tasks(Side::Train, 2, 1, 1).unwrap();
    let mut task = TaskDistribution::<f32>::empty_task(&other);
    let e = dist.sample_into(&mut rng_from_seed(1), &mut task).unwrap_err();
    assert!(e.to_string().contains("support"), "{e}");
}
