//! The small binary writer and bounds-checked reader shared by every signed format here.
//!
//! All integers are little-endian. A string is a `u32` byte length followed by that many bytes
//! of UTF-8; an option is a presence byte (0 absent, 1 present) followed by the value. Every
//! document starts with a domain string (a fixed text naming the document kind) and a
//! format-version byte, so bytes signed as one kind of document can never be read as another.
//!
//! The reader never panics and never allocates more than the input holds: each length is
//! checked against the bytes left before anything is copied.

use crate::error::SealError;

/// Appends encoded values to a growing buffer.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// A `u32` length, then the bytes.
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        // Callers validate lengths against limits far below 4 GiB before encoding.
        debug_assert!(u32::try_from(bytes.len()).is_ok());
        self.u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        self.raw(bytes);
    }

    pub(crate) fn string(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    pub(crate) fn option_u64(&mut self, value: Option<u64>) {
        match value {
            Some(inner) => {
                self.u8(1);
                self.u64(inner);
            }
            None => self.u8(0),
        }
    }

    /// The domain string and format version that open every document.
    pub(crate) fn header(&mut self, domain: &str, version: u8) {
        self.string(domain);
        self.u8(version);
    }
}

/// A cursor over untrusted bytes; every read names the field it is reading.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    pub(crate) fn error(&self, field: &str, reason: impl Into<String>) -> SealError {
        SealError::Decode {
            field: field.to_owned(),
            reason: format!("{} (at byte {})", reason.into(), self.offset),
        }
    }

    pub(crate) fn take(&mut self, length: usize, field: &str) -> Result<&'a [u8], SealError> {
        let left = self.bytes.len() - self.offset;
        if length > left {
            return Err(self.error(field, format!("needs {length} bytes, {left} left")));
        }
        let slice = &self.bytes[self.offset..self.offset + length];
        self.offset += length;
        Ok(slice)
    }

    pub(crate) fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], SealError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, SealError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &str) -> Result<u16, SealError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &str) -> Result<u32, SealError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &str) -> Result<u64, SealError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A `u32`-length-prefixed byte string of at most `max_len` bytes.
    pub(crate) fn bytes(&mut self, field: &str, max_len: usize) -> Result<&'a [u8], SealError> {
        let length = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        if length > max_len {
            return Err(self.error(field, format!("length {length} exceeds {max_len}")));
        }
        self.take(length, field)
    }

    pub(crate) fn string(&mut self, field: &str, max_len: usize) -> Result<String, SealError> {
        let bytes = self.bytes(field, max_len)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(_) => Err(self.error(field, "is not valid UTF-8")),
        }
    }

    pub(crate) fn option_u64(&mut self, field: &str) -> Result<Option<u64>, SealError> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => self.u64(field).map(Some),
            flag => Err(self.error(field, format!("presence byte {flag} is not 0 or 1"))),
        }
    }

    /// Checks the domain string and format version written by [`Writer::header`].
    pub(crate) fn header(&mut self, domain: &str, version: u8) -> Result<(), SealError> {
        self.header_of(domain, &[version]).map(drop)
    }

    /// Reads the domain and a format version, which must be one of `versions`; returns it.
    pub(crate) fn header_of(&mut self, domain: &str, versions: &[u8]) -> Result<u8, SealError> {
        let found = self.bytes("domain", domain.len())?;
        if found != domain.as_bytes() {
            return Err(self.error("domain", format!("is not {domain:?}")));
        }
        let found = self.u8("format_version")?;
        if !versions.contains(&found) {
            return Err(self.error("format_version", format!("unknown version {found}")));
        }
        Ok(found)
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(&self, record: &str) -> Result<(), SealError> {
        let trailing = self.bytes.len() - self.offset;
        if trailing != 0 {
            return Err(self.error(record, format!("{trailing} trailing bytes")));
        }
        Ok(())
    }
}

/// Lowercase hexadecimal.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Strict lowercase hexadecimal of exactly `N` bytes; the error text is the reason only.
pub(crate) fn hex_decode<const N: usize>(text: &str) -> Result<[u8; N], String> {
    if text.len() != N * 2 {
        return Err(format!("needs {} hex digits, found {}", N * 2, text.len()));
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Ok(out)
}

fn hex_digit(digit: u8) -> Result<u8, String> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        _ => Err(format!(
            "{:?} is not a lowercase hex digit",
            char::from(digit)
        )),
    }
}

/// Checks a short human-readable label (an authority code, a license type, a field name):
/// non-empty, at most `max_len` bytes, no control characters.
pub(crate) fn check_label(field: &str, value: &str, max_len: usize) -> Result<(), SealError> {
    let reason = if value.is_empty() {
        "is empty".to_owned()
    } else if value.len() > max_len {
        format!("is {} bytes, more than {max_len}", value.len())
    } else if value.chars().any(char::is_control) {
        "contains a control character".to_owned()
    } else {
        return Ok(());
    };
    Err(SealError::invalid_field(field, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejections() {
        let bytes = [0x00, 0x9d, 0xff, 0x10];
        assert_eq!(hex_encode(&bytes), "009dff10");
        assert_eq!(hex_decode::<4>("009dff10"), Ok(bytes));
        let bad = ["009dff1", "009DFF10", "009dff1g", "009dff1000"];
        for text in bad {
            assert!(hex_decode::<4>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn reader_rejects_overlong_and_trailing() {
        let mut w = Writer::default();
        w.header("test", 1);
        w.string("abc");
        let bytes = w.0;
        let mut r = Reader::new(&bytes);
        r.header("test", 1).unwrap();
        assert!(r.string("name", 2).is_err());
        let mut r = Reader::new(&bytes);
        r.header("test", 1).unwrap();
        assert_eq!(r.string("name", 3).unwrap(), "abc");
        r.finish("record").unwrap();
        assert!(Reader::new(&bytes).header("tess", 1).is_err());
        assert!(Reader::new(&bytes).header("test", 2).is_err());
    }

    #[test]
    fn labels_are_checked() {
        let cases = [
            ("", 18, false),
            ("11220000013544541J", 18, true),
            ("11220000013544541J", 17, false),
            ("a\nb", 18, false),
        ];
        for (value, max_len, ok) in cases {
            assert_eq!(
                check_label("authority", value, max_len).is_ok(),
                ok,
                "{value:?}"
            );
        }
    }
}
