//! A minimal reader for NumPy `.npy` files holding little-endian float32 arrays in C order (the
//! raw ONNX Runtime outputs stored with the golden fixtures). Used by tests and benches.

use std::path::Path;

use fastsam_track::model::ModelError;

/// A float32 array: shape and flat C-order data.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyF32 {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> ModelError {
    ModelError::Output(format!("{}: not a little-endian float32 C-order .npy file: {msg}", path.display()))
}

/// Read a `<f4` `.npy` file (format versions 1, 2 and 3).
pub fn read_f32(path: &Path) -> Result<NpyF32, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
    parse_f32(&bytes).map_err(|m| bad(path, m))
}

/// Parse the bytes of a `<f4` `.npy` file.
pub fn parse_f32(bytes: &[u8]) -> Result<NpyF32, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("missing magic".into());
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        _ => return Err(format!("unsupported version {major}")),
    };
    let header = bytes.get(start..start + hlen).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    if !header.contains("'descr': '<f4'") {
        return Err(format!("dtype is not '<f4' ({header})"));
    }
    if header.contains("'fortran_order': True") {
        return Err("Fortran order".into());
    }
    let s = header.find("'shape': (").ok_or("no shape")? + "'shape': (".len();
    let e = s + header[s..].find(')').ok_or("bad shape")?;
    let shape = header[s..e]
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<usize>().map_err(|_| format!("bad dimension {t:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let n: usize = shape.iter().product();
    let body = &bytes[start + hlen..];
    if body.len() != n * 4 {
        return Err(format!("expected {} data bytes for shape {shape:?}, found {}", n * 4, body.len()));
    }
    let data = body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(NpyF32 { shape, data })
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn parses_hand_written_v1() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, -6.5] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let a = parse_f32(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data[5], -6.5);
        assert!(parse_f32(&b[..b.len() - 1]).is_err());
    }
}
