//! A bounds-checked cursor over a message body.
//!
//! Every read fails with `Malformed(what)` instead of panicking, so decoders can be written
//! straight down the message format without index arithmetic on untrusted lengths.

use super::ProtocolError;

/// Cursor over one message body; `what` names the message in errors.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, pos: 0, what }
    }

    /// The error for this message's body not matching its format.
    pub(crate) fn malformed(&self) -> ProtocolError {
        ProtocolError::Malformed(self.what)
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.malformed())?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.malformed())?;
        self.pos = end;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let bytes = self.bytes(N)?;
        bytes.try_into().map_err(|_| self.malformed())
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian Int16 read as unsigned, as PostgreSQL reads counts (up to 65535 parameters).
    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian Int32.
    pub(crate) fn i32(&mut self) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// A big-endian Int32 read as unsigned (type OIDs).
    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A NUL-terminated string's bytes (without the NUL); the NUL is consumed.
    pub(crate) fn cstr(&mut self) -> Result<&'a [u8], ProtocolError> {
        let rest = self.buf.get(self.pos..).ok_or_else(|| self.malformed())?;
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.malformed())?;
        let out = rest.get(..nul).ok_or_else(|| self.malformed())?;
        self.pos += nul + 1;
        Ok(out)
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn str(&mut self) -> Result<&'a str, ProtocolError> {
        let bytes = self.cstr()?;
        std::str::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8(self.what))
    }

    /// A NUL-terminated UTF-8 string, owned (no allocation when empty).
    pub(crate) fn string(&mut self) -> Result<String, ProtocolError> {
        self.str().map(str::to_owned)
    }

    /// All bytes not yet consumed.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }

    /// Fails unless the whole body was consumed (PostgreSQL refuses trailing bytes too).
    pub(crate) fn finish(&self) -> Result<(), ProtocolError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.malformed())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_order() {
        let buf = b"ab\0\x00\x01\xff\xff\x00\x00\x00\x07\xff\xff\xff\xfexyz";
        let mut r = Reader::new(buf, "Test");
        assert_eq!(r.str().unwrap(), "ab");
        assert_eq!(r.u16().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 65535);
        assert_eq!(r.i32().unwrap(), 7);
        assert_eq!(r.u32().unwrap(), 0xffff_fffe);
        assert_eq!(r.remaining(), 3);
        assert!(r.finish().is_err());
        assert_eq!(r.rest(), b"xyz");
        assert!(r.finish().is_ok());
        assert_eq!(r.pos(), buf.len());
    }

    #[test]
    fn short_reads_are_malformed() {
        let m = Some(ProtocolError::Malformed("Test"));
        assert_eq!(Reader::new(b"\x01", "Test").u16().err(), m);
        assert_eq!(Reader::new(b"\x01\x02\x03", "Test").i32().err(), m);
        assert_eq!(Reader::new(b"\x01\x02\x03", "Test").u32().err(), m);
        assert_eq!(Reader::new(b"", "Test").u8().err(), m);
        assert_eq!(Reader::new(b"abc", "Test").cstr().err(), m);
        assert_eq!(Reader::new(b"ab", "Test").bytes(3).err(), m);
        assert_eq!(Reader::new(b"ab", "Test").bytes(usize::MAX).err(), m);
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let mut r = Reader::new(b"\xff\xfe\0", "Test");
        assert_eq!(r.str(), Err(ProtocolError::InvalidUtf8("Test")));
    }
}
