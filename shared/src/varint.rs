//! LEB128 varints and zigzag signs: the packed responses of a record and the store's
//! encoding of them write numbers this way.

/// Appends `value` as a varint: 7 bits a byte, lowest first, the top bit set on all but the last.
pub fn put(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A signed number as an unsigned one whose varint is short when the number is near zero.
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// The signed number [`zigzag`] made `value` of.
pub fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_sizes_round_trip() {
        for value in [0, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
        let mut out = Vec::new();
        put(&mut out, 127);
        put(&mut out, 128);
        assert_eq!(out, [0x7f, 0x80, 0x01]);
    }
}
