//! Reading an Ultralytics `.pt` checkpoint (a `torch.save` zip archive) without PyTorch.
//!
//! The archive holds `<prefix>/data.pkl` (the object tree, read by the data-only
//! [`pickle`](super::pickle) reader) and `<prefix>/data/<key>` files with the raw little-endian
//! tensor storages. Modules in the tree (`SegmentationModel`, `Conv`, `C2f`, `Conv2d`, ...) are plain
//! attribute bags: [`ModuleRef`] gives access to their `_modules`, `_parameters`, `_buffers` and
//! other attributes, and [`Checkpoint::tensor`] materialises a tensor as f32.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::ConvertError;
use super::pickle::{self, DType, Node, Pickle, TensorRef, Value};

/// A dense f32 tensor (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// A loaded checkpoint: the parsed pickle plus the raw storages.
pub struct Checkpoint {
    pub path: PathBuf,
    pub pickle: Pickle,
    storages: HashMap<String, Vec<u8>>,
}

/// A module object inside the checkpoint.
#[derive(Clone, Copy)]
pub struct ModuleRef<'a> {
    pub ck: &'a Checkpoint,
    pub value: &'a Value,
}

/// The largest archive member we accept (a FastSAM-x checkpoint is ~140 MB in total).
const MAX_MEMBER: u64 = 2 << 30;

fn bad(path: &Path, msg: impl Into<String>) -> ConvertError {
    ConvertError::Checkpoint { path: path.to_path_buf(), msg: msg.into() }
}

impl Checkpoint {
    /// Opens and parses a checkpoint. Nothing in it is executed.
    pub fn load(path: &Path) -> Result<Checkpoint, ConvertError> {
        let file = std::fs::File::open(path).map_err(|e| ConvertError::io(path, e))?;
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
            bad(path, format!("not a PyTorch zip checkpoint ({e}); the file may be truncated or corrupt - delete it and download again"))
        })?;
        let names: Vec<String> = zip.file_names().map(str::to_string).collect();
        let pkl = names
            .iter()
            .find(|n| n.ends_with("/data.pkl") || n.as_str() == "data.pkl")
            .ok_or_else(|| bad(path, "no data.pkl in the archive: not a torch.save checkpoint"))?
            .clone();
        let prefix = pkl.trim_end_matches("data.pkl").to_string();
        let read_member = |zip: &mut zip::ZipArchive<std::io::BufReader<std::fs::File>>,
                           name: &str|
         -> Result<Vec<u8>, ConvertError> {
            let mut f = zip.by_name(name).map_err(|e| bad(path, format!("cannot read {name}: {e}")))?;
            if f.size() > MAX_MEMBER {
                return Err(bad(path, format!("archive member {name} is implausibly large ({} bytes)", f.size())));
            }
            let mut buf = Vec::with_capacity(f.size().min(64 << 20) as usize);
            f.read_to_end(&mut buf).map_err(|e| bad(path, format!("cannot read {name}: {e} (corrupt archive?)")))?;
            Ok(buf)
        };
        if let Some(bo) = names.iter().find(|n| n.ends_with("/byteorder")) {
            let b = read_member(&mut zip, &bo.clone())?;
            if b.trim_ascii() != b"little" {
                return Err(bad(path, "big-endian checkpoints are not supported"));
            }
        }
        let data = read_member(&mut zip, &pkl)?;
        let pickle =
            pickle::parse(&data).map_err(|source| ConvertError::Pickle { path: path.to_path_buf(), source })?;
        let mut storages = HashMap::new();
        let data_prefix = format!("{prefix}data/");
        for n in &names {
            if let Some(key) = n.strip_prefix(&data_prefix)
                && !key.is_empty()
                && !key.contains('/')
            {
                storages.insert(key.to_string(), read_member(&mut zip, n)?);
            }
        }
        Ok(Checkpoint { path: path.to_path_buf(), pickle, storages })
    }

    /// A checkpoint from an already extracted `data.pkl` and storages (`key` -> raw bytes).
    pub fn from_parts(path: &Path, data_pkl: &[u8], storages: HashMap<String, Vec<u8>>) -> Result<Self, ConvertError> {
        let pickle =
            pickle::parse(data_pkl).map_err(|source| ConvertError::Pickle { path: path.to_path_buf(), source })?;
        Ok(Checkpoint { path: path.to_path_buf(), pickle, storages })
    }

    /// The root object (the checkpoint dict).
    pub fn root(&self) -> &Value {
        &self.pickle.root
    }

    /// The model module: `ckpt["model"]`, falling back to `ckpt["ema"]`.
    pub fn model(&self) -> Result<ModuleRef<'_>, ConvertError> {
        let root = self.root();
        for key in ["model", "ema"] {
            if let Some(v) = self.pickle.dict_get(root, key)
                && self.pickle.object(v).is_some()
            {
                return Ok(ModuleRef { ck: self, value: v });
            }
        }
        Err(bad(&self.path, "the checkpoint has no `model` (or `ema`) module object; is it an Ultralytics checkpoint?"))
    }

    /// A string entry of the checkpoint dict (e.g. `version`, `date`).
    pub fn meta_str(&self, key: &str) -> Option<String> {
        match self.pickle.dict_get(self.root(), key)? {
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    /// Materialises a tensor value as f32.
    pub fn tensor(&self, v: &Value) -> Result<Tensor, ConvertError> {
        let t = match self.pickle.node(v) {
            Some(Node::Tensor(t)) => t,
            _ => return Err(bad(&self.path, "expected a tensor")),
        };
        self.materialise(t)
    }

    fn materialise(&self, t: &TensorRef) -> Result<Tensor, ConvertError> {
        let raw = self.storages.get(&t.storage.key).ok_or_else(|| {
            bad(&self.path, format!("tensor storage data/{} is missing from the archive", t.storage.key))
        })?;
        let es = t.storage.dtype.size();
        let numel_storage = (raw.len() / es) as u64;
        if numel_storage < t.storage.numel {
            return Err(bad(
                &self.path,
                format!(
                    "storage data/{} holds {} elements but {} were declared (truncated file?)",
                    t.storage.key, numel_storage, t.storage.numel
                ),
            ));
        }
        let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
        let mut n: u64 = 1;
        for &d in &t.shape {
            n = n.checked_mul(d).ok_or_else(|| bad(&self.path, "tensor too large"))?;
        }
        // Checkpoint tensors are never broadcast views much larger than their storage.
        if n > t.storage.numel.max(1).saturating_mul(16) || n > 1 << 30 {
            return Err(bad(&self.path, format!("tensor of {n} elements is implausible for its storage")));
        }
        // Largest index touched must be in bounds.
        if n > 0 {
            let mut max = t.offset;
            for (&d, &s) in t.shape.iter().zip(&t.stride) {
                max = (d - 1)
                    .checked_mul(s)
                    .and_then(|x| x.checked_add(max))
                    .ok_or_else(|| bad(&self.path, "tensor strides overflow"))?;
            }
            if max >= t.storage.numel {
                return Err(bad(&self.path, format!("tensor view exceeds its storage data/{}", t.storage.key)));
            }
        }
        let read = |i: usize| -> f32 {
            let b = &raw[i * es..(i + 1) * es];
            match t.storage.dtype {
                DType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
                DType::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
                DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                DType::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
                DType::I64 => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
                DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
                DType::I16 => i16::from_le_bytes([b[0], b[1]]) as f32,
                DType::I8 => b[0] as i8 as f32,
                DType::U8 | DType::Bool => b[0] as f32,
            }
        };
        let mut data = Vec::with_capacity(n as usize);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..n {
            let mut off = t.offset as usize;
            for (k, &i) in idx.iter().enumerate() {
                off += i * t.stride[k] as usize;
            }
            data.push(read(off));
            for k in (0..idx.len()).rev() {
                idx[k] += 1;
                if idx[k] < shape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        Ok(Tensor { shape, data })
    }
}

impl<'a> ModuleRef<'a> {
    fn p(&self) -> &'a Pickle {
        &self.ck.pickle
    }

    fn err(&self, msg: impl Into<String>) -> ConvertError {
        bad(&self.ck.path, msg)
    }

    /// The class name, e.g. `ultralytics.nn.modules.block.C2f`.
    pub fn class(&self) -> &'a str {
        self.p().object(self.value).map(|(c, _)| c).unwrap_or("")
    }

    /// The last component of the class name, e.g. `C2f`.
    pub fn kind(&self) -> &'a str {
        let c = self.class();
        c.rsplit('.').next().unwrap_or(c)
    }

    /// An attribute from the module's `__dict__`.
    pub fn attr(&self, name: &str) -> Option<&'a Value> {
        self.p().attr(self.value, name)
    }

    /// A child module by name (`_modules[name]`).
    pub fn child(&self, name: &str) -> Result<ModuleRef<'a>, ConvertError> {
        self.child_opt(name).ok_or_else(|| self.err(format!("{} has no submodule `{name}`", self.kind())))
    }

    pub fn child_opt(&self, name: &str) -> Option<ModuleRef<'a>> {
        let mods = self.attr("_modules")?;
        let v = self.p().dict_get(mods, name)?;
        self.p().object(v)?;
        Some(ModuleRef { ck: self.ck, value: v })
    }

    /// Child modules in order (for `Sequential` / `ModuleList`).
    pub fn children(&self) -> Vec<(String, ModuleRef<'a>)> {
        let Some(mods) = self.attr("_modules") else { return Vec::new() };
        let Some(items) = self.p().dict_items(mods) else { return Vec::new() };
        items
            .iter()
            .filter_map(|(k, v)| match k {
                Value::Str(s) if self.p().object(v).is_some() => {
                    Some((s.to_string(), ModuleRef { ck: self.ck, value: v }))
                }
                _ => None,
            })
            .collect()
    }

    /// A parameter or buffer (`None` when absent or `None`-valued, e.g. a bias-free conv).
    pub fn tensor_opt(&self, name: &str) -> Result<Option<Tensor>, ConvertError> {
        for store in ["_parameters", "_buffers"] {
            if let Some(d) = self.attr(store)
                && let Some(v) = self.p().dict_get(d, name)
            {
                if matches!(v, Value::None) {
                    return Ok(None);
                }
                return self.ck.tensor(v).map(Some);
            }
        }
        // Plain tensor attributes (e.g. Detect.stride).
        match self.attr(name) {
            Some(v @ Value::Ref(_)) if matches!(self.p().node(v), Some(Node::Tensor(_))) => self.ck.tensor(v).map(Some),
            _ => Ok(None),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<Tensor, ConvertError> {
        self.tensor_opt(name)?.ok_or_else(|| self.err(format!("{} has no tensor `{name}`", self.kind())))
    }

    /// An integer attribute, or the first element of a tuple attribute (`kernel_size=(3, 3)`).
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.attr(name)? {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            v => match self.p().seq(v)?.first()? {
                Value::Int(i) => Some(*i),
                _ => None,
            },
        }
    }

    /// A list of ints from a tuple/list attribute (or a single int, as a one-element list).
    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        match self.attr(name)? {
            Value::Int(i) => Some(vec![*i]),
            v => self.p().seq(v)?.iter().map(|x| if let Value::Int(i) = x { Some(*i) } else { None }).collect(),
        }
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        match self.attr(name)? {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            v => match self.p().seq(v)?.first()? {
                Value::Float(f) => Some(*f),
                Value::Int(i) => Some(*i as f64),
                _ => None,
            },
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.attr(name)? {
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }

    pub fn string(&self, name: &str) -> Option<String> {
        match self.attr(name)? {
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    /// The module's `yaml` dict entry `key` as a string (e.g. `scale`, `yaml_file`).
    pub fn yaml_str(&self, key: &str) -> Option<String> {
        let y = self.attr("yaml")?;
        match self.p().dict_get(y, key)? {
            Value::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    /// Class names from `names` (a dict {int: str} or a list).
    pub fn names(&self) -> Vec<(i64, String)> {
        let Some(v) = self.attr("names") else { return Vec::new() };
        if let Some(items) = self.p().dict_items(v) {
            return items
                .iter()
                .filter_map(|(k, v)| match (k, v) {
                    (Value::Int(i), Value::Str(s)) => Some((*i, s.to_string())),
                    _ => None,
                })
                .collect();
        }
        if let Some(items) = self.p().seq(v) {
            return items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| if let Value::Str(s) = v { Some((i as i64, s.to_string())) } else { None })
                .collect();
        }
        Vec::new()
    }
}
