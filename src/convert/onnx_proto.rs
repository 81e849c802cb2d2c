//! The subset of the ONNX protobuf schema (`onnx.proto3`, IR version 8/opset 17) that the converter
//! writes and the tests read, declared by hand with `prost` derives (no `protoc`, no build script).
//!
//! Field numbers follow the official schema; fields we never use are simply absent (prost skips
//! unknown fields when decoding).

use prost::Message;

/// ONNX `TensorProto.DataType` values used here.
pub mod data_type {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const FLOAT16: i32 = 10;
}

/// ONNX `AttributeProto.AttributeType` values used here.
pub mod attr_type {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const STRING: i32 = 3;
    pub const TENSOR: i32 = 4;
    pub const FLOATS: i32 = 6;
    pub const INTS: i32 = 7;
}

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(string, tag = "3")]
    pub producer_version: String,
    #[prost(string, tag = "4")]
    pub domain: String,
    #[prost(int64, tag = "5")]
    pub model_version: i64,
    #[prost(string, tag = "6")]
    pub doc_string: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "14")]
    pub metadata_props: Vec<StringStringEntryProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct StringStringEntryProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(string, tag = "10")]
    pub doc_string: String,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "13")]
    pub value_info: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(string, tag = "7")]
    pub domain: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "6")]
    pub doc_string: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int32, tag = "20")]
    pub r#type: i32,
    #[prost(float, tag = "2")]
    pub f: f32,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub s: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub raw_data: Vec<u8>,
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
    #[prost(string, tag = "3")]
    pub doc_string: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TypeProtoTensor>,
    #[prost(string, tag = "6")]
    pub denotation: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProtoTensor {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(oneof = "DimValue", tags = "1, 2")]
    pub value: Option<DimValue>,
    #[prost(string, tag = "3")]
    pub denotation: String,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum DimValue {
    #[prost(int64, tag = "1")]
    DimValue(i64),
    #[prost(string, tag = "2")]
    DimParam(String),
}

impl TensorProto {
    /// The tensor's elements as f32 (FLOAT or FLOAT16, raw or typed storage); `None` for other types.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self.data_type {
            data_type::FLOAT if !self.raw_data.is_empty() => {
                Some(self.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
            data_type::FLOAT => Some(self.float_data.clone()),
            data_type::FLOAT16 if !self.raw_data.is_empty() => {
                Some(self.raw_data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect())
            }
            _ => None,
        }
    }

    /// The tensor's elements as i64 (INT64 or INT32); `None` for other types.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        match self.data_type {
            data_type::INT64 if !self.raw_data.is_empty() => Some(
                self.raw_data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            data_type::INT64 => Some(self.int64_data.clone()),
            data_type::INT32 if !self.raw_data.is_empty() => Some(
                self.raw_data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect(),
            ),
            data_type::INT32 => Some(self.int32_data.iter().map(|&v| v as i64).collect()),
            _ => None,
        }
    }

    /// A FLOAT tensor with raw little-endian data.
    pub fn from_f32(name: &str, dims: &[i64], data: &[f32]) -> Self {
        let mut raw = Vec::with_capacity(data.len() * 4);
        for v in data {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        TensorProto {
            dims: dims.to_vec(),
            data_type: data_type::FLOAT,
            name: name.into(),
            raw_data: raw,
            ..Default::default()
        }
    }

    /// An INT64 tensor with raw little-endian data.
    pub fn from_i64(name: &str, dims: &[i64], data: &[i64]) -> Self {
        let mut raw = Vec::with_capacity(data.len() * 8);
        for v in data {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        TensorProto {
            dims: dims.to_vec(),
            data_type: data_type::INT64,
            name: name.into(),
            raw_data: raw,
            ..Default::default()
        }
    }
}

impl TensorProto {
    /// An INT8 tensor (raw storage), e.g. quantized weights.
    pub fn from_i8(name: &str, dims: &[i64], data: &[i8]) -> Self {
        TensorProto {
            dims: dims.to_vec(),
            data_type: data_type::INT8,
            name: name.into(),
            raw_data: data.iter().map(|&v| v as u8).collect(),
            ..Default::default()
        }
    }

    /// A UINT8 tensor (raw storage), e.g. activation zero points.
    pub fn from_u8(name: &str, dims: &[i64], data: &[u8]) -> Self {
        TensorProto {
            dims: dims.to_vec(),
            data_type: data_type::UINT8,
            name: name.into(),
            raw_data: data.to_vec(),
            ..Default::default()
        }
    }

    /// An INT32 tensor (raw storage), e.g. quantized biases.
    pub fn from_i32(name: &str, dims: &[i64], data: &[i32]) -> Self {
        let mut raw = Vec::with_capacity(data.len() * 4);
        for v in data {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        TensorProto {
            dims: dims.to_vec(),
            data_type: data_type::INT32,
            name: name.into(),
            raw_data: raw,
            ..Default::default()
        }
    }

    /// The elements of an 8-bit tensor (INT8 or UINT8, raw storage, or the `int32_data` ONNX uses
    /// for them in typed storage) as i32; `None` for other types.
    pub fn to_8bit(&self) -> Option<Vec<i32>> {
        match self.data_type {
            data_type::INT8 if !self.raw_data.is_empty() => {
                Some(self.raw_data.iter().map(|&b| b as i8 as i32).collect())
            }
            data_type::UINT8 if !self.raw_data.is_empty() => Some(self.raw_data.iter().map(|&b| b as i32).collect()),
            data_type::INT8 | data_type::UINT8 => Some(self.int32_data.clone()),
            _ => None,
        }
    }

    /// Number of elements (the product of the dims; 1 for a scalar).
    pub fn numel(&self) -> usize {
        self.dims.iter().map(|&d| d.max(0) as usize).product()
    }
}

impl ModelProto {
    /// Decodes a serialized ONNX model.
    pub fn decode_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        ModelProto::decode(bytes)
    }
}
