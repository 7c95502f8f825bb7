//! RowDescriptions: reading the shards', checking they agree, writing the client's, and the
//! result format codes to ask the shards for.

use std::ops::Range;

use bytes::{BufMut, BytesMut};
use shard_router::merge::{AggFunc, Col, FinalColumn, MergePlan, Shape};

use super::MergeError;
use crate::merge::compare::ColumnType;
use crate::protocol::encode;

/// One column of a shard's RowDescription.
#[derive(Debug, Clone)]
pub(super) struct Field {
    /// The whole field description (name through format code) in the description's body.
    raw: Range<usize>,
    /// The name's bytes (without the NUL).
    name: Range<usize>,
    /// Type OID.
    pub oid: u32,
    /// Format code (0 text, 1 binary).
    pub format: i16,
}

impl Field {
    /// The column's type and format for comparisons.
    pub(super) fn column_type(&self) -> ColumnType {
        ColumnType {
            oid: self.oid,
            binary: self.format == 1,
        }
    }
}

/// A shard stream's RowDescription (the first one described is the merge's reference).
#[derive(Debug, Clone)]
pub(super) struct Description {
    body: Vec<u8>,
    /// The columns.
    pub fields: Vec<Field>,
}

/// A malformed RowDescription from a shard.
fn malformed(what: &str) -> MergeError {
    MergeError::Protocol(format!("malformed RowDescription: {what}"))
}

/// Bytes after the name in a field description: table oid, attnum, type oid, typlen, typmod,
/// format code.
const FIXED: usize = 4 + 2 + 4 + 2 + 4 + 2;

impl Description {
    /// Parses a RowDescription body.
    pub(super) fn parse(body: &[u8]) -> Result<Description, MergeError> {
        let (count, _) = body
            .split_first_chunk::<2>()
            .ok_or_else(|| malformed("truncated"))?;
        let count = usize::try_from(i16::from_be_bytes(*count))
            .map_err(|_| malformed("negative column count"))?;
        // Every field needs at least a NUL and the fixed part: bounds the allocation.
        if count.saturating_mul(FIXED + 1) > body.len() {
            return Err(malformed("truncated"));
        }
        let mut fields = Vec::with_capacity(count);
        let mut pos = 2;
        for _ in 0..count {
            let rest = body.get(pos..).ok_or_else(|| malformed("truncated"))?;
            let nul = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| malformed("unterminated column name"))?;
            let fixed_at = pos + nul + 1;
            let fixed = body
                .get(fixed_at..fixed_at + FIXED)
                .ok_or_else(|| malformed("truncated"))?;
            let oid = u32::from_be_bytes([fixed[6], fixed[7], fixed[8], fixed[9]]);
            let format = i16::from_be_bytes([fixed[16], fixed[17]]);
            fields.push(Field {
                raw: pos..fixed_at + FIXED,
                name: pos..pos + nul,
                oid,
                format,
            });
            pos = fixed_at + FIXED;
        }
        if pos != body.len() {
            return Err(malformed("trailing bytes"));
        }
        Ok(Description {
            body: body.to_vec(),
            fields,
        })
    }

    /// Checks that `other` (stream `s`'s description) has the same columns, types and formats
    /// (table OIDs and attribute numbers differ between shards and are ignored).
    pub(super) fn check_same(&self, other: &Description, s: usize) -> Result<(), MergeError> {
        if self.fields.len() != other.fields.len() {
            return Err(MergeError::Mismatch(format!(
                "{} columns, but stream {s} returned {}",
                self.fields.len(),
                other.fields.len()
            )));
        }
        for (i, (a, b)) in self.fields.iter().zip(&other.fields).enumerate() {
            if a.oid != b.oid {
                return Err(MergeError::Mismatch(format!(
                    "column {} has type {}, but type {} from stream {s}",
                    i + 1,
                    a.oid,
                    b.oid
                )));
            }
            if a.format != b.format {
                return Err(MergeError::Mismatch(format!(
                    "column {} has format {}, but format {} from stream {s}",
                    i + 1,
                    a.format,
                    b.format
                )));
            }
        }
        Ok(())
    }

    /// Appends field `i`'s description as the shard sent it.
    pub(super) fn put_field(&self, out: &mut BytesMut, i: usize) {
        if let Some(raw) = self
            .fields
            .get(i)
            .and_then(|f| self.body.get(f.raw.clone()))
        {
            out.put_slice(raw);
        }
    }

    /// Field `i`'s name bytes (without the NUL).
    pub(super) fn name(&self, i: usize) -> &[u8] {
        self.fields
            .get(i)
            .and_then(|f| self.body.get(f.name.clone()))
            .unwrap_or_default()
    }
}

/// How one client-visible column's description is written.
#[derive(Debug, Clone, Copy)]
pub(super) enum ClientField {
    /// Shard column `i` as the shard described it.
    Shard(usize),
    /// A proxy-finished aggregate named after shard column `name`.
    Agg {
        /// Shard column whose name the column takes.
        name: usize,
        /// Output type OID.
        oid: u32,
        /// Output typlen.
        typlen: i16,
        /// The client's format code.
        format: i16,
    },
}

/// Appends the client's RowDescription message ('T' header included).
pub(super) fn write_client(out: &mut BytesMut, desc: &Description, fields: &[ClientField]) {
    let at = encode::begin(out, b'T');
    out.put_u16(u16::try_from(fields.len()).unwrap_or(u16::MAX));
    for field in fields {
        match *field {
            ClientField::Shard(i) => desc.put_field(out, i),
            ClientField::Agg {
                name,
                oid,
                typlen,
                format,
            } => {
                out.put_slice(desc.name(name));
                out.put_u8(0);
                out.put_u32(0); // no table
                out.put_i16(0); // no attribute
                out.put_u32(oid);
                out.put_i16(typlen);
                out.put_i32(-1); // no typmod
                out.put_i16(format);
            }
        }
    }
    encode::finish(out, at);
}

/// The client's format code for final column `i` (Bind semantics: none = text, one = all).
pub(super) fn client_code(formats: &[i16], i: usize) -> i16 {
    match formats {
        [] => 0,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(0),
    }
}

/// The result format codes to put in the shards' Bind (see [`super::Merge::shard_result_formats`]).
pub(super) fn shard_formats(plan: &MergePlan, client: &[i16]) -> Vec<i16> {
    match &plan.shape {
        Shape::Rows { hidden, .. } => {
            if client.len() <= 1 {
                return client.to_vec();
            }
            let mut codes = client.to_vec();
            codes.resize(client.len() + hidden, 0);
            codes
        }
        Shape::Groups {
            keys,
            columns,
            visible,
            ..
        } => {
            let start = |c: &Col| match *c {
                Col::Start(i) => Some(i),
                Col::End(_) => None,
            };
            let used = keys
                .iter()
                .filter_map(start)
                .chain(columns.iter().flat_map(|c| {
                    let (a, b) = match c {
                        FinalColumn::Shard(c) => (start(c), None),
                        FinalColumn::Agg { arg, count, .. } => {
                            (start(arg), count.as_ref().and_then(start))
                        }
                    };
                    a.into_iter().chain(b)
                }));
            let width = used.max().map_or(0, |m| m + 1);
            let mut codes = vec![None; width];
            // Visible pass-through columns first: their bytes go to the client unchanged.
            for (i, column) in columns.iter().enumerate().take(*visible) {
                if let FinalColumn::Shard(Col::Start(c)) = column {
                    if let Some(code @ None) = codes.get_mut(*c) {
                        *code = Some(client_code(client, i));
                    }
                }
            }
            // min/max keep the winning partial's bytes, so partials arrive in the final format.
            for (i, column) in columns.iter().enumerate() {
                if let FinalColumn::Agg {
                    func: AggFunc::Min | AggFunc::Max,
                    arg: Col::Start(c),
                    ..
                } = column
                {
                    let wanted = if i < *visible {
                        client_code(client, i)
                    } else {
                        0
                    };
                    if let Some(code @ None) = codes.get_mut(*c) {
                        *code = Some(wanted);
                    }
                }
            }
            let codes: Vec<i16> = codes.into_iter().map(|c| c.unwrap_or(0)).collect();
            // All text is what no codes mean: a shorter Bind, and right whatever the width.
            if codes.iter().all(|&c| c == 0) {
                Vec::new()
            } else {
                codes
            }
        }
    }
}
