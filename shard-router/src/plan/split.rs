//! The parts of a split INSERT: one statement per shard with only its rows, built by
//! concatenating the pieces of the statement's split template.

use std::fmt::Write as _;

use super::{shard_name, InsertRoute, Segment, SplitTemplate};
use crate::{Plan, RouteError, Router, ShardPart, StatementKind, Target};

/// The plan of an INSERT split into `parts` on `shards`.
pub(super) fn split_plan(
    router: &Router,
    route: &InsertRoute,
    shards: Vec<usize>,
    parts: Vec<ShardPart>,
    kind: StatementKind,
) -> Plan {
    let names: Vec<&str> = shards.iter().map(|s| shard_name(router, *s)).collect();
    Plan {
        target: Target::Split(parts),
        kind,
        reason: format!(
            "{} rows of {} split over {}",
            route.rows.len(),
            route.table,
            names.join(", ")
        ),
    }
}

/// The split template of an INSERT, or why its rows cannot be split.
pub(super) fn split_template(route: &InsertRoute) -> Result<&SplitTemplate, RouteError> {
    route.split.as_ref().map_err(|why| {
        RouteError::new(
            "0A000",
            format!(
                "the rows of this INSERT into sharded table {} belong to different shards and \
                 the statement cannot be split: {why}",
                route.table
            ),
        )
    })
}

/// One shard's statement: the template with only `rows`, parameters renumbered `$1..` in order
/// of appearance, and the new -> original parameter mapping. A parameter for which `constant`
/// gives a text (a normalized statement's constant) is written as that text instead.
pub(super) fn build_part<'a, 'c>(
    template: &'a SplitTemplate,
    rows: impl Iterator<Item = &'a Vec<Segment>>,
    constant: impl Fn(usize) -> Option<&'c str>,
) -> (String, Vec<usize>) {
    let mut sql = String::new();
    let mut mapping: Vec<usize> = Vec::new();
    let mut put = |segments: &[Segment], sql: &mut String| {
        for segment in segments {
            match segment {
                Segment::Text(text) => sql.push_str(text),
                Segment::Param(original) => {
                    if let Some(text) = constant(*original) {
                        sql.push_str(text);
                        continue;
                    }
                    let new = match mapping.iter().position(|p| p == original) {
                        Some(i) => i,
                        None => {
                            mapping.push(*original);
                            mapping.len() - 1
                        }
                    };
                    let _ = write!(sql, "${}", new + 1);
                }
            }
        }
    };
    put(&template.prefix, &mut sql);
    for (i, row) in rows.enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        put(row, &mut sql);
    }
    put(&template.suffix, &mut sql);
    (sql, mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_renumber_parameters_in_order_of_appearance() {
        let t = SplitTemplate {
            prefix: vec![Segment::Text("INSERT INTO t (a, b) VALUES ".into())],
            rows: vec![
                vec![
                    Segment::Text("(".into()),
                    Segment::Param(0),
                    Segment::Text(", ".into()),
                    Segment::Param(4),
                    Segment::Text(")".into()),
                ],
                vec![
                    Segment::Text("(".into()),
                    Segment::Param(2),
                    Segment::Text(", ".into()),
                    Segment::Param(4),
                    Segment::Text(")".into()),
                ],
            ],
            suffix: vec![Segment::Text(" RETURNING ".into()), Segment::Param(5)],
        };
        let (sql, params) = build_part(&t, t.rows.iter().skip(1), |_| None);
        assert_eq!(sql, "INSERT INTO t (a, b) VALUES ($1, $2) RETURNING $3");
        assert_eq!(params, vec![2, 4, 5]);
        let (sql, params) = build_part(&t, t.rows.iter(), |_| None);
        assert_eq!(
            sql,
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $2) RETURNING $4"
        );
        assert_eq!(params, vec![0, 4, 2, 5]);
    }

    #[test]
    fn constants_are_written_in_place_of_their_parameters() {
        let t = SplitTemplate {
            prefix: vec![Segment::Text("INSERT INTO t (a) VALUES ".into())],
            rows: vec![
                vec![
                    Segment::Text("(".into()),
                    Segment::Param(0),
                    Segment::Text(")".into()),
                ],
                vec![
                    Segment::Text("(".into()),
                    Segment::Param(1),
                    Segment::Text(")".into()),
                ],
            ],
            suffix: Vec::new(),
        };
        let written = ["-5", "'it''s'"];
        let (sql, params) = build_part(&t, t.rows.iter(), |i| written.get(i).copied());
        assert_eq!(sql, "INSERT INTO t (a) VALUES (-5), ('it''s')");
        assert!(params.is_empty());
    }
}
