//! Property-based fuzzing of the data-only pickle reader (proptest).
//!
//! - hostile pickles that try to run code (`os.system`, `builtins.eval`, `subprocess.Popen`, ...)
//!   through GLOBAL/STACK_GLOBAL + REDUCE/NEWOBJ/BUILD/INST/OBJ: always a clear error, and the
//!   command (which would create a marker file) never runs;
//! - random byte strings and random opcode soups: no panic, `Ok` or a described error;
//! - mutations (byte flips, truncations, insertions) of a real Ultralytics `data.pkl`: no panic.
//!
//! Case counts are set with `PROPTEST_CASES` (default below); CONVERT.notes.md records a long run.

use crate::support::assets;

use std::io::Read;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use fastsam_track::convert::ConvertOptions;
use fastsam_track::convert::checkpoint::Checkpoint;
use fastsam_track::convert::graph::build_model;
use fastsam_track::convert::pickle::{PickleError, is_allowed_global, parse};
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const DANGEROUS: &[(&str, &str)] = &[
    ("os", "system"),
    ("posix", "system"),
    ("nt", "system"),
    ("subprocess", "Popen"),
    ("subprocess", "check_output"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("__builtin__", "eval"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("pickle", "loads"),
    ("torch", "load"),
    ("shutil", "rmtree"),
    ("webbrowser", "open"),
    ("runpy", "_run_code"),
    ("ultralytics.nn.tasks", "__builtins__"),
    ("torch.nn.modules.module", "__dict__"),
    ("os\nsystem", "x"),
    ("", "system"),
];

fn marker() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fastsam-pickle-fuzz-pwned-{}", std::process::id()))
}

fn binunicode(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s.as_bytes());
    v
}

/// A hostile pickle: import `module.name` one way, call it with a shell command one way.
fn hostile(module: &str, name: &str, import: u8, call: u8, proto: u8) -> Vec<u8> {
    let cmd = format!("touch {}", marker().display());
    let mut v = vec![0x80, proto];
    match import % 3 {
        0 => v.extend_from_slice(format!("c{module}\n{name}\n").as_bytes()),
        1 => {
            v.extend(binunicode(module));
            v.extend(binunicode(name));
            v.push(0x93); // STACK_GLOBAL
        }
        _ => {
            // INST opcode (protocol 0 style): module\nname\n with MARK'ed args.
            v.push(b'(');
            v.extend(binunicode(&cmd));
            v.extend_from_slice(format!("i{module}\n{name}\n.").as_bytes());
            return v;
        }
    }
    match call % 4 {
        0 => {
            v.extend(binunicode(&cmd));
            v.push(0x85); // TUPLE1
            v.push(b'R'); // REDUCE
        }
        1 => {
            v.extend(binunicode(&cmd));
            v.push(0x85);
            v.push(0x81); // NEWOBJ
        }
        2 => {
            // OBJ: MARK cls args OBJ
            let mut w = vec![0x80, proto, b'('];
            w.extend_from_slice(&v[2..]);
            w.extend(binunicode(&cmd));
            w.push(b'o');
            v = w;
        }
        _ => {
            v.push(b')');
            v.push(0x81);
            v.push(b'}');
            v.extend(binunicode("__setstate__"));
            v.extend(binunicode(&cmd));
            v.push(b's');
            v.push(b'b'); // BUILD
        }
    }
    v.push(b'.');
    v
}

/// The fixture checkpoint exists but is not a usable one (a Git LFS pointer, a truncated or
/// placeholder file): a failure under `FASTSAM_REQUIRE_ASSETS=1`, a loud skip otherwise, never a
/// silent pass.
fn unusable<T>(p: &std::path::Path, why: impl std::fmt::Display) -> Option<T> {
    let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let msg = format!("FIXTURE UNUSABLE: {} ({size} bytes) is not a usable checkpoint: {why}", p.display());
    if assets::required() {
        panic!("{msg} (a Git LFS pointer or placeholder?), and FASTSAM_REQUIRE_ASSETS=1");
    }
    eprintln!("\n!!!!!!!!!! SKIPPING: {msg} (a Git LFS pointer or placeholder?) !!!!!!!!!!\n");
    None
}

/// The fixture checkpoint's zip archive, or `None` (skip, or panic when required).
fn fixture_zip() -> Option<(std::path::PathBuf, zip::ZipArchive<std::fs::File>)> {
    let p = assets::require("models/FastSAM-n-synth.pt")?;
    let f = match std::fs::File::open(&p) {
        Ok(f) => f,
        Err(e) => return unusable(&p, e),
    };
    match zip::ZipArchive::new(f) {
        Ok(z) => Some((p, z)),
        Err(e) => unusable(&p, format!("not a zip archive ({e})")),
    }
}

fn real_pickle() -> Option<&'static [u8]> {
    static DATA: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    DATA.get_or_init(|| {
        let (p, mut z) = fixture_zip()?;
        let Some(name) = z.file_names().find(|n| n.ends_with("data.pkl")).map(str::to_string) else {
            return unusable(&p, "no data.pkl in the archive");
        };
        let mut buf = Vec::new();
        if let Err(e) = z.by_name(&name).map_err(std::io::Error::from).and_then(|mut f| f.read_to_end(&mut buf)) {
            return unusable(&p, format!("reading {name}: {e}"));
        }
        if buf.is_empty() {
            return unusable(&p, format!("{name} is empty"));
        }
        Some(buf)
    })
    .as_deref()
}

type Storages = std::collections::HashMap<String, Vec<u8>>;

fn real_storages() -> Option<&'static Storages> {
    static DATA: OnceLock<Option<Storages>> = OnceLock::new();
    DATA.get_or_init(|| {
        let (p, mut z) = fixture_zip()?;
        let names: Vec<String> = z.file_names().map(str::to_string).collect();
        let mut out = Storages::new();
        for n in names {
            if let Some((_, key)) = n.split_once("/data/") {
                let mut buf = Vec::new();
                if let Err(e) = z.by_name(&n).map_err(std::io::Error::from).and_then(|mut f| f.read_to_end(&mut buf)) {
                    return unusable(&p, format!("reading {n}: {e}"));
                }
                out.insert(key.to_string(), buf);
            }
        }
        if out.is_empty() {
            return unusable(&p, "no tensor storages (`*/data/*`) in the archive");
        }
        Some(out)
    })
    .as_ref()
}

#[test]
fn real_checkpoint_pickle_parses() {
    let Some(d) = real_pickle() else { return };
    let p = parse(d).expect("Ultralytics data.pkl must parse");
    assert!(p.dict_get(&p.root, "model").is_some());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_globals_are_refused_and_never_run(
        which in 0..DANGEROUS.len(), import in 0u8..3, call in 0u8..4, proto in 2u8..=5,
    ) {
        let (m, n) = DANGEROUS[which];
        let data = hostile(m, n, import, call, proto);
        let e = parse(&data).expect_err("a hostile pickle must be rejected");
        match &e {
            PickleError::Global { module, name, .. } => {
                // The refused name is the requested one (or, for names with embedded newlines, what the
                // text GLOBAL opcode actually reads), and it is not allowlisted.
                let requested = format!("{m}\n{n}");
                let refused = format!("{module}\n{name}");
                let dotted = format!("{module}.{name}");
                let msg = e.to_string();
                prop_assert!(requested.starts_with(&refused));
                prop_assert!(!is_allowed_global(module, name));
                prop_assert!(msg.contains("not in the allowlist"));
                prop_assert!(msg.contains(&dotted));
            }
            // INST/OBJ are refused as opcodes; malformed module names fail to parse as a line.
            PickleError::Opcode { .. } | PickleError::Malformed { .. } | PickleError::Truncated { .. } => {}
        }
        prop_assert!(!marker().exists(), "the command ran!");
    }

    #[test]
    fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..512), proto in 2u8..=5, prefix in any::<bool>()) {
        if prefix {
            data.splice(0..0, [0x80, proto]);
        }
        let r = parse(&data);
        if let Err(e) = r {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn opcode_soup_never_panics(ops in proptest::collection::vec(
        prop_oneof![
            Just(vec![b'(']), Just(vec![b')']), Just(vec![b']']), Just(vec![b'}']), Just(vec![b'N']),
            Just(vec![b'a']), Just(vec![b'e']), Just(vec![b's']), Just(vec![b'u']), Just(vec![b't']),
            Just(vec![b'l']), Just(vec![b'd']), Just(vec![b'R']), Just(vec![0x81]), Just(vec![b'b']),
            Just(vec![b'0']), Just(vec![b'1']), Just(vec![b'2']), Just(vec![b'Q']), Just(vec![0x85]),
            Just(vec![0x86]), Just(vec![0x87]), Just(vec![0x88]), Just(vec![0x8f]), Just(vec![0x90]),
            Just(vec![0x91]), Just(vec![0x94]), Just(vec![0x93]),
            any::<u8>().prop_map(|k| vec![b'K', k]),
            any::<u8>().prop_map(|k| vec![b'q', k]),
            any::<u8>().prop_map(|k| vec![b'h', k]),
            Just(b"ccollections\nOrderedDict\n".to_vec()),
            Just(b"ctorch._utils\n_rebuild_tensor_v2\n".to_vec()),
            Just(b"ctorch\nHalfStorage\n".to_vec()),
            Just(b"cultralytics.nn.modules.conv\nConv\n".to_vec()),
            Just(b"c__builtin__\nset\n".to_vec()),
            Just(binunicode("storage")), Just(binunicode("0")), Just(binunicode("cpu")),
        ],
        0..64,
    )) {
        let mut data = vec![0x80, 2];
        for o in ops {
            data.extend(o);
        }
        data.push(b'.');
        let _ = parse(&data);
    }

    #[test]
    fn mutated_real_pickle_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        cut in any::<prop::sample::Index>(), truncate in any::<bool>(),
    ) {
        let Some(orig) = real_pickle() else { return Ok(()) };
        let mut d = orig.to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(d.len());
            match kind {
                0 => d[i] = byte,
                1 => d.insert(i, byte),
                _ => { d.remove(i); }
            }
        }
        if truncate {
            d.truncate(cut.index(d.len()));
        }
        let _ = parse(&d);
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(150), failure_persistence: None, ..ProptestConfig::default() })]

    /// Whole conversions of a real checkpoint whose pickle was mutated (which changes shapes, layer
    /// wiring, attributes and types): an ONNX model or a clear error, never a panic.
    #[test]
    fn mutated_checkpoint_conversion_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let (Some(orig), Some(storages)) = (real_pickle(), real_storages()) else { return Ok(()) };
        let mut d = orig.to_vec();
        for (at, byte) in edits {
            let i = at.index(d.len());
            d[i] = byte;
        }
        let path = std::path::Path::new("mutated.pt");
        // Outcome counters (parse error, conversion error, converted), reported every 500 cases.
        static COUNTS: [AtomicUsize; 3] = [AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)];
        let outcome = match Checkpoint::from_parts(path, &d, storages.clone()) {
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                0
            }
            Ok(ck) => match build_model(&ck, &ConvertOptions::default()) {
                Ok((m, _)) => {
                    prop_assert!(m.graph.is_some());
                    2
                }
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    1
                }
            },
        };
        COUNTS[outcome].fetch_add(1, Ordering::Relaxed);
        let c: Vec<usize> = COUNTS.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        if c.iter().sum::<usize>() % 500 == 0 {
            eprintln!("mutated checkpoints: {} pickle errors, {} conversion errors, {} converted", c[0], c[1], c[2]);
        }
    }
}
