//! The plan resolved against the shards' columns: sort keys as indexes with types, the final
//! row's types, the client's RowDescription and (for grouped plans) the group state.

use shard_router::merge::{Col, FinalColumn, MergePlan, Shape, SortKey};

use super::groups::{AggSlot, Groups, Source};
use super::heads::KeySpec;
use super::rowdesc::{client_code, ClientField, Description};
use super::{agg_error, MergeError};
use crate::merge::agg::Accumulator;
use crate::merge::compare::{supported, ColumnType, SortSpec};

/// Everything fixed once the shards described their rows.
#[derive(Debug)]
pub(super) struct Layout {
    /// Shard columns per row.
    pub width: usize,
    /// The k-way merge order over shard columns.
    pub order: Vec<KeySpec>,
    /// Final columns the client sees (a prefix of the final row).
    pub visible: usize,
    /// Types of every final column (for HAVING and the final sort).
    pub final_types: Vec<ColumnType>,
    /// The final sort over final columns (empty unless the plan needs one).
    pub final_order: Vec<KeySpec>,
    /// DISTINCT: equality keys over every visible column (None: not DISTINCT).
    pub distinct: Option<Vec<KeySpec>>,
    /// The client's RowDescription columns.
    pub client: Vec<ClientField>,
}

/// A plan column that is not in the shards' rows.
fn out_of_range(col: Col, width: usize) -> MergeError {
    MergeError::Mismatch(format!(
        "the merge plan uses column {col:?} of rows with {width} columns"
    ))
}

/// A key type the merge cannot order or compare.
fn unsupported(what: &str, oid: u32) -> MergeError {
    MergeError::Value {
        code: "0A000",
        message: format!("{what} on type {oid} across shards is not supported"),
    }
}

/// An inconsistent plan (a planner bug: fail loudly rather than merge wrongly).
fn bad_plan(message: String) -> MergeError {
    MergeError::Value {
        code: "XX000",
        message,
    }
}

/// Resolves sort keys against rows whose column types are `types`.
fn resolve_keys(
    keys: &[SortKey],
    types: &[ColumnType],
    what: &str,
) -> Result<Vec<KeySpec>, MergeError> {
    keys.iter()
        .map(|key| {
            let col = key
                .column
                .index(types.len())
                .ok_or_else(|| out_of_range(key.column, types.len()))?;
            let ty = types[col];
            if !supported(ty.oid) {
                return Err(unsupported(what, ty.oid));
            }
            Ok(KeySpec {
                col,
                ty,
                spec: SortSpec {
                    descending: key.descending,
                    nulls_first: key.nulls_first,
                },
            })
        })
        .collect()
}

/// Equality keys over columns `cols` (ascending; only Equal matters).
fn equality_keys(
    cols: impl Iterator<Item = usize>,
    types: &[ColumnType],
    what: &str,
) -> Result<Vec<KeySpec>, MergeError> {
    cols.map(|col| {
        let ty = *types
            .get(col)
            .ok_or_else(|| out_of_range(Col::Start(col), types.len()))?;
        if !supported(ty.oid) {
            return Err(unsupported(what, ty.oid));
        }
        Ok(KeySpec {
            col,
            ty,
            spec: SortSpec::new(false, None),
        })
    })
    .collect()
}

/// Resolves `plan` against the shards' description `desc` and the client's format codes.
pub(super) fn resolve(
    plan: &MergePlan,
    desc: &Description,
    client_formats: &[i16],
) -> Result<(Layout, Option<Groups>), MergeError> {
    let types: Vec<ColumnType> = desc.fields.iter().map(|f| f.column_type()).collect();
    let width = types.len();
    let order = resolve_keys(&plan.shard_order, &types, "ORDER BY")?;
    match &plan.shape {
        Shape::Rows { hidden, distinct } => {
            let visible = width
                .checked_sub(*hidden)
                .ok_or_else(|| out_of_range(Col::End(*hidden), width))?;
            let distinct = if *distinct {
                if order.is_empty() && visible > 0 {
                    return Err(bad_plan("DISTINCT merge plan without an order".into()));
                }
                Some(equality_keys(0..visible, &types, "SELECT DISTINCT")?)
            } else {
                None
            };
            let final_order = if plan.needs_sort {
                resolve_keys(&plan.final_order, &types, "ORDER BY")?
            } else {
                Vec::new()
            };
            let layout = Layout {
                width,
                order,
                visible,
                final_types: types,
                final_order,
                distinct,
                client: (0..visible).map(ClientField::Shard).collect(),
            };
            Ok((layout, None))
        }
        Shape::Groups {
            keys,
            columns,
            visible,
            implicit,
        } => {
            let index = |c: Col| c.index(width).ok_or_else(|| out_of_range(c, width));
            let key_cols = keys
                .iter()
                .map(|&k| index(k))
                .collect::<Result<Vec<_>, _>>()?;
            if !key_cols.is_empty() && order.is_empty() {
                return Err(bad_plan("GROUP BY merge plan without an order".into()));
            }
            let key_specs = equality_keys(key_cols.into_iter(), &types, "GROUP BY")?;
            if *visible > columns.len() {
                return Err(bad_plan(format!(
                    "merge plan shows {visible} of {} columns",
                    columns.len()
                )));
            }
            let mut sources = Vec::with_capacity(columns.len());
            let mut aggs = Vec::new();
            let mut final_types = Vec::with_capacity(columns.len());
            let mut client = Vec::with_capacity(*visible);
            for (i, column) in columns.iter().enumerate() {
                let shown = i < *visible;
                match column {
                    FinalColumn::Shard(c) => {
                        let c = index(*c)?;
                        sources.push(Source::Shard(c));
                        final_types.push(types[c]);
                        if shown {
                            client.push(ClientField::Shard(c));
                        }
                    }
                    FinalColumn::Agg { func, arg, count } => {
                        let arg = index(*arg)?;
                        let count = count.map(index).transpose()?;
                        let acc = Accumulator::new(*func, types[arg], count.map(|c| types[c]))
                            .map_err(agg_error)?;
                        let format = if shown {
                            client_code(client_formats, i)
                        } else {
                            0
                        };
                        let binary = format == 1;
                        let keeps_partial = matches!(
                            func,
                            shard_router::merge::AggFunc::Min | shard_router::merge::AggFunc::Max
                        );
                        if keeps_partial && types[arg].binary != binary {
                            return Err(bad_plan(format!(
                                "{func:?} of column {} arrives in format {}, but the client asked for {format}",
                                i + 1,
                                i16::from(types[arg].binary)
                            )));
                        }
                        final_types.push(ColumnType {
                            oid: acc.output_oid(),
                            binary,
                        });
                        if shown {
                            client.push(ClientField::Agg {
                                name: arg,
                                oid: acc.output_oid(),
                                typlen: acc.output_typlen(),
                                format,
                            });
                        }
                        sources.push(Source::Agg(aggs.len()));
                        aggs.push(AggSlot {
                            acc,
                            arg,
                            count,
                            binary,
                        });
                    }
                }
            }
            let final_order = if plan.needs_sort {
                resolve_keys(&plan.final_order, &final_types, "ORDER BY")?
            } else {
                Vec::new()
            };
            let groups = Groups::new(key_specs, sources, aggs, *implicit);
            let layout = Layout {
                width,
                order,
                visible: *visible,
                final_types,
                final_order,
                distinct: None,
                client,
            };
            Ok((layout, Some(groups)))
        }
    }
}
