//! Loads Omniglot and prints what it found and how long it took:
//! `cargo run --release -p theta-omniglot --example omniglot_load -- DATA_DIR CACHE_DIR`.
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data = PathBuf::from(args.next().unwrap_or_else(|| "../shared/data/omniglot".into()));
    let cache = PathBuf::from(args.next().unwrap_or_else(|| "target/omniglot-cache".into()));
    let t = Instant::now();
    let (o, report) = theta_omniglot::Omniglot::load(&data, &cache, &mut |_, _| {})?;
    println!(
        "{} characters, {} images in {:.3} s (from cache: {}, {:?})",
        o.characters().len(),
        o.num_images(),
        t.elapsed().as_secs_f64(),
        report.from_cache,
        report.cache_problem
    );
    Ok(())
}
