//! Property: merging sorted streams equals sorting their union (stably, in stream order).

use std::cmp::Ordering;

use proptest::prelude::*;

use super::*;

/// A generated row: two sort keys.
type Keys = (Option<i32>, Option<String>);

/// SQL ordering of one nullable key.
fn cmp_key<T: Ord>(a: &Option<T>, b: &Option<T>, desc: bool, nulls_first: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) if nulls_first => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => cmp_key(b, a, desc, nulls_first).reverse(),
        (Some(x), Some(y)) if desc => y.cmp(x),
        (Some(x), Some(y)) => x.cmp(y),
    }
}

/// One generated case.
#[derive(Debug, Clone)]
struct Case {
    streams: Vec<Vec<Keys>>,
    specs: [(bool, bool); 2],
    binary: bool,
    /// The keys are hidden columns after the payload (else the payload follows them).
    hidden: bool,
    limit: Option<u64>,
    offset: u64,
    max_rows: Option<u64>,
}

fn keys() -> impl Strategy<Value = Keys> {
    (
        prop::option::weighted(0.85, -20i32..20),
        prop::option::weighted(0.85, "[ab]{0,2}"),
    )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::collection::vec(keys(), 0..25), 1..5),
        any::<[(bool, bool); 2]>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0u64..40),
        prop::option::weighted(0.8, 0u64..10).prop_map(|o| o.unwrap_or(0)),
        prop::option::of(1u64..6),
    )
        .prop_map(
            |(streams, specs, binary, hidden, limit, offset, max_rows)| Case {
                streams,
                specs,
                binary,
                hidden,
                limit,
                offset,
                max_rows,
            },
        )
}

impl Case {
    fn order(&self, a: &Keys, b: &Keys) -> Ordering {
        let [(d0, n0), (d1, n1)] = self.specs;
        cmp_key(&a.0, &b.0, d0, n0).then_with(|| cmp_key(&a.1, &b.1, d1, n1))
    }

    fn int(&self, v: Option<i32>) -> Option<Vec<u8>> {
        v.map(|v| {
            if self.binary {
                v.to_be_bytes().to_vec()
            } else {
                v.to_string().into_bytes()
            }
        })
    }

    /// The shard row: payload "stream:index" and the two keys.
    fn row(&self, s: usize, i: usize, k: &Keys) -> Row {
        let payload = t(&format!("{s}:{i}"));
        let a = self.int(k.0);
        let b = k.1.clone().map(String::into_bytes);
        if self.hidden {
            vec![payload, a, b]
        } else {
            vec![a, b, payload]
        }
    }

    fn run(&self) -> (Vec<Row>, Vec<Row>) {
        let mut streams = self.streams.clone();
        for s in &mut streams {
            s.sort_by(|a, b| self.order(a, b));
        }
        let rows: Vec<Vec<Row>> = streams
            .iter()
            .enumerate()
            .map(|(s, st)| {
                st.iter()
                    .enumerate()
                    .map(|(i, k)| self.row(s, i, k))
                    .collect()
            })
            .collect();
        let mut all: Vec<(Keys, Row)> = streams
            .iter()
            .zip(&rows)
            .flat_map(|(st, r)| st.iter().cloned().zip(r.iter().cloned()))
            .collect();
        all.sort_by(|a, b| self.order(&a.0, &b.0));
        let hidden = if self.hidden { 2 } else { 0 };
        let expected: Vec<Row> = all
            .into_iter()
            .map(|(_, r)| r[..3 - hidden].to_vec())
            .skip(self.offset as usize)
            .take(self.limit.map_or(usize::MAX, |l| l as usize))
            .collect();

        let format = i16::from(self.binary);
        let (cols, cols_at) = if self.hidden {
            (
                [("p", TEXT, 0), ("a", INT4, format), ("b", TEXT, 0)],
                [Col::End(1), Col::End(0)],
            )
        } else {
            (
                [("a", INT4, format), ("b", TEXT, 0), ("p", TEXT, 0)],
                [Col::Start(0), Col::Start(1)],
            )
        };
        let [(d0, n0), (d1, n1)] = self.specs;
        let order = vec![key(cols_at[0], d0, n0), key(cols_at[1], d1, n1)];
        let mut inp = input(rows_plan(order, hidden, false), rows.len());
        inp.limit = self.limit;
        inp.offset = self.offset;
        let descs: Vec<Vec<u8>> = (0..rows.len()).map(|s| rd(&cols, s as u32)).collect();
        let got = drive(&mut Merge::new(inp), &descs, &rows, self.max_rows).unwrap();
        (got.rows, expected)
    }
}

proptest! {
    #[test]
    fn merge_equals_sorted_union(case in case()) {
        let (got, expected) = case.run();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_row_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..40)) {
        let mut merge = Merge::new(input(rows_plan(vec![asc(0)], 0, false), 1));
        merge.row_description(0, &rd(&[("a", INT4, 0), ("b", TEXT, 1)], 1)).unwrap();
        if merge.data_row(0, &body).is_ok() {
            merge.end(0).unwrap();
            let _ = merge.emit(&mut BytesMut::new(), None);
        }
        let _ = Merge::new(input(rows_plan(vec![asc(0)], 0, false), 1)).row_description(0, &body);
    }
}
