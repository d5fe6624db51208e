//! Admission of heavy reads: how many queries (`/query`, the analytics views, `/calls`) one
//! credential and one tenant may have running at once. The engine bounds what one query costs
//! (`engine::query::Budget`); this bounds how many run side by side, so one tenant flooding
//! the server holds at most a few of the blocking threads that queries run on, and everyone
//! else's queries keep their latency. Past a cap the answer is `429` with `Retry-After`: a
//! waiting queue would only hold the flood's connections and memory longer.

use super::auth::{too_many_requests, Principal};
use super::error::{ApiError, Code};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Queries running at once, at most.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub per_credential: usize,
    pub per_tenant: usize,
    /// How long a request past a cap waits for a place before its `429`.
    pub wait: Duration,
}

impl Default for AdmissionLimits {
    /// On the 2-core reference machine: a tenant runs at most 8 queries at once (they wait on
    /// the database part of the time; with `query::BUDGET` that bounds a tenant's query memory
    /// to well under a gigabyte), a credential 6; a page that opens more views at once (the
    /// pipeline's campaigns) queues them, each waiting at most 10 s for a place.
    fn default() -> Self {
        AdmissionLimits {
            per_credential: 6,
            per_tenant: 8,
            wait: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    Credential(i64, String),
    Tenant(i64),
}

/// The running queries, by credential and by tenant.
pub struct Admission {
    limits: AdmissionLimits,
    running: Mutex<HashMap<Holder, usize>>,
    /// Wakes the requests waiting for a place when one is freed.
    freed: Notify,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            running: Mutex::default(),
            freed: Notify::new(),
        })
    }

    /// A permit to run one query for `principal`, held until dropped. Past a cap the request
    /// waits up to `limits.wait` for a place (a dashboard opens several views at once), then
    /// gets `429`.
    pub async fn admit(self: &Arc<Self>, principal: &Principal) -> Result<Permit, ApiError> {
        let credential = Holder::Credential(principal.tenant_id, principal.actor_name());
        let tenant = Holder::Tenant(principal.tenant_id);
        let deadline = tokio::time::Instant::now() + self.limits.wait;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(permit) = self.try_admit(&credential, &tenant) {
                return Ok(permit);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                let mut e = too_many_requests(1);
                e.code = Code::TooManyQueries;
                e.message = format!(
                    "too many queries running at once (at most {} per credential and {} per tenant); retry after 1 s",
                    self.limits.per_credential, self.limits.per_tenant
                );
                return Err(e);
            }
        }
    }

    fn try_admit(self: &Arc<Self>, credential: &Holder, tenant: &Holder) -> Option<Permit> {
        let mut running = self.running.lock().expect("admission lock");
        let count = |h: &Holder| running.get(h).copied().unwrap_or(0);
        if count(credential) >= self.limits.per_credential || count(tenant) >= self.limits.per_tenant {
            return None;
        }
        for h in [credential, tenant] {
            *running.entry(h.clone()).or_insert(0) += 1;
        }
        Some(Permit {
            admission: self.clone(),
            holders: [credential.clone(), tenant.clone()],
        })
    }
}

/// One admitted query; dropping it (the request finished, failed or was cancelled) frees its
/// place.
pub struct Permit {
    admission: Arc<Admission>,
    holders: [Holder; 2],
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = self.admission.running.lock().expect("admission lock");
        for h in &self.holders {
            if let Some(n) = running.get_mut(h) {
                *n -= 1;
                if *n == 0 {
                    running.remove(h);
                }
            }
        }
        drop(running);
        self.admission.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::auth::{Actor, Reach};
    use dialboard_store::Scope;

    fn caller(tenant: i64, key: &str) -> Principal {
        Principal {
            tenant_id: tenant,
            scopes: vec![Scope::Read],
            reach: Reach::All,
            actor: Actor::Key { id: key.into() },
            session: None,
        }
    }

    #[tokio::test]
    async fn caps_per_credential_and_per_tenant_and_frees_on_drop() {
        let a = Admission::new(AdmissionLimits {
            per_credential: 2,
            per_tenant: 3,
            wait: Duration::from_millis(50),
        });
        let k1 = caller(1, "k1");
        let first = a.admit(&k1).await.unwrap();
        let _second = a.admit(&k1).await.unwrap();
        let e = a.admit(&k1).await.err().unwrap();
        assert_eq!((e.status().as_u16(), e.retry_after), (429, Some(1)));
        let _third = a.admit(&caller(1, "k2")).await.unwrap();
        assert!(a.admit(&caller(1, "k3")).await.is_err(), "the tenant's cap");
        assert!(a.admit(&caller(2, "k1")).await.is_ok(), "another tenant has its own");
        drop(first);
        assert!(a.admit(&caller(1, "k3")).await.is_ok());
    }

    #[tokio::test]
    async fn a_request_past_the_cap_waits_for_a_place() {
        let a = Admission::new(AdmissionLimits {
            per_credential: 1,
            per_tenant: 1,
            wait: Duration::from_secs(5),
        });
        let first = a.admit(&caller(1, "k1")).await.unwrap();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.admit(&caller(1, "k1")).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert!(waiting.await.unwrap().is_ok());
    }
}
