//! The decision log's on-disk format: records `[u32 len][u32 crc32][payload]` (little endian),
//! payload = kind byte + fields. Pure encode/decode; no I/O.
//!
//! Kinds: 1 = COMMIT decision (time in ms, gid, participant shard names), 2 = DONE (gid).
//! Strings are `u16 length + UTF-8 bytes`.

/// Bytes before each payload: length and CRC32.
pub const HEADER_LEN: usize = 8;

/// Largest payload accepted when reading; anything longer is a torn or corrupt header.
pub const MAX_PAYLOAD: usize = 1 << 20;

const KIND_COMMIT: u8 = 1;
const KIND_DONE: u8 = 2;

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The transaction commits on every participant.
    Commit(CommitRecord),
    /// Every participant has committed it: the COMMIT record is no longer needed.
    Done {
        /// The finished gid.
        gid: String,
    },
}

/// A durable COMMIT decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    /// The global transaction id.
    pub gid: String,
    /// Participant shard names.
    pub shards: Vec<String>,
    /// When the decision was made, ms since the Unix epoch.
    pub decided_at_ms: u64,
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A gid or shard name longer than a u16 length can hold, or too many shards.
    #[error("{0} is too long for a decision log record")]
    TooLong(&'static str),
    /// A checksummed payload that does not decode: written by something else, or a bug.
    #[error("malformed {0} in a decision log record")]
    Malformed(&'static str),
}

impl Record {
    /// The gid the record is about.
    pub fn gid(&self) -> &str {
        match self {
            Record::Commit(c) => &c.gid,
            Record::Done { gid } => gid,
        }
    }

    /// The whole framed record (header + payload).
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut payload = Vec::with_capacity(64);
        match self {
            Record::Commit(c) => {
                payload.push(KIND_COMMIT);
                payload.extend_from_slice(&c.decided_at_ms.to_le_bytes());
                put_str(&mut payload, &c.gid, "gid")?;
                let n =
                    u16::try_from(c.shards.len()).map_err(|_| RecordError::TooLong("shards"))?;
                payload.extend_from_slice(&n.to_le_bytes());
                for shard in &c.shards {
                    put_str(&mut payload, shard, "shard name")?;
                }
            }
            Record::Done { gid } => {
                payload.push(KIND_DONE);
                put_str(&mut payload, gid, "gid")?;
            }
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(RecordError::TooLong("record"));
        }
        let len = u32::try_from(payload.len()).map_err(|_| RecordError::TooLong("record"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes a payload whose checksum matched.
    pub fn decode(payload: &[u8]) -> Result<Record, RecordError> {
        let mut r = Cursor { buf: payload };
        let record = match r.u8("kind")? {
            KIND_COMMIT => {
                let decided_at_ms = r.u64("time")?;
                let gid = r.string("gid")?;
                let n = r.u16("shard count")?;
                let shards = (0..n)
                    .map(|_| r.string("shard name"))
                    .collect::<Result<Vec<_>, _>>()?;
                Record::Commit(CommitRecord {
                    gid,
                    shards,
                    decided_at_ms,
                })
            }
            KIND_DONE => Record::Done {
                gid: r.string("gid")?,
            },
            _ => return Err(RecordError::Malformed("kind")),
        };
        if !r.buf.is_empty() {
            return Err(RecordError::Malformed("record end"));
        }
        Ok(record)
    }
}

/// What reading a whole log file found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every good record, in file order.
    pub records: Vec<Record>,
    /// Bytes up to the end of the last good record: the file is truncated to this.
    pub good_len: usize,
    /// Why reading stopped before the end of the file (a torn or corrupt tail), if it did.
    pub bad_tail: Option<String>,
}

/// Reads records until the end or the first record that is cut short, has an impossible length
/// or a wrong checksum (a torn tail is never trusted). A checksummed record that does not decode
/// is an error: it was not torn, so dropping it (and everything after) could lose a decision.
pub fn scan(bytes: &[u8]) -> Result<Scan, (usize, RecordError)> {
    let mut scan = Scan::default();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = bytes.get(pos..).unwrap_or_default();
        let stop = |why: String| Some(format!("{why} at offset {pos}"));
        let (Some(len), Some(crc)) = (le_u32(rest, 0), le_u32(rest, 4)) else {
            scan.bad_tail = stop(format!("a cut-short header ({} bytes)", rest.len()));
            break;
        };
        let len = len as usize;
        // A zero length is a zero-filled tail (the CRC of nothing is 0), not a record.
        if len == 0 || len > MAX_PAYLOAD {
            scan.bad_tail = stop(format!("an impossible record length {len}"));
            break;
        }
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            scan.bad_tail = stop(format!(
                "a cut-short record ({} of {len} bytes)",
                rest.len() - HEADER_LEN
            ));
            break;
        };
        if crc32fast::hash(payload) != crc {
            scan.bad_tail = stop("a checksum mismatch".to_owned());
            break;
        }
        scan.records
            .push(Record::decode(payload).map_err(|e| (pos, e))?);
        pos += HEADER_LEN + len;
        scan.good_len = pos;
    }
    Ok(scan)
}

fn le_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn put_str(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), RecordError> {
    let len = u16::try_from(s.len()).map_err(|_| RecordError::TooLong(what))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A bounds-checked reader over a payload.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Malformed(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, RecordError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or_default())
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, RecordError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes(
            b.try_into().map_err(|_| RecordError::Malformed(what))?,
        ))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, RecordError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(
            b.try_into().map_err(|_| RecordError::Malformed(what))?,
        ))
    }

    fn string(&mut self, what: &'static str) -> Result<String, RecordError> {
        let len = usize::from(self.u16(what)?);
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Malformed(what))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn commit(gid: &str) -> Record {
        Record::Commit(CommitRecord {
            gid: gid.to_owned(),
            shards: vec!["s0".to_owned(), "s1".to_owned()],
            decided_at_ms: 1_700_000_000_123,
        })
    }

    fn file(records: &[Record]) -> Vec<u8> {
        records.iter().flat_map(|r| r.encode().unwrap()).collect()
    }

    #[test]
    fn records_round_trip() {
        let records = vec![
            commit("sp_a_1_1"),
            Record::Done {
                gid: "sp_a_1_1".to_owned(),
            },
            commit("sp_a_1_2"),
        ];
        let bytes = file(&records);
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.records, records);
        assert_eq!(scan.good_len, bytes.len());
        assert_eq!(scan.bad_tail, None);
        assert_eq!(records[1].gid(), "sp_a_1_1");
    }

    #[test]
    fn a_torn_tail_at_every_offset_is_cut_off() {
        let records = vec![commit("sp_a_1_1"), commit("sp_a_1_2")];
        let bytes = file(&records);
        let first_len = records[0].encode().unwrap().len();
        for cut in 0..bytes.len() {
            let scan = scan(&bytes[..cut]).unwrap();
            let expect = usize::from(cut >= first_len);
            assert_eq!(scan.records.len(), expect, "cut at {cut}");
            assert_eq!(scan.good_len, expect * first_len, "cut at {cut}");
            assert_eq!(
                scan.bad_tail.is_some(),
                cut != 0 && cut != first_len,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_byte_anywhere_in_the_last_record_is_detected() {
        let records = vec![commit("sp_a_1_1"), commit("sp_a_1_2")];
        let bytes = file(&records);
        let first_len = records[0].encode().unwrap().len();
        for at in first_len..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            let scan = scan(&bad).unwrap();
            assert_eq!(scan.records, records[..1], "flip at {at}");
            assert_eq!(scan.good_len, first_len);
            assert!(scan.bad_tail.is_some());
        }
    }

    #[test]
    fn zero_filled_tails_are_not_records() {
        let mut bytes = file(&[commit("sp_a_1_1")]);
        let good = bytes.len();
        bytes.extend_from_slice(&[0; 64]);
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.good_len, good);
        assert!(scan
            .bad_tail
            .unwrap()
            .contains("impossible record length 0"));
    }

    #[test]
    fn a_checksummed_but_unreadable_record_is_an_error() {
        let payload = [9u8, 1, 2, 3];
        let mut bytes = file(&[commit("sp_a_1_1")]);
        let at = bytes.len();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let (pos, err) = scan(&bytes).unwrap_err();
        assert_eq!(pos, at);
        assert_eq!(err, RecordError::Malformed("kind"));
    }

    #[test]
    fn over_long_names_are_refused() {
        let record = Record::Done {
            gid: "x".repeat(70_000),
        };
        assert_eq!(record.encode(), Err(RecordError::TooLong("gid")));
    }
}
