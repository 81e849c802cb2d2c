//! Bad inputs to the model stage give clear errors, never panics: non-ONNX files, truncated
//! models, missing files, wrong signatures (detection-only YOLO, classifier, wrong prototype
//! output; hand-encoded minimal ONNX graphs), bad options and unavailable execution providers.

use std::path::{Path, PathBuf};

use fastsam_track::model::{Device, EngineError, FastSam, ModelError, ModelOptions};
use fastsam_track::{ImageView, PixelFormat, Segmenter};
use prost::Message;

// --- a minimal subset of onnx.proto, enough to write constant-output graphs ---
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(int64, tag = "1")]
    ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    opset_import: Vec<OperatorSetIdProto>,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphProto>,
}
#[derive(Clone, PartialEq, Message)]
struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(int64, tag = "2")]
    version: i64,
}
#[derive(Clone, PartialEq, Message)]
struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "11")]
    input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    output: Vec<ValueInfoProto>,
}
#[derive(Clone, PartialEq, Message)]
struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    output: Vec<String>,
    #[prost(string, tag = "4")]
    op_type: String,
    #[prost(message, repeated, tag = "5")]
    attribute: Vec<AttributeProto>,
}
#[derive(Clone, PartialEq, Message)]
struct AttributeProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "5")]
    t: Option<TensorProto>,
    #[prost(int32, tag = "20")]
    r#type: i32,
}
#[derive(Clone, PartialEq, Message)]
struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    data_type: i32,
    #[prost(float, repeated, tag = "4")]
    float_data: Vec<f32>,
}
#[derive(Clone, PartialEq, Message)]
struct ValueInfoProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    r#type: Option<TypeProto>,
}
#[derive(Clone, PartialEq, Message)]
struct TypeProto {
    #[prost(message, optional, tag = "1")]
    tensor_type: Option<TypeTensor>,
}
#[derive(Clone, PartialEq, Message)]
struct TypeTensor {
    #[prost(int32, tag = "1")]
    elem_type: i32,
    #[prost(message, optional, tag = "2")]
    shape: Option<TensorShapeProto>,
}
#[derive(Clone, PartialEq, Message)]
struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    dim: Vec<Dimension>,
}
#[derive(Clone, PartialEq, Message)]
struct Dimension {
    #[prost(int64, optional, tag = "1")]
    dim_value: Option<i64>,
}

const FLOAT: i32 = 1;

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeTensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim: dims.iter().map(|&d| Dimension { dim_value: Some(d) }).collect() }),
            }),
        }),
    }
}

/// A graph with one (unused) image input `images[1,3,64,64]` and constant outputs of the given
/// shapes (filled with `fill`).
fn constant_model(outputs: &[(&str, &[i64])], fill: f32) -> Vec<u8> {
    constant_model_with_input(&[1, 3, 64, 64], outputs, fill)
}

fn constant_model_with_input(input: &[i64], outputs: &[(&str, &[i64])], fill: f32) -> Vec<u8> {
    let node = |name: &str, dims: &[i64]| NodeProto {
        input: vec![],
        output: vec![name.into()],
        op_type: "Constant".into(),
        attribute: vec![AttributeProto {
            name: "value".into(),
            t: Some(TensorProto {
                dims: dims.to_vec(),
                data_type: FLOAT,
                float_data: vec![fill; dims.iter().product::<i64>() as usize],
            }),
            r#type: 4, // TENSOR
        }],
    };
    let graph = GraphProto {
        node: outputs.iter().map(|(n, d)| node(n, d)).collect(),
        name: "g".into(),
        input: vec![value_info("images", input)],
        output: outputs.iter().map(|(n, d)| value_info(n, d)).collect(),
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(graph),
    }
    .encode_to_vec()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn cpu() -> ModelOptions {
    ModelOptions { device: Device::Cpu, ..ModelOptions::default() }
}

fn load_err(p: &Path, opts: ModelOptions) -> ModelError {
    match FastSam::load(p, opts) {
        Ok(_) => panic!("{} loaded but should have been refused", p.display()),
        Err(e) => e,
    }
}

// 64x64 input: 8x8 + 4x4 + 2x2 = 84 anchors, 16x16 prototypes
const A: i64 = 84;

#[test]
fn valid_minimal_signature_loads_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        write(dir.path(), "ok.onnx", &constant_model(&[("output0", &[1, 37, A]), ("output1", &[1, 32, 16, 16])], 0.0));
    let mut m = FastSam::load(&p, cpu()).unwrap();
    assert_eq!(m.signature().fixed_hw, Some((64, 64)));
    assert!(m.describe().contains("64x64"), "{}", m.describe());
    let img = vec![0u8; 100 * 50 * 3];
    // all scores 0 -> nothing passes conf 0.4
    let dets = m.segment(ImageView::packed(100, 50, PixelFormat::Rgb8, &img).unwrap()).unwrap();
    assert!(dets.is_empty());
}

#[test]
fn wrong_signatures_name_expected_and_found() {
    let dir = tempfile::tempdir().unwrap();
    type Outputs<'a> = Vec<(&'a str, &'a [i64])>;
    let cases: [(&str, Outputs, &str); 4] = [
        ("detect.onnx", vec![("output0", &[1, 5, A])], "detection-only"),
        ("classify.onnx", vec![("output0", &[1, 1000])], "classification"),
        ("badproto.onnx", vec![("output0", &[1, 37, A]), ("output1", &[1, 32, 8, 8])], "quarter"),
        ("fewrows.onnx", vec![("output0", &[1, 20, A]), ("output1", &[1, 32, 16, 16])], "mask prototype"),
    ];
    for (name, outs, hint) in cases {
        let p = write(dir.path(), name, &constant_model(&outs, 0.0));
        let e = load_err(&p, cpu());
        let msg = e.to_string();
        assert!(matches!(e, ModelError::Signature { .. }), "{name}: {msg}");
        assert!(msg.contains("expected images[N,3,H,W] -> output0[N,37,A], output1[N,32,H/4,W/4]"), "{msg}");
        assert!(msg.contains("found images[1,3,64,64]"), "{msg}");
        assert!(msg.contains(hint), "{name}: {msg}");
    }
    // a fixed batch of 2 cannot take one image at a time
    let outs: Outputs = vec![("output0", &[2, 37, A]), ("output1", &[2, 32, 16, 16])];
    let p = write(dir.path(), "batch2.onnx", &constant_model_with_input(&[2, 3, 64, 64], &outs, 0.0));
    let msg = load_err(&p, cpu()).to_string();
    assert!(msg.contains("found images[2,3,64,64]") && msg.contains("batch"), "{msg}");
}

#[test]
fn non_onnx_truncated_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "notes.onnx", b"this is not a model\n");
    let e = load_err(&p, cpu());
    assert!(matches!(e, ModelError::Engine(EngineError::InvalidOnnx { .. })), "{e}");
    assert!(e.to_string().contains("not a valid ONNX model"), "{e}");

    let good = constant_model(&[("output0", &[1, 37, A]), ("output1", &[1, 32, 16, 16])], 0.0);
    let p = write(dir.path(), "truncated_small.onnx", &good[..good.len() / 2]);
    assert!(matches!(load_err(&p, cpu()), ModelError::Engine(EngineError::InvalidOnnx { .. })));

    if let Some(real) = crate::support::assets::require("models/FastSAM-s-random-640.onnx") {
        let bytes = std::fs::read(real).unwrap();
        let p = write(dir.path(), "truncated.onnx", &bytes[..bytes.len() / 3]);
        let e = load_err(&p, cpu());
        assert!(matches!(e, ModelError::Engine(EngineError::InvalidOnnx { .. })), "{e}");
    }

    let e = load_err(&dir.path().join("missing.onnx"), cpu());
    assert!(matches!(e, ModelError::Engine(EngineError::Read { .. })), "{e}");
    assert!(e.to_string().contains("missing.onnx"), "{e}");
}

#[test]
fn bad_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        write(dir.path(), "ok.onnx", &constant_model(&[("output0", &[1, 37, A]), ("output1", &[1, 32, 16, 16])], 0.0));
    for o in [
        ModelOptions { conf: 1.5, ..cpu() },
        ModelOptions { iou: -0.1, ..cpu() },
        ModelOptions { max_det: 0, ..cpu() },
        ModelOptions { intra_threads: Some(0), ..cpu() },
        // fixed 64x64 model cannot run at 1024
        ModelOptions { imgsz: Some(1024), ..cpu() },
    ] {
        assert!(matches!(load_err(&p, o.clone()), ModelError::InvalidOption(_)), "{o:?}");
    }
    assert!("gpu".parse::<Device>().is_err());
    assert!("cuda:x".parse::<Device>().is_err());
    assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
    assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda(0));
    assert_eq!("tensorrt".parse::<Device>().unwrap(), Device::TensorRt(0));
    assert_eq!("auto".parse::<Device>().unwrap(), Device::Auto);
}

/// With the CPU-only ONNX Runtime build, an explicit CUDA/TensorRT device must fail loudly instead of
/// silently running on the CPU; `auto` falls back. Skipped where the CUDA provider is installed.
#[test]
fn explicit_gpu_device_without_provider_is_an_error() {
    let lib = fastsam_track::runtime::locate(None).unwrap();
    if lib.parent().is_some_and(|d| d.join("libonnxruntime_providers_cuda.so").exists()) {
        eprintln!("CUDA provider present; skipping the missing-provider check");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p =
        write(dir.path(), "ok.onnx", &constant_model(&[("output0", &[1, 37, A]), ("output1", &[1, 32, 16, 16])], 0.0));
    for d in [Device::Cuda(0), Device::TensorRt(0)] {
        let e = load_err(&p, ModelOptions { device: d, ..cpu() });
        assert!(matches!(e, ModelError::Engine(EngineError::Provider { .. })), "{d}: {e}");
        assert!(e.to_string().contains("--device cpu"), "{e}");
    }
    let m = FastSam::load(&p, ModelOptions { device: Device::Auto, ..cpu() }).unwrap();
    assert_eq!(m.provider(), "cpu");
}
