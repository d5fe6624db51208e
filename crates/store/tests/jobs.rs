//! The job mechanism on both stores: each job claimed once across concurrent claimers (two
//! stores on one database, as two nodes; on SQLite, one store a file, two claimers of it),
//! retried with backoff, claimed again when its lease expires, and kept across a reopen.

mod common;

use common::{each_store as each_case, runtime, Open};
use dialboard_store::jobs::{Claim, JobState, JobUpdate, NewJob};
use dialboard_store::{Store, TenantSettings};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

fn export_job(n: i64, max_attempts: i64) -> NewJob {
    NewJob {
        kind: "export".into(),
        payload: json!({"n": n}),
        max_attempts,
    }
}

fn claim(worker: &str, lease_ms: i64) -> Claim {
    Claim {
        worker: worker.into(),
        kind: Some("export".into()),
        lease_ms,
    }
}

const T0: i64 = 1_800_000_000_000;

fn claimed_once_by_concurrent_claimers(open: Open) {
    let rt = runtime();
    let (a, b) = (open(), open());
    let tenant = rt.block_on(a.create_tenant("t", TenantSettings::new("UTC"))).unwrap();
    let mut queued = HashSet::new();
    for n in 0..40 {
        queued.insert(rt.block_on(a.enqueue_job(tenant.id, export_job(n, 3), T0)).unwrap().id);
    }
    // Another kind is left alone by claimers of "export".
    rt.block_on(a.enqueue_job(
        tenant.id,
        NewJob {
            kind: "other".into(),
            ..export_job(0, 1)
        },
        T0,
    ))
    .unwrap();
    let drain = |store: Arc<dyn Store>, worker: &'static str| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(job) = store.claim_job(claim(worker, 60_000), T0 + 1).await.unwrap() {
                assert_eq!(
                    (job.state, job.claimed_by.as_deref()),
                    (JobState::Running, Some(worker))
                );
                got.push(job.id);
            }
            got
        })
    };
    let (got_a, got_b) = rt.block_on(async {
        let (x, y) = tokio::join!(drain(a.clone(), "node-a"), drain(b.clone(), "node-b"));
        (x.unwrap(), y.unwrap())
    });
    let all: Vec<_> = got_a.iter().chain(&got_b).cloned().collect();
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(
        all.len(),
        40,
        "every job claimed, none twice (a {}, b {})",
        got_a.len(),
        got_b.len()
    );
    assert_eq!(unique, queued);
    let other = rt.block_on(a.claim_job(
        Claim {
            kind: None,
            ..claim("node-a", 1)
        },
        T0 + 1,
    ));
    assert_eq!(other.unwrap().unwrap().kind, "other");
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
}

fn retried_with_backoff(open: Open) {
    let rt = runtime();
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    let id = rt
        .block_on(store.enqueue_job(tenant.id, export_job(1, 3), T0))
        .unwrap()
        .id;
    let fail = |at: i64| {
        let job = rt
            .block_on(store.claim_job(claim("w", 60_000), at))
            .unwrap()
            .expect("due");
        assert_eq!(job.id, id);
        assert!(rt
            .block_on(store.update_job(tenant.id, &id, "w", JobUpdate::Failed("boom".into()), at))
            .unwrap());
        rt.block_on(store.job(tenant.id, &id)).unwrap().unwrap()
    };
    let after_first = fail(T0);
    assert_eq!(
        (after_first.state, after_first.attempts, after_first.run_after),
        (JobState::Queued, 1, T0 + 2_000)
    );
    assert_eq!(after_first.error.as_deref(), Some("boom"));
    // Not before its backoff has passed.
    assert!(rt
        .block_on(store.claim_job(claim("w", 60_000), T0 + 1_999))
        .unwrap()
        .is_none());
    let after_second = fail(T0 + 2_000);
    assert_eq!(
        (after_second.state, after_second.attempts, after_second.run_after),
        (JobState::Queued, 2, T0 + 2_000 + 4_000)
    );
    // The last attempt's failure is final.
    let after_third = fail(T0 + 6_000);
    assert_eq!((after_third.state, after_third.attempts), (JobState::Failed, 3));
    assert!(rt
        .block_on(store.claim_job(claim("w", 60_000), T0 + 10_000_000))
        .unwrap()
        .is_none());
    rt.block_on(store.shutdown());
}

fn lease_expiry_lets_another_node_claim(open: Open) {
    let rt = runtime();
    let (a, b) = (open(), open());
    let tenant = rt.block_on(a.create_tenant("t", TenantSettings::new("UTC"))).unwrap();
    let id = rt.block_on(a.enqueue_job(tenant.id, export_job(1, 5), T0)).unwrap().id;
    let first = rt.block_on(a.claim_job(claim("node-a", 1_000), T0)).unwrap().unwrap();
    assert_eq!(first.lease_until, Some(T0 + 1_000));
    // Held while the lease runs, and a progress report renews it.
    assert!(rt
        .block_on(b.claim_job(claim("node-b", 1_000), T0 + 999))
        .unwrap()
        .is_none());
    let progress = JobUpdate::Progress {
        done: 5,
        total: Some(10),
        lease_ms: 1_000,
    };
    assert!(rt
        .block_on(a.update_job(tenant.id, &id, "node-a", progress, T0 + 900))
        .unwrap());
    assert!(rt
        .block_on(b.claim_job(claim("node-b", 1_000), T0 + 1_500))
        .unwrap()
        .is_none());
    // node-a dies: once its lease ends, node-b takes the job over.
    let taken = rt
        .block_on(b.claim_job(claim("node-b", 1_000), T0 + 1_901))
        .unwrap()
        .unwrap();
    assert_eq!((taken.id.as_str(), taken.attempts), (id.as_str(), 2));
    assert_eq!((taken.progress_done, taken.progress_total), (5, Some(10)));
    // node-a, back, can no longer touch it.
    let late = JobUpdate::Succeeded(json!({"by": "a"}));
    assert!(!rt
        .block_on(a.update_job(tenant.id, &id, "node-a", late, T0 + 2_000))
        .unwrap());
    let done = JobUpdate::Succeeded(json!({"by": "b"}));
    assert!(rt
        .block_on(b.update_job(tenant.id, &id, "node-b", done, T0 + 2_000))
        .unwrap());
    let job = rt.block_on(a.job(tenant.id, &id)).unwrap().unwrap();
    assert_eq!((job.state, job.result), (JobState::Succeeded, Some(json!({"by": "b"}))));
    assert_eq!(job.progress_done, 10, "a finished job's progress is complete");
    // Another tenant does not see it.
    let other = rt.block_on(a.create_tenant("u", TenantSettings::new("UTC"))).unwrap();
    assert!(rt.block_on(a.job(other.id, &id)).unwrap().is_none());
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
}

fn survives_reopening(open: Open) {
    let rt = runtime();
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    let id = rt
        .block_on(store.enqueue_job(tenant.id, export_job(7, 2), T0))
        .unwrap()
        .id;
    rt.block_on(store.shutdown());
    drop(store);
    let store = open();
    let job = rt.block_on(store.claim_job(claim("w", 60_000), T0)).unwrap().unwrap();
    assert_eq!((job.id.as_str(), &job.payload), (id.as_str(), &json!({"n": 7})));
    for (seq, chunk) in [b"first,".as_slice(), b"second"].into_iter().enumerate() {
        rt.block_on(store.put_job_file_chunk(tenant.id, &id, seq as i64, chunk.to_vec()))
            .unwrap();
    }
    let done = JobUpdate::Succeeded(json!({"rows": 2}));
    assert!(rt
        .block_on(store.update_job(tenant.id, &id, "w", done, T0 + 1))
        .unwrap());
    rt.block_on(store.shutdown());
    drop(store);
    let store = open();
    let job = rt.block_on(store.job(tenant.id, &id)).unwrap().unwrap();
    assert_eq!((job.state, job.result), (JobState::Succeeded, Some(json!({"rows": 2}))));
    let listed = rt.block_on(store.jobs(tenant.id, "export", 10)).unwrap();
    assert_eq!(listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    let mut file = Vec::new();
    let mut seq = 0;
    while let Some(chunk) = rt.block_on(store.job_file_chunk(tenant.id, &id, seq)).unwrap() {
        file.extend(chunk);
        seq += 1;
    }
    assert_eq!(file, b"first,second");
    // A retry writing chunk 0 again starts the file over.
    rt.block_on(store.put_job_file_chunk(tenant.id, &id, 0, b"again".to_vec()))
        .unwrap();
    assert!(rt.block_on(store.job_file_chunk(tenant.id, &id, 1)).unwrap().is_none());
    rt.block_on(store.shutdown());
}

#[test]
fn jobs_are_claimed_once_by_concurrent_claimers() {
    each_case(claimed_once_by_concurrent_claimers);
}

#[test]
fn failed_jobs_are_retried_with_backoff() {
    each_case(retried_with_backoff);
}

#[test]
fn an_expired_lease_lets_another_node_claim() {
    each_case(lease_expiry_lets_another_node_claim);
}

#[test]
fn jobs_and_their_files_survive_reopening() {
    each_case(survives_reopening);
}
