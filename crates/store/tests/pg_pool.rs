//! A burst of concurrent store calls on PostgreSQL never opens more connections than the
//! pool's maximum: the calls beyond it wait for a free connection (and fail after the pool's
//! timeout), so a burst cannot exceed the server's `max_connections`.

use dialboard_store::pg::{cluster::Cluster, PgStore, PoolOptions};
use dialboard_store::Store;
use postgres::{Client, NoTls};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Client connections to the test's database.
fn connections(monitor: &mut Client) -> i64 {
    monitor
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'",
            &[],
        )
        .unwrap()
        .get(0)
}

// The cluster's URLs already carry a query (`?host=`), hence `&`.
#[test]
fn a_burst_of_blocking_calls_stays_within_the_pool() {
    let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
    let url = cluster.create_database().unwrap();
    let store = Arc::new(PgStore::open(&format!("{url}&pool_max_size=3&pool_timeout_seconds=20")).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The node's own threads (writer, compaction, listener) are connected before the burst.
    std::thread::sleep(Duration::from_millis(1500));
    let mut monitor = Client::connect(&url, NoTls).unwrap();
    let mut locker = Client::connect(&url, NoTls).unwrap();
    let before = connections(&mut monitor);
    // Every read of the tenants waits while the table is locked: the burst piles up.
    let mut lock = locker.transaction().unwrap();
    lock.batch_execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            rt.spawn(async move { store.tenant_by_name(&format!("t{i}")).await })
        })
        .collect();
    let (mut most, started) = (0, Instant::now());
    while started.elapsed() < Duration::from_secs(3) {
        most = most.max(connections(&mut monitor) - before);
        std::thread::sleep(Duration::from_millis(50));
    }
    lock.commit().unwrap();
    for call in calls {
        assert_eq!(rt.block_on(call).unwrap().unwrap().map(|t| t.id), None);
    }
    assert_eq!(
        most, 3,
        "the pool opened {most} connections for 40 waiting calls (its maximum is 3)"
    );

    // A call that finds no free connection within the timeout fails, and says why.
    let impatient = Arc::new(PgStore::open(&format!("{url}&pool_max_size=1&pool_timeout_seconds=1")).unwrap());
    let mut lock = locker.transaction().unwrap();
    lock.batch_execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let first = {
        let store = impatient.clone();
        rt.spawn(async move { store.tenant_by_name("a").await })
    };
    std::thread::sleep(Duration::from_millis(300));
    let second = rt.block_on(impatient.tenant_by_name("b")).unwrap_err().to_string();
    assert!(second.contains("no database connection"), "{second}");
    lock.commit().unwrap();
    assert!(rt.block_on(first).unwrap().is_ok());
    assert!(PgStore::open(&format!("{url}&pool_max_size=0")).is_err());
    assert_eq!(
        PoolOptions::from_url("postgres://h/db?pool_max_size=5&sslmode=disable").unwrap(),
        (
            PoolOptions {
                max_size: 5,
                timeout: Duration::from_secs(30)
            },
            "postgres://h/db?sslmode=disable".to_string()
        )
    );
    rt.block_on(store.shutdown());
    rt.block_on(impatient.shutdown());
}
