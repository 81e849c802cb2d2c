//! Reading Ultralytics checkpoints with the data-only reader: the architecture and parameter counts
//! of the shared test checkpoints (independent figures from MODELS.md), and clear errors for
//! hostile, non-zip and incomplete archives.

use crate::support::assets;

use std::io::Write;
use std::path::Path;

use fastsam_track::convert::checkpoint::{Checkpoint, ModuleRef};
use fastsam_track::convert::pickle::Node;
use fastsam_track::convert::{ConvertError, ConvertOptions, convert_checkpoint};

/// Sum of the numel of every parameter in the module tree (bounded depth).
fn count_params(m: &ModuleRef<'_>, depth: usize) -> usize {
    assert!(depth < 32, "module tree too deep");
    let p = &m.ck.pickle;
    let mut n = 0;
    if let Some(items) = m.attr("_parameters").and_then(|d| p.dict_items(d)) {
        for (_, v) in items {
            if let Some(Node::Tensor(t)) = p.node(v) {
                n += t.shape.iter().product::<u64>() as usize;
            }
        }
    }
    for (_, c) in m.children() {
        n += count_params(&c, depth + 1);
    }
    n
}

const YOLOV8_SEG_LAYERS: &[&str] = &[
    "Conv", "Conv", "C2f", "Conv", "C2f", "Conv", "C2f", "Conv", "C2f", "SPPF", "Upsample", "Concat", "C2f",
    "Upsample", "Concat", "C2f", "Conv", "Concat", "C2f", "Conv", "Concat", "C2f", "Segment",
];

fn check_arch(file: &str, params: usize, scale: &str) {
    let Some(pt) = assets::require(&format!("models/{file}")) else { return };
    let ck = Checkpoint::load(&pt).unwrap();
    assert_eq!(ck.meta_str("version").as_deref(), Some("8.4.190"));
    let model = ck.model().unwrap();
    assert_eq!(model.class(), "ultralytics.nn.tasks.SegmentationModel");
    assert_eq!(model.yaml_str("scale").as_deref(), Some(scale));
    let kinds: Vec<&str> = model.child("model").unwrap().children().iter().map(|(_, m)| m.kind()).collect();
    assert_eq!(kinds, YOLOV8_SEG_LAYERS);
    assert_eq!(count_params(&model, 0), params, "{file}: parameter count (MODELS.md)");
    // Ultralytics' BatchNorm eps and the first conv's shape.
    let l0 = model.child("model").unwrap().child("0").unwrap();
    assert_eq!(l0.child("bn").unwrap().float("eps"), Some(0.001));
    assert_eq!(l0.child("conv").unwrap().tensor("weight").unwrap().shape[1..], [3, 3, 3]);
    assert_eq!(model.names(), vec![(0, "object".to_string())]);
}

#[test]
fn fastsam_s_random_architecture_and_parameter_count() {
    check_arch("FastSAM-s-random.pt", 11_790_483, "s");
}

#[test]
fn fastsam_n_synth_architecture_and_parameter_count() {
    check_arch("FastSAM-n-synth.pt", 3_263_811, "n");
}

fn write_zip(path: &Path, files: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in files {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn hostile_checkpoint_is_refused_without_running_anything() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let cmd = format!("touch {}", marker.display());
    let mut pkl = b"\x80\x02cposix\nsystem\nX".to_vec();
    pkl.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
    pkl.extend_from_slice(cmd.as_bytes());
    pkl.extend_from_slice(b"\x85R.");
    let pt = dir.path().join("evil.pt");
    write_zip(&pt, &[("evil/data.pkl", &pkl), ("evil/version", b"3\n")]);
    let e = Checkpoint::load(&pt).err().expect("must be refused");
    assert!(matches!(e, ConvertError::Pickle { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("posix.system") && msg.contains("allowlist"), "{msg}");
    // The converter refuses it too, and nothing ran.
    let e = convert_checkpoint(&pt, &dir.path().join("evil.onnx"), &ConvertOptions::default()).unwrap_err();
    assert!(e.to_string().contains("posix.system"));
    assert!(!marker.exists());
    assert!(!dir.path().join("evil.onnx").exists());
}

#[test]
fn non_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("model.pt");
    std::fs::write(&txt, b"<html>404 Not Found</html>").unwrap();
    let e = Checkpoint::load(&txt).err().unwrap().to_string();
    assert!(e.contains("not a PyTorch zip checkpoint") && e.contains("download again"), "{e}");

    let nopkl = dir.path().join("nopkl.pt");
    write_zip(&nopkl, &[("x/version", b"3\n")]);
    let e = Checkpoint::load(&nopkl).err().unwrap().to_string();
    assert!(e.contains("no data.pkl"), "{e}");

    // A plain dict without a model.
    let dict = dir.path().join("dict.pt");
    write_zip(&dict, &[("d/data.pkl", b"\x80\x02}X\x01\x00\x00\x00aK\x01s.")]);
    let ck = Checkpoint::load(&dict).unwrap();
    let e = ck.model().err().unwrap().to_string();
    assert!(e.contains("no `model`"), "{e}");

    // Storages missing from the archive: the real pickle without its data/ files.
    let Some(pt) = assets::require("models/FastSAM-n-synth.pt") else { return };
    let mut z = zip::ZipArchive::new(std::fs::File::open(&pt).unwrap()).unwrap();
    let name = z.file_names().find(|n| n.ends_with("data.pkl")).unwrap().to_string();
    let mut pkl = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name(&name).unwrap(), &mut pkl).unwrap();
    let stripped = dir.path().join("stripped.pt");
    write_zip(&stripped, &[("s/data.pkl", &pkl)]);
    let e = convert_checkpoint(&stripped, &dir.path().join("s.onnx"), &ConvertOptions::default()).unwrap_err();
    assert!(e.to_string().contains("missing from the archive"), "{e}");
}

#[test]
fn bad_imgsz_is_rejected() {
    let Some(pt) = assets::require("models/FastSAM-n-synth.pt") else { return };
    let dir = tempfile::tempdir().unwrap();
    let e =
        convert_checkpoint(&pt, &dir.path().join("x.onnx"), &ConvertOptions { imgsz: Some((300, 320)) }).unwrap_err();
    assert!(e.to_string().contains("multiples of 32"), "{e}");
}
