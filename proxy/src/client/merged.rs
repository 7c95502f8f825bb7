//! Reads answered by merging several shards (scatter-gather), session side: the shards run the
//! merge plan's `shard_sql` (as a simple Query, or prepared under a proxy name and bound with
//! the client's parameters), and one pipeline entry carries a [`Merge`] that turns their
//! answers into the client's (`merge_run.rs`).

use std::sync::Arc;
use std::time::Instant;

use admin::RouteKind;
use shard_router::merge::{Count, Filter, MergePlan, Operand};

use super::fanout::FanOut;
use super::merge_run::MergeRun;
use super::pipeline::{Action, Kind, Mode, Owed, Pending, Stat};
use super::session::Session;
use crate::merge::MergeInput;
use crate::protocol::encode;

/// Type OIDs of bind parameters the proxy reads in binary format.
mod oids {
    pub const BOOL: u32 = 16;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const VARCHAR: u32 = 1043;
}

/// A Bind's parameter values (none for a simple Query).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bound<'a> {
    /// Values (None = NULL).
    pub values: &'a [Option<&'a [u8]>],
    /// One format code per value.
    pub formats: &'a [i16],
    /// Declared types (0 = unspecified).
    pub types: &'a [u32],
}

type Refusal = (&'static str, String);

impl Session {
    /// A simple Query answered by merging `shards`.
    pub(crate) async fn merged_query(
        &mut self,
        plan: Arc<MergePlan>,
        shards: Vec<usize>,
        route: RouteKind,
    ) {
        let input = match merge_input(plan, shards.len(), Bound::default(), Vec::new()) {
            Ok(input) => input,
            Err((code, message)) => return self.query_error(code, &message),
        };
        if let Err((code, message)) = self.ensure_backends(&shards).await {
            return self.query_error(code, &message);
        }
        for &s in &shards {
            if let Some(b) = self.backends.get_mut(s) {
                encode::query(&mut b.write_buf, &input.plan.shard_sql);
                b.unnamed = None; // a simple Query destroys the unnamed statement
            }
        }
        self.stmts.unnamed = None;
        self.copy_targets.clear();
        self.push_merge(Kind::Query, input, &shards, Some(route), false);
    }

    /// Queues a request whose answers from `shards` are merged.
    pub(crate) fn push_merge(
        &mut self,
        kind: Kind,
        input: MergeInput,
        shards: &[usize],
        route: Option<RouteKind>,
        describe_only: bool,
    ) {
        let run = Box::new(MergeRun::new(input, shards, describe_only));
        self.push_merge_run(kind, run, shards, route);
    }

    /// Queues a request answered by `run` from `shards`.
    pub(crate) fn push_merge_run(
        &mut self,
        kind: Kind,
        run: Box<MergeRun>,
        shards: &[usize],
        route: Option<RouteKind>,
    ) {
        let mut fan = FanOut::new(shards.iter().copied());
        fan.merge = Some(run);
        let stat = route.map(|kind| Stat {
            kind,
            started: Instant::now(),
            shard: None,
        });
        self.pipeline.push(
            Pending {
                kind,
                mode: Mode::Forward,
                action: Action::None,
                owed: Owed::Many(Box::new(fan)),
                stat,
            },
            &mut self.cout,
        );
    }
}

/// Everything one execution of `plan` needs besides the rows: LIMIT/OFFSET and HAVING
/// parameters resolved from the Bind, and the client's result formats.
pub(crate) fn merge_input(
    plan: Arc<MergePlan>,
    streams: usize,
    bound: Bound<'_>,
    client_formats: Vec<i16>,
) -> Result<MergeInput, Refusal> {
    let limit = count(plan.limit, bound, "LIMIT", "2201W")?;
    let offset = count(plan.offset, bound, "OFFSET", "2201X")?.unwrap_or(0);
    let mut params = vec![None; bound.values.len()];
    if let Some(having) = &plan.having {
        let mut used = Vec::new();
        filter_params(having, &mut used);
        for i in used {
            let text = param_text(bound, i)?;
            if let Some(slot) = params.get_mut(i) {
                *slot = text;
            } else {
                return Err(no_parameter(i));
            }
        }
    }
    Ok(MergeInput {
        plan,
        streams,
        limit,
        offset,
        params,
        client_formats,
    })
}

fn no_parameter(i: usize) -> Refusal {
    ("42P02", format!("there is no parameter ${}", i + 1))
}

/// A LIMIT or OFFSET value: None for none (or NULL).
fn count(
    c: Option<Count>,
    bound: Bound<'_>,
    what: &str,
    negative_code: &'static str,
) -> Result<Option<u64>, Refusal> {
    let i = match c {
        None => return Ok(None),
        Some(Count::Const(n)) => return Ok(Some(n)),
        Some(Count::Param(i)) => i,
    };
    let Some(value) = bound.values.get(i) else {
        return Err(no_parameter(i));
    };
    let Some(bytes) = value else {
        return Ok(None);
    };
    let binary = bound.formats.get(i).copied().unwrap_or(0) == 1;
    let n: i64 = if binary {
        match bytes.len() {
            8 => i64::from_be_bytes(bytes[..8].try_into().unwrap_or_default()),
            4 => i64::from(i32::from_be_bytes(
                bytes[..4].try_into().unwrap_or_default(),
            )),
            2 => i64::from(i16::from_be_bytes(
                bytes[..2].try_into().unwrap_or_default(),
            )),
            _ => {
                return Err((
                    "22P03",
                    format!("incorrect binary data format in {what} parameter"),
                ))
            }
        }
    } else {
        let text = std::str::from_utf8(bytes).unwrap_or("").trim();
        text.parse().map_err(|_| {
            (
                "22P02",
                format!("invalid input syntax for type bigint: \"{text}\""),
            )
        })?
    };
    u64::try_from(n)
        .map(Some)
        .map_err(|_| (negative_code, format!("{what} must not be negative")))
}

/// The parameters a HAVING condition reads.
fn filter_params(f: &Filter, out: &mut Vec<usize>) {
    let mut operand = |o: &Operand| {
        if let Operand::Param(i) = o {
            out.push(*i);
        }
    };
    match f {
        Filter::Cmp { left, right, .. } => {
            operand(left);
            operand(right);
        }
        Filter::IsNull { operand: o, .. } => operand(o),
        Filter::And(v) | Filter::Or(v) => v.iter().for_each(|g| filter_params(g, out)),
        Filter::Not(g) => filter_params(g, out),
    }
}

/// A parameter as text (the form HAVING compares constants in).
fn param_text(bound: Bound<'_>, i: usize) -> Result<Option<String>, Refusal> {
    let Some(value) = bound.values.get(i) else {
        return Err(no_parameter(i));
    };
    let Some(bytes) = value else {
        return Ok(None);
    };
    let binary = bound.formats.get(i).copied().unwrap_or(0) == 1;
    if !binary {
        return Ok(Some(String::from_utf8_lossy(bytes).into_owned()));
    }
    let bad = || {
        (
            "22P03",
            format!("incorrect binary data format in parameter ${}", i + 1),
        )
    };
    let ty = bound.types.get(i).copied().unwrap_or(0);
    let text = match (ty, bytes.len()) {
        (oids::INT8, 8) => i64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?).to_string(),
        (oids::INT4, 4) => i32::from_be_bytes(bytes[..4].try_into().map_err(|_| bad())?).to_string(),
        (oids::INT2, 2) => i16::from_be_bytes(bytes[..2].try_into().map_err(|_| bad())?).to_string(),
        (oids::FLOAT8, 8) => {
            f64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?).to_string()
        }
        (oids::FLOAT4, 4) => {
            f32::from_be_bytes(bytes[..4].try_into().map_err(|_| bad())?).to_string()
        }
        (oids::BOOL, 1) => (bytes[0] != 0).to_string(),
        (oids::TEXT | oids::VARCHAR, _) => String::from_utf8_lossy(bytes).into_owned(),
        _ => {
            return Err((
                "0A000",
                format!(
                    "a binary parameter of type {} in HAVING across shards is not supported; send it in text format",
                    if ty == 0 { "unknown".to_string() } else { ty.to_string() }
                ),
            ))
        }
    };
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shard_router::merge::Shape;

    fn plan(limit: Option<Count>, offset: Option<Count>) -> Arc<MergePlan> {
        Arc::new(MergePlan {
            shard_sql: String::new(),
            shard_params: Vec::new(),
            shape: Shape::Rows {
                hidden: 0,
                distinct: false,
            },
            shard_order: Vec::new(),
            final_order: Vec::new(),
            needs_sort: false,
            having: None,
            limit,
            offset,
        })
    }

    #[test]
    fn limits_from_constants_and_parameters() {
        let i = merge_input(
            plan(Some(Count::Const(5)), None),
            2,
            Bound::default(),
            vec![],
        )
        .unwrap();
        assert_eq!((i.limit, i.offset), (Some(5), 0));
        let eight = 7i64.to_be_bytes();
        let values = [Some(&b"3"[..]), Some(&eight[..]), None];
        let bound = Bound {
            values: &values,
            formats: &[0, 1, 0],
            types: &[0, 20, 0],
        };
        let p = plan(Some(Count::Param(1)), Some(Count::Param(0)));
        let i = merge_input(p, 2, bound, vec![]).unwrap();
        assert_eq!((i.limit, i.offset), (Some(7), 3));
        let p = plan(Some(Count::Param(2)), None);
        assert_eq!(merge_input(p, 2, bound, vec![]).unwrap().limit, None);
        let neg = [Some(&b"-1"[..])];
        let bound = Bound {
            values: &neg,
            formats: &[0],
            types: &[0],
        };
        let p = plan(None, Some(Count::Param(0)));
        assert_eq!(merge_input(p, 2, bound, vec![]).unwrap_err().0, "2201X");
        let p = plan(Some(Count::Param(3)), None);
        assert_eq!(merge_input(p, 2, bound, vec![]).unwrap_err().0, "42P02");
    }
}
