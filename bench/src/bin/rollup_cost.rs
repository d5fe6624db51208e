//! `cargo run --release -p dialboard-bench --bin rollup_cost`
//!
//! The writer's rollup work per call, in isolation and in the steps the writer takes: each
//! call's cell contributions, gathered into a transaction's deltas (4,000 calls, as group commit
//! makes of 4 clients' batches), encoded as its pending row, merged into the overlay, and the
//! overlay sorted by block and emptied as a checkpoint does (without the stored blocks).
use dialboard_bench::{batches, BATCH};
use dialboard_engine::cells::for_each_call_cell;
use dialboard_engine::clock::Clock;
use dialboard_engine::event::{parse_event, Event};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::overlay::{DeltaMap, Overlay};
use serde_json::Value;
use std::time::{Duration, Instant};

fn main() {
    let total = 1_000_000;
    // The ingest bench's calls, parsed beforehand: parsing is not rollup work.
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let calls: Vec<_> = batches(0, total, total, 7)
        .iter()
        .flat_map(|b| serde_json::from_slice::<Vec<Value>>(b).unwrap())
        .filter_map(|e| match parse_event(&e, &taxonomy).unwrap().event {
            Event::Call(c) => Some(c),
            _ => None,
        })
        .collect();
    let clock = Clock::new("America/New_York").unwrap();
    let (mut t_emit, mut t_add, mut t_encode, mut t_merge, mut t_fold) = Default::default();
    let mut overlay = Overlay::default();
    let mut cells = 0;
    for chunk in calls.chunks(4 * BATCH) {
        let s = Instant::now();
        let mut n = 0;
        for c in chunk {
            for_each_call_cell(&clock, c, None, |_, st| n += st.c[0]);
        }
        std::hint::black_box(n);
        t_emit += s.elapsed();
        let s = Instant::now();
        let mut deltas = DeltaMap::default();
        for c in chunk {
            for_each_call_cell(&clock, c, None, |id, st| deltas.add(1, id, st, 1));
        }
        t_add += s.elapsed();
        let s = Instant::now();
        std::hint::black_box(deltas.encode());
        t_encode += s.elapsed();
        let s = Instant::now();
        overlay.merge(deltas);
        t_merge += s.elapsed();
        if overlay.len() > 200_000 {
            let s = Instant::now();
            cells += overlay.len();
            let mut out = 0;
            for (_, block) in overlay.blocks() {
                let block: Vec<_> = block.collect();
                out += block.len();
            }
            std::hint::black_box(out);
            overlay.clear();
            t_fold += s.elapsed();
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / calls.len() as f64;
    println!(
        "per call µs: contributions only {:.2}, into DeltaMap {:.2}, encode {:.2}, overlay merge {:.2}, checkpoint sort+clear {:.2} ({} cells folded)",
        per(t_emit), per(t_add), per(t_encode), per(t_merge), per(t_fold), cells
    );
}
