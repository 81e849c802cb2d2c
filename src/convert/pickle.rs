//! A data-only reader for Python pickles (protocols 2-5) as written by `torch.save`.
//!
//! Unlike `pickle.load` / `torch.load`, this reader **never imports or calls anything**. It only
//! rebuilds plain data: `None`, bools, ints, floats, strings, bytes, lists, tuples, dicts and sets.
//! `GLOBAL` / `STACK_GLOBAL` are accepted only for an allowlist of names ([`is_allowed_global`]):
//! PyTorch's tensor/parameter rebuild helpers and storage types, `collections.OrderedDict`,
//! `builtins.set`, and module classes (`ultralytics.*`, `torch.nn.modules.*`), which become plain
//! attribute bags ([`Node::Object`]) whose state is recorded by `BUILD` without running any code.
//! Anything else (for example `os.system`, `builtins.eval`, `subprocess.Popen`) is rejected with
//! an error naming the global, as is any opcode outside the data-building set (`INST`, `OBJ`,
//! extension-registry opcodes, out-of-band buffers) and any malformed structure.
//!
//! Values live in an arena ([`Pickle::nodes`]); containers are referenced by index
//! ([`Value::Ref`]) so that memoised objects are shared as in Python and hostile inputs cannot cause
//! exponential copying. Readers that walk the result must bound their recursion (cycles are
//! possible in hostile input); the helpers here do.

use std::rc::Rc;

/// Errors from [`parse`]: always a description of what was wrong and where.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PickleError {
    #[error("pickle truncated at byte {pos} (reading {what}); the file is incomplete or corrupt")]
    Truncated { pos: usize, what: &'static str },
    #[error("unsupported pickle opcode 0x{op:02x} ({name}) at byte {pos}; only data-building opcodes are allowed")]
    Opcode { op: u8, name: &'static str, pos: usize },
    #[error(
        "refusing to load global `{module}.{name}` at byte {pos}: it is not in the allowlist of data-only types \
         (this reader never imports or calls arbitrary code)"
    )]
    Global { module: String, name: String, pos: usize },
    #[error("malformed pickle at byte {pos}: {msg}")]
    Malformed { pos: usize, msg: String },
}

/// A pickle value. Containers and objects are [`Value::Ref`]s into [`Pickle::nodes`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    /// An allowlisted global name (module, name), never resolved to code.
    Global(Rc<(String, String)>),
    Ref(usize),
}

/// A torch storage reference from `persistent_load`: `('storage', torch.XStorage, key, location, numel)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub dtype: DType,
    pub key: String,
    pub numel: u64,
}

/// Element types of torch storages that we understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    fn from_storage_name(name: &str) -> Option<DType> {
        Some(match name {
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
}

/// A tensor rebuilt by `torch._utils._rebuild_tensor_v2` (data still in the storage).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// An arena node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// An instance of an allowlisted class, as a plain attribute bag: `args` from NEWOBJ/REDUCE,
    /// `state` from BUILD (for torch modules and Ultralytics blocks, a dict of attributes).
    Object {
        class: String,
        args: Vec<Value>,
        state: Value,
    },
    Storage(StorageRef),
    Tensor(TensorRef),
}

/// The parsed pickle: the root value plus the arena it refers to.
#[derive(Debug, Clone)]
pub struct Pickle {
    pub root: Value,
    pub nodes: Vec<Node>,
}

/// How a global may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobalKind {
    RebuildTensor,
    RebuildParameter,
    Storage,
    OrderedDict,
    Set,
    FrozenSet,
    Size,
    /// A class whose instances become attribute bags.
    Class,
    /// `_codecs.encode(str, 'latin1')`, used by protocol-2 pickles for bytes.
    CodecsEncode,
}

fn classify_global(module: &str, name: &str) -> Option<GlobalKind> {
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !ident(module) || !ident(name) {
        return None;
    }
    Some(match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => GlobalKind::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => GlobalKind::RebuildParameter,
        ("torch", n) if DType::from_storage_name(n).is_some() => GlobalKind::Storage,
        ("torch", "Size") => GlobalKind::Size,
        ("collections", "OrderedDict") => GlobalKind::OrderedDict,
        ("__builtin__" | "builtins", "set") => GlobalKind::Set,
        ("__builtin__" | "builtins", "frozenset") => GlobalKind::FrozenSet,
        ("_codecs", "encode") => GlobalKind::CodecsEncode,
        ("types", "SimpleNamespace") | ("argparse", "Namespace") => GlobalKind::Class,
        ("pathlib", "PosixPath" | "WindowsPath" | "Path") => GlobalKind::Class,
        ("torch", "device" | "float16" | "float32") => GlobalKind::Class,
        // NumPy scalars/arrays in training metadata (e.g. metrics): kept as opaque bags, never rebuilt.
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar" | "_reconstruct") => GlobalKind::Class,
        ("numpy", "dtype" | "ndarray") => GlobalKind::Class,
        (m, _) if (m.starts_with("ultralytics.") || m.starts_with("torch.nn.modules.")) && !name.starts_with('_') => {
            GlobalKind::Class
        }
        _ => return None,
    })
}

/// Whether `module.name` may appear in a checkpoint read by this module.
pub fn is_allowed_global(module: &str, name: &str) -> bool {
    classify_global(module, name).is_some()
}

/// Limits that keep hostile inputs cheap.
const MAX_STACK: usize = 1 << 20;
const MAX_NODES: usize = 1 << 24;
const MAX_MEMO: usize = 1 << 24;
const MAX_WORK: u64 = 1 << 22;

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Value>,
    nodes: Vec<Node>,
    op_pos: usize,
    work: u64,
}

fn op_name(op: u8) -> &'static str {
    match op {
        b'i' => "INST",
        b'o' => "OBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        b'P' => "PERSID",
        _ => "unknown",
    }
}

/// Parses a pickle without executing anything.
pub fn parse(data: &[u8]) -> Result<Pickle, PickleError> {
    let mut p = Parser {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
        nodes: Vec::new(),
        op_pos: 0,
        work: 0,
    };
    let root = p.run()?;
    Ok(Pickle { root, nodes: p.nodes })
}

impl<'a> Parser<'a> {
    fn err(&self, msg: impl Into<String>) -> PickleError {
        PickleError::Malformed { pos: self.op_pos, msg: msg.into() }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(e) => {
                let s = &self.data[self.pos..e];
                self.pos = e;
                Ok(s)
            }
            None => Err(PickleError::Truncated { pos: self.pos, what }),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1, "byte")?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2, "u16")?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4, "u32")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8, "u64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or(PickleError::Truncated { pos: self.pos, what: "line" })?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("non-UTF-8 text argument"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, v: Value) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return Err(self.err("stack too deep"));
        }
        self.stack.push(v);
        Ok(())
    }
    fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }
    fn top(&self) -> Result<&Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.last().ok_or_else(|| self.err("stack underflow"))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let m = self.marks.pop().ok_or_else(|| self.err("MARK expected but none on the stack"))?;
        Ok(self.stack.split_off(m))
    }
    fn alloc(&mut self, n: Node) -> Result<Value, PickleError> {
        if self.nodes.len() >= MAX_NODES {
            return Err(self.err("too many objects"));
        }
        self.nodes.push(n);
        Ok(Value::Ref(self.nodes.len() - 1))
    }
    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(self.err("memo too large"));
        }
        self.memo.insert(key, v);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| self.err(format!("memo key {key} not defined")))?;
        self.push(v)
    }
    fn node_mut(&mut self, v: &Value) -> Result<&mut Node, PickleError> {
        match v {
            Value::Ref(i) if *i < self.nodes.len() => Ok(&mut self.nodes[*i]),
            other => Err(self.err(format!("expected a container, found {}", describe(other)))),
        }
    }

    fn str_value(&self, b: &[u8]) -> Result<Value, PickleError> {
        let s = std::str::from_utf8(b).map_err(|_| self.err("invalid UTF-8 in string"))?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn global(&mut self, module: &str, name: &str) -> Result<Value, PickleError> {
        if classify_global(module, name).is_none() {
            return Err(PickleError::Global { module: module.into(), name: name.into(), pos: self.op_pos });
        }
        Ok(Value::Global(Rc::new((module.to_string(), name.to_string()))))
    }

    fn tuple_items(&mut self, v: &Value) -> Result<Vec<Value>, PickleError> {
        let items = match v {
            Value::Ref(i) => match self.nodes.get(*i) {
                Some(Node::Tuple(t)) | Some(Node::List(t)) => t.clone(),
                _ => return Err(self.err("expected a tuple of arguments")),
            },
            _ => return Err(self.err("expected a tuple of arguments")),
        };
        // Bound the total copying a hostile pickle can trigger (re-using one huge tuple many times).
        self.work += items.len() as u64;
        if self.work > MAX_WORK {
            return Err(self.err("too much work: argument tuples are re-used excessively"));
        }
        Ok(items)
    }

    fn int_list(&mut self, v: &Value, what: &str) -> Result<Vec<u64>, PickleError> {
        self.tuple_items(v)?
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => Ok(*i as u64),
                _ => Err(self.err(format!("{what} must be a tuple of non-negative ints"))),
            })
            .collect()
    }

    /// Applies an allowlisted callable to arguments (REDUCE / NEWOBJ), building data only.
    fn call(&mut self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let g = match &callable {
            Value::Global(g) => g.clone(),
            other => return Err(self.err(format!("REDUCE/NEWOBJ on a non-global ({})", describe(other)))),
        };
        let kind = classify_global(&g.0, &g.1).ok_or_else(|| PickleError::Global {
            module: g.0.clone(),
            name: g.1.clone(),
            pos: self.op_pos,
        })?;
        let args = self.tuple_items(&args)?;
        match kind {
            GlobalKind::RebuildTensor => {
                if args.len() < 4 {
                    return Err(self.err("_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)"));
                }
                let storage = match &args[0] {
                    Value::Ref(i) => match self.nodes.get(*i) {
                        Some(Node::Storage(s)) => s.clone(),
                        _ => return Err(self.err("_rebuild_tensor_v2: first argument is not a storage")),
                    },
                    _ => return Err(self.err("_rebuild_tensor_v2: first argument is not a storage")),
                };
                let offset = match args[1] {
                    Value::Int(o) if o >= 0 => o as u64,
                    _ => return Err(self.err("_rebuild_tensor_v2: bad storage offset")),
                };
                let shape = self.int_list(&args[2], "tensor size")?;
                let stride = self.int_list(&args[3], "tensor stride")?;
                if shape.len() != stride.len() {
                    return Err(self.err("_rebuild_tensor_v2: size and stride have different lengths"));
                }
                self.alloc(Node::Tensor(TensorRef { storage, offset, shape, stride }))
            }
            GlobalKind::RebuildParameter => match args.first() {
                Some(v @ Value::Ref(i)) if matches!(self.nodes.get(*i), Some(Node::Tensor(_))) => Ok(v.clone()),
                _ => Err(self.err("_rebuild_parameter: first argument is not a tensor")),
            },
            GlobalKind::OrderedDict => {
                if !args.is_empty() {
                    return Err(self.err("OrderedDict with constructor arguments is not supported"));
                }
                self.alloc(Node::Dict(Vec::new()))
            }
            GlobalKind::Set | GlobalKind::FrozenSet => {
                let items = match args.first() {
                    None => Vec::new(),
                    Some(v) => self.tuple_items(v)?,
                };
                self.alloc(Node::Set(items))
            }
            GlobalKind::Size => match args.first() {
                Some(v) => {
                    let items = self.tuple_items(v)?;
                    self.alloc(Node::Tuple(items))
                }
                None => self.alloc(Node::Tuple(Vec::new())),
            },
            GlobalKind::CodecsEncode => match args.first() {
                Some(Value::Str(s)) => {
                    // latin-1: every char must be < 256.
                    let mut out = Vec::with_capacity(s.len());
                    for c in s.chars() {
                        let c = c as u32;
                        if c > 255 {
                            return Err(self.err("_codecs.encode: non-latin-1 character"));
                        }
                        out.push(c as u8);
                    }
                    Ok(Value::Bytes(Rc::from(out)))
                }
                _ => Err(self.err("_codecs.encode expects a string")),
            },
            GlobalKind::Storage => Err(self.err("storage types cannot be called; they appear only in persistent ids")),
            GlobalKind::Class => {
                self.alloc(Node::Object { class: format!("{}.{}", g.0, g.1), args, state: Value::None })
            }
        }
    }

    fn persistent_load(&mut self, pid: Value) -> Result<Value, PickleError> {
        let items = self.tuple_items(&pid)?;
        let bad = || "persistent id must be ('storage', torch.<T>Storage, key, location, numel)";
        if items.len() < 5 {
            return Err(self.err(bad()));
        }
        match &items[0] {
            Value::Str(s) if &**s == "storage" => {}
            _ => return Err(self.err(bad())),
        }
        let dtype = match &items[1] {
            Value::Global(g) if g.0 == "torch" => {
                DType::from_storage_name(&g.1).ok_or_else(|| self.err(format!("unknown storage type torch.{}", g.1)))?
            }
            _ => return Err(self.err(bad())),
        };
        let key = match &items[2] {
            Value::Str(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => s.to_string(),
            _ => return Err(self.err("storage key must be a simple name")),
        };
        let numel = match items[4] {
            Value::Int(n) if n >= 0 => n as u64,
            _ => return Err(self.err(bad())),
        };
        self.alloc(Node::Storage(StorageRef { dtype, key, numel }))
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return Err(self.err(format!("pickle protocol {proto} is not supported (need 2..5)")));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME length: frames are only a buffering hint
                }
                b'.' => {
                    let v = self.pop()?;
                    if !self.marks.is_empty() {
                        return Err(self.err("STOP with an open MARK"));
                    }
                    return Ok(v);
                }
                b'(' => {
                    if self.marks.len() >= MAX_STACK {
                        return Err(self.err("too many marks"));
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let b = self.take(4, "BININT")?;
                    self.push(Value::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64))?;
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64))?;
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as usize } else { self.u32()? as usize };
                    let b = self.take(n, "LONG")?;
                    if n > 8 {
                        return Err(self.err("integer wider than 64 bits"));
                    }
                    let v = if n == 0 {
                        0
                    } else {
                        let neg = b[n - 1] & 0x80 != 0;
                        let mut a = if neg { [0xffu8; 8] } else { [0u8; 8] };
                        a[..n].copy_from_slice(b);
                        i64::from_le_bytes(a)
                    };
                    self.push(Value::Int(v))?;
                }
                b'I' | b'L' => {
                    let s = self.line()?;
                    let t = s.trim_end_matches('L');
                    let v = match t {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        _ => Value::Int(t.parse().map_err(|_| self.err(format!("bad integer literal {s:?}")))?),
                    };
                    self.push(v)?;
                }
                b'G' => {
                    let b = self.take(8, "BINFLOAT")?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)))?;
                }
                b'F' => {
                    let s = self.line()?;
                    let v: f64 = s.parse().map_err(|_| self.err(format!("bad float literal {s:?}")))?;
                    self.push(Value::Float(v))?;
                }
                0x8c | b'X' | 0x8d => {
                    let n = match op {
                        0x8c => self.u8()? as usize,
                        b'X' => self.u32()? as usize,
                        _ => usize::try_from(self.u64()?).map_err(|_| self.err("string too long"))?,
                    };
                    let b = self.take(n, "string")?;
                    let v = self.str_value(b)?;
                    self.push(v)?;
                }
                b'U' | b'T' => {
                    let n = if op == b'U' { self.u8()? as usize } else { self.u32()? as usize };
                    let b = self.take(n, "bytes")?;
                    // Python 2 str: decoded as latin-1 like `encoding='latin1'`.
                    let s: String = b.iter().map(|&c| c as char).collect();
                    self.push(Value::Str(Rc::from(s)))?;
                }
                b'C' | b'B' | 0x8e | 0x96 => {
                    let n = match op {
                        b'C' => self.u8()? as usize,
                        b'B' => self.u32()? as usize,
                        _ => usize::try_from(self.u64()?).map_err(|_| self.err("bytes too long"))?,
                    };
                    let b = self.take(n, "bytes")?;
                    self.push(Value::Bytes(Rc::from(b)))?;
                }
                b'V' => {
                    let s = self.line()?.to_string();
                    self.push(Value::Str(Rc::from(s)))?;
                }
                b']' => {
                    let v = self.alloc(Node::List(Vec::new()))?;
                    self.push(v)?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Node::List(items))?;
                    self.push(v)?;
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?.clone();
                    match self.node_mut(&list)? {
                        Node::List(l) => l.push(item),
                        _ => return Err(self.err("APPEND target is not a list")),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?.clone();
                    match self.node_mut(&list)? {
                        Node::List(l) => l.extend(items),
                        _ => return Err(self.err("APPENDS target is not a list")),
                    }
                }
                b')' => {
                    let v = self.alloc(Node::Tuple(Vec::new()))?;
                    self.push(v)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Node::Tuple(items))?;
                    self.push(v)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let v = self.alloc(Node::Tuple(items))?;
                    self.push(v)?;
                }
                b'}' => {
                    let v = self.alloc(Node::Dict(Vec::new()))?;
                    self.push(v)?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("DICT with an odd number of items"));
                    }
                    let pairs = pairs(items);
                    let v = self.alloc(Node::Dict(pairs))?;
                    self.push(v)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let d = self.top()?.clone();
                    self.dict_insert(&d, vec![(key, value)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(self.err("SETITEMS with an odd number of items"));
                    }
                    let d = self.top()?.clone();
                    self.dict_insert(&d, pairs(items))?;
                }
                0x8f => {
                    let v = self.alloc(Node::Set(Vec::new()))?;
                    self.push(v)?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let s = self.top()?.clone();
                    match self.node_mut(&s)? {
                        Node::Set(l) => l.extend(items),
                        _ => return Err(self.err("ADDITEMS target is not a set")),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Node::Set(items))?;
                    self.push(v)?;
                }
                b'g' => {
                    let s = self.line()?;
                    let k: u64 = s.parse().map_err(|_| self.err("bad GET index"))?;
                    self.memo_get(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.u32()? as u64;
                    self.memo_get(k)?;
                }
                b'p' => {
                    let s = self.line()?;
                    let k: u64 = s.parse().map_err(|_| self.err("bad PUT index"))?;
                    self.memo_put(k)?;
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()? as u64;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    let v = self.global(&module, &name)?;
                    self.push(v)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let v = self.global(&m, &n)?;
                            self.push(v)?;
                        }
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.call(callable, args)?;
                    self.push(v)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.push(v)?;
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.push(v)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?.clone();
                    match self.node_mut(&obj)? {
                        Node::Object { state: s, .. } => *s = state,
                        // Parameters and tensors may carry extra state (e.g. `_is_param`); keep the data only.
                        Node::Tensor(_) => {}
                        Node::Dict(_) => return Err(self.err("BUILD on a dict is not supported")),
                        _ => return Err(self.err("BUILD target is not an object")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v)?;
                }
                other => {
                    return Err(PickleError::Opcode { op: other, name: op_name(other), pos: self.op_pos });
                }
            }
        }
    }

    fn dict_insert(&mut self, d: &Value, items: Vec<(Value, Value)>) -> Result<(), PickleError> {
        let err = self.err("SETITEM(S) target is not a dict");
        match self.node_mut(d)? {
            Node::Dict(m) => {
                // Appended without de-duplication (linear time even for hostile inputs); lookups take
                // the last entry for a key, as Python's dict keeps the last assignment.
                m.extend(items);
                Ok(())
            }
            _ => Err(err),
        }
    }
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

fn describe(v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(_) => "bool".into(),
        Value::Int(_) => "int".into(),
        Value::Float(_) => "float".into(),
        Value::Str(_) => "str".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::Global(g) => format!("global {}.{}", g.0, g.1),
        Value::Ref(_) => "object".into(),
    }
}

impl Pickle {
    /// The node a value refers to.
    pub fn node(&self, v: &Value) -> Option<&Node> {
        match v {
            Value::Ref(i) => self.nodes.get(*i),
            _ => None,
        }
    }

    /// Looks up a string key in a dict value.
    pub fn dict_get<'s>(&'s self, d: &Value, key: &str) -> Option<&'s Value> {
        match self.node(d)? {
            Node::Dict(m) => m.iter().rev().find(|(k, _)| matches!(k, Value::Str(s) if &**s == key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Entries of a dict value.
    pub fn dict_items<'s>(&'s self, d: &Value) -> Option<&'s [(Value, Value)]> {
        match self.node(d)? {
            Node::Dict(m) => Some(m),
            _ => None,
        }
    }

    /// Items of a list or tuple value.
    pub fn seq<'s>(&'s self, v: &Value) -> Option<&'s [Value]> {
        match self.node(v)? {
            Node::List(l) | Node::Tuple(l) => Some(l),
            _ => None,
        }
    }

    /// The class name and state of an object value.
    pub fn object<'s>(&'s self, v: &Value) -> Option<(&'s str, &'s Value)> {
        match self.node(v)? {
            Node::Object { class, state, .. } => Some((class, state)),
            _ => None,
        }
    }

    /// An attribute of an object (a key of its state dict).
    pub fn attr<'s>(&'s self, obj: &Value, name: &str) -> Option<&'s Value> {
        let (_, state) = self.object(obj)?;
        self.dict_get(state, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_os_system() {
        // cos\nsystem\n(S'echo pwned'\ntR.
        let data = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.";
        let e = parse(data).unwrap_err();
        assert!(matches!(e, PickleError::Global { ref module, ref name, .. } if module == "os" && name == "system"));
        assert!(e.to_string().contains("os.system"));
    }

    #[test]
    fn parses_nested_data() {
        // {'a': [1, 2.5, None, True], 'b': ('x',)}
        let mut d = vec![0x80, 2, b'}', b'(', b'X', 1, 0, 0, 0, b'a', b']', b'(', b'K', 1, b'G'];
        d.extend_from_slice(&2.5f64.to_be_bytes());
        d.extend_from_slice(&[b'N', 0x88, b'e', b'X', 1, 0, 0, 0, b'b', b'X', 1, 0, 0, 0, b'x', 0x85, b'u', b'.']);
        let p = parse(&d).unwrap();
        let a = p.dict_get(&p.root, "a").unwrap();
        assert_eq!(p.seq(a).unwrap(), &[Value::Int(1), Value::Float(2.5), Value::None, Value::Bool(true)]);
        let b = p.dict_get(&p.root, "b").unwrap();
        assert_eq!(p.seq(b).unwrap(), &[Value::Str(Rc::from("x"))]);
    }

    #[test]
    fn dict_keeps_last_assignment() {
        // {'a': 1, 'a': 2} via SETITEMS
        let d = b"\x80\x02}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00aK\x02u.";
        let p = parse(d).unwrap();
        assert_eq!(p.dict_get(&p.root, "a"), Some(&Value::Int(2)));
    }

    #[test]
    fn reusing_a_huge_tuple_is_bounded() {
        // A 100k-element tuple memoised once, then passed to a constructor 2000 times.
        let mut d = vec![0x80, 2, b'('];
        for _ in 0..100_000 {
            d.extend_from_slice(&[b'K', 7]);
        }
        d.extend_from_slice(b"tq\x00");
        for _ in 0..2000 {
            d.extend_from_slice(b"cultralytics.nn.modules.conv\nConv\nh\x00\x810");
        }
        d.extend_from_slice(b"N.");
        let e = parse(&d).unwrap_err();
        assert!(e.to_string().contains("too much work"), "{e}");
    }
}
