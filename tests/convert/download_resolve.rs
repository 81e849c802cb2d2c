//! `resolve_model` end to end with a loopback mirror (`FASTSAM_MODEL_BASE_URL`) serving the
//! checkpoint-format test file as `FastSAM-s.pt`: offline message, download + convert into the cache,
//! cache hits without network, `FASTSAM_MODEL`, explicit paths and clear errors.
//!
//! Everything runs in one test function because it changes process-wide environment variables.

use crate::support::assets;

use std::path::Path;
use std::sync::Arc;

use crate::support::http::{Plan, Server};
use fastsam_track::convert::graph::CONVERTER_VERSION;
use fastsam_track::convert::onnx_proto::ModelProto;
use fastsam_track::convert::{ConvertError, resolve_model};

fn set(k: &str, v: Option<&str>) {
    // SAFETY: this test binary has a single test, so no other thread reads the environment concurrently.
    unsafe {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
}

fn output_names(p: &Path) -> Vec<String> {
    let m = ModelProto::decode_bytes(&std::fs::read(p).unwrap()).unwrap();
    m.graph.unwrap().output.into_iter().map(|o| o.name).collect()
}

#[test]
fn resolve_model_offline_download_convert_and_cache() {
    let Some(pt) = assets::require("models/FastSAM-s-random.pt") else { return };
    let data = Arc::new(std::fs::read(&pt).unwrap());
    let srv = Server::start(data, |_, _| Plan::Full { ignore_range: false });
    let cache = tempfile::tempdir().unwrap();
    set("FASTSAM_CACHE_DIR", Some(cache.path().to_str().unwrap()));
    set("FASTSAM_MODEL", None);
    set("FASTSAM_MODEL_BASE_URL", Some(&srv.base()));

    // 1. Offline: nothing cached -> the error names the exact place to put the file.
    set("FASTSAM_OFFLINE", Some("1"));
    let e = resolve_model(None).unwrap_err();
    let msg = e.to_string();
    let expected = cache.path().join("FastSAM-s.pt");
    assert!(matches!(e, ConvertError::Offline { .. }), "{msg}");
    assert!(msg.contains(&expected.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("{}/FastSAM-s.pt", srv.base())), "{msg}");
    let e = resolve_model(Some("FastSAM-x.pt")).unwrap_err();
    assert!(e.to_string().contains("FastSAM-x.pt"), "{e}");
    assert!(srv.requests().is_empty(), "offline mode must not touch the network");

    // 2. Online: download from the mirror and convert.
    set("FASTSAM_OFFLINE", None);
    let onnx = resolve_model(Some("FastSAM-s")).unwrap();
    assert!(onnx.starts_with(cache.path().join("converted")), "{}", onnx.display());
    assert_eq!(output_names(&onnx), ["output0", "output1"]);
    assert_eq!(srv.requests().len(), 1);
    assert_eq!(srv.requests()[0].0, "/FastSAM-s.pt");
    assert!(expected.is_file());
    let name = onnx.file_name().unwrap().to_string_lossy().to_string();
    // Cache key: sha256 of the weights (first 16 hex) + converter version.
    assert_eq!(name, format!("FastSAM-s-e1b435f27531ef67-c{CONVERTER_VERSION}.onnx"));

    // 3. Cached: same answer for all the spellings, no new request, no reconversion.
    let mtime = std::fs::metadata(&onnx).unwrap().modified().unwrap();
    set("FASTSAM_OFFLINE", Some("1"));
    for spec in [None, Some("FastSAM-s"), Some("fastsam-s.pt"), Some(" FastSAM-s.pt ")] {
        assert_eq!(resolve_model(spec).unwrap(), onnx, "{spec:?}");
    }
    assert_eq!(std::fs::metadata(&onnx).unwrap().modified().unwrap(), mtime);
    assert_eq!(srv.requests().len(), 1);

    // 4. FASTSAM_MODEL and explicit paths.
    set("FASTSAM_MODEL", Some(onnx.to_str().unwrap()));
    assert_eq!(resolve_model(None).unwrap(), onnx);
    set("FASTSAM_MODEL", None);
    let from_pt = resolve_model(Some(pt.to_str().unwrap())).unwrap();
    assert_eq!(
        from_pt.file_name().unwrap().to_string_lossy(),
        format!("FastSAM-s-random-e1b435f27531ef67-c{CONVERTER_VERSION}.onnx"),
        "a local .pt is converted into the cache, keyed by its weights' hash"
    );
    assert_eq!(resolve_model(Some(pt.to_str().unwrap())).unwrap(), from_pt);

    // 5. Clear errors.
    let e = resolve_model(Some("/nonexistent/model.onnx")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/model.onnx") && msg.contains("yolo export model=FastSAM-s.pt format=onnx"),
        "{msg}"
    );
    let txt = cache.path().join("notes.txt");
    std::fs::write(&txt, "x").unwrap();
    assert!(resolve_model(Some(txt.to_str().unwrap())).unwrap_err().to_string().contains("unknown file type"));
    set("FASTSAM_OFFLINE", None);

    // 6. Two concurrent fetches of the same model (slow server): one download, both get the file.
    let slow = Server::start(Arc::new(std::fs::read(&pt).unwrap()), |_, _| Plan::Slow { chunk: 1 << 20, delay_ms: 20 });
    let cache2 = tempfile::tempdir().unwrap();
    set("FASTSAM_CACHE_DIR", Some(cache2.path().to_str().unwrap()));
    set("FASTSAM_MODEL_BASE_URL", Some(&slow.base()));
    let threads: Vec<_> =
        (0..2).map(|_| std::thread::spawn(|| fastsam_track::convert::cache::fetch("FastSAM-s", false))).collect();
    let paths: Vec<_> = threads.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
    assert_eq!(paths[0], paths[1]);
    assert_eq!(slow.requests().len(), 1, "the second process must wait for the first download");
    assert_eq!(
        fastsam_track::convert::download::sha256_file(&paths[0]).unwrap(),
        "e1b435f27531ef6714b493c0f97d9bfbfda153f73b8aa4a023d6f0018b03f272"
    );

    set("FASTSAM_CACHE_DIR", None);
    set("FASTSAM_MODEL_BASE_URL", None);
}
