//! `cargo run --release -p dialboard-bench --bin rollup_cost`
//!
//! The rollup work per call, in isolation and in the steps the server takes. On the writer's
//! thread: each call recorded as a contribution and the transaction's contributions encoded as
//! its pending row (4,000 calls, as group commit makes of 4 clients' batches), and at a
//! checkpoint the overlay sorted by block (without the stored blocks). On the merge thread: the
//! contributions turned into the transaction's cell deltas, merged into the overlay, and the
//! folded overlay freed.
use dialboard_bench::{batches, BATCH};
use dialboard_engine::event::{parse_event, Event};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::contribution::{self, Contribution, Counted};
use dialboard_store::overlay::{DeltaMap, Overlay};
use dialboard_store::{TenantInfo, TenantSettings};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The rollup work per call (see the crate's bench/README.md).
#[derive(clap::Parser)]
#[command(about, long_about = None)]
struct Flags {
    /// Calls recorded
    #[arg(long, default_value_t = 1_000_000)]
    calls: usize,
}

fn main() {
    let total = <Flags as clap::Parser>::parse().calls;
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
    let tenant = TenantInfo::new(1, "bench".into(), TenantSettings::new("America/New_York")).unwrap();
    let (mut t_record, mut t_encode, mut t_add, mut t_merge, mut t_sort, mut t_free) = Default::default();
    let mut overlay = Overlay::default();
    // As on the merge thread: kept between transactions for its blocks' size hints and the
    // boxes the overlay's merge gives back.
    let mut gathering = DeltaMap::default();
    let mut cells = 0;
    for chunk in calls.chunks(4 * BATCH) {
        let s = Instant::now();
        let contributions: Vec<Contribution> = chunk
            .iter()
            .map(|c| {
                Contribution::add(Counted::Call {
                    call: c.clone(),
                    analysis: None,
                })
            })
            .collect();
        t_record += s.elapsed();
        let s = Instant::now();
        std::hint::black_box(contribution::encode([(tenant.id, &contributions[..])].into_iter()));
        t_encode += s.elapsed();
        let s = Instant::now();
        contribution::add_deltas(&mut gathering, [(&tenant, &contributions[..])]);
        let deltas = gathering.take();
        t_add += s.elapsed();
        let s = Instant::now();
        let spare = overlay.merge(deltas);
        t_merge += s.elapsed();
        gathering.reuse(spare);
        if overlay.len() > 200_000 {
            let s = Instant::now();
            cells += overlay.len();
            let mut out = 0;
            for (_, block) in overlay.blocks() {
                let block: Vec<_> = block.collect();
                out += block.len();
            }
            std::hint::black_box(out);
            t_sort += s.elapsed();
            let s = Instant::now();
            drop(std::mem::take(&mut overlay));
            t_free += s.elapsed();
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / calls.len() as f64;
    println!(
        "per call µs — writer: recorded {:.2}, encoded {:.2}, checkpoint sort {:.2}; merger: into DeltaMap {:.2}, \
         overlay merge {:.2}, freed after a checkpoint {:.2} ({} cells folded)",
        per(t_record),
        per(t_encode),
        per(t_sort),
        per(t_add),
        per(t_merge),
        per(t_free),
        cells
    );
}
