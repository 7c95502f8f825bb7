//! Plans (contract stub).

use crate::{Params, Plan, RouteError, Router, Statement, StatementKind, Target};

pub(crate) fn plan(router: &Router, stmt: &Statement, params: &Params<'_>) -> Result<Plan, RouteError> {
    let _ = (router, stmt, params);
    Ok(Plan {
        target: Target::Default,
        kind: StatementKind::Read,
        reason: "default shard".into(),
    })
}
