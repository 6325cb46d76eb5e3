//! Triton's BYTES tensor encoding.
//!
//! In `raw_input_contents` / `raw_output_contents` each element is a 4-byte little-endian
//! length followed by its bytes; in `contents.bytes_contents` elements carry no prefix.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BytesError {
    #[error("BYTES tensor is cut short: element {index} needs {needed} bytes, {left} are left")]
    Truncated { index: usize, needed: usize, left: usize },
}

/// Encodes elements into the raw length-prefixed form.
pub fn encode_raw<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for element in elements {
        let len = u32::try_from(element.len()).expect("BYTES element over 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(element);
    }
    out
}

/// Encodes one element into the raw form.
pub fn encode_raw_one(element: &[u8]) -> Vec<u8> {
    encode_raw([element])
}

/// Decodes the raw length-prefixed form into its elements (borrowed from `raw`).
pub fn decode_raw(raw: &[u8]) -> Result<Vec<&[u8]>, BytesError> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let index = out.len();
        if rest.len() < 4 {
            return Err(BytesError::Truncated { index, needed: 4, left: rest.len() });
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if rest.len() < len {
            return Err(BytesError::Truncated { index, needed: len, left: rest.len() });
        }
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip() {
        let elements: [&[u8]; 3] = [b"hello", b"", "héllo wörld".as_bytes()];
        let raw = encode_raw(elements);
        assert_eq!(&raw[..9], &[5, 0, 0, 0, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(decode_raw(&raw).unwrap(), elements.to_vec());
        assert_eq!(decode_raw(&[]).unwrap(), Vec::<&[u8]>::new());
    }

    proptest::proptest! {
        /// Any bytes decode or fail without a panic, and the elements only borrow the input.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Ok(elements) = decode_raw(&raw) {
                proptest::prop_assert_eq!(elements.iter().map(|e| 4 + e.len()).sum::<usize>(), raw.len());
                proptest::prop_assert_eq!(encode_raw(elements.iter().copied()), raw);
            }
        }
    }

    #[test]
    fn raw_truncation_is_an_error() {
        assert_eq!(decode_raw(&[1, 0]), Err(BytesError::Truncated { index: 0, needed: 4, left: 2 }));
        let raw = [3, 0, 0, 0, b'a', b'b'];
        assert_eq!(decode_raw(&raw), Err(BytesError::Truncated { index: 0, needed: 3, left: 2 }));
    }
}
