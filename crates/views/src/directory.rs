//! The tenant's directory (agents, teams, campaigns) as the views read it: names, membership,
//! goals, targets and costs. What a client may write into it is validated by the server.

use crate::reach::Reach;
use dialboard_store::{ActivityTargets, DirectoryKind, Store, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub name: String,
    #[serde(default)]
    pub team_id: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Calls per day; the tenant's `targets.min_calls` when absent.
    #[serde(default)]
    pub daily_goal: Option<u32>,
    /// Out of public leaderboards (SPEC §14): colleagues see this rep as `anonymous`.
    #[serde(default)]
    pub leaderboard_opt_out: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
    /// This team's activity targets; the tenant's when absent.
    #[serde(default)]
    pub targets: Option<ActivityTargets>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub name: String,
    /// What the campaign cost, for cost per lead and ROI.
    #[serde(default)]
    pub cost: Option<f64>,
    #[serde(default)]
    pub currency: Option<String>,
}

/// One tenant's directory, read once per request.
#[derive(Debug, Default)]
pub struct Directory {
    pub agents: BTreeMap<String, Agent>,
    pub teams: BTreeMap<String, Team>,
    pub campaigns: BTreeMap<String, Campaign>,
}

async fn entries<T: DeserializeOwned>(
    store: &dyn Store,
    tenant: i64,
    kind: DirectoryKind,
) -> Result<BTreeMap<String, T>, StoreError> {
    let mut out = BTreeMap::new();
    for (id, body) in store.directory(tenant, kind).await? {
        // Entries were validated when stored; one that no longer reads is skipped, not fatal.
        if let Ok(entry) = serde_json::from_value(body) {
            out.insert(id, entry);
        }
    }
    Ok(out)
}

/// The reps whose names `reach` may not see on leaderboards because they opted out: none for
/// managers and admins, and never the caller itself.
pub async fn opted_out(store: &dyn Store, tenant: i64, reach: &Reach) -> Result<HashSet<String>, StoreError> {
    let Some(own) = reach.own_agent() else {
        return Ok(HashSet::new());
    };
    let agents: BTreeMap<String, Agent> = entries(store, tenant, DirectoryKind::Agent).await?;
    Ok(agents
        .into_iter()
        .filter(|(id, a)| a.leaderboard_opt_out == Some(true) && id != own)
        .map(|(id, _)| id)
        .collect())
}

impl Directory {
    pub async fn load(store: &dyn Store, tenant: i64) -> Result<Directory, StoreError> {
        // Three reads on the store's readers at once, not one after another.
        let (agents, teams, campaigns) = tokio::try_join!(
            entries(store, tenant, DirectoryKind::Agent),
            entries(store, tenant, DirectoryKind::Team),
            entries(store, tenant, DirectoryKind::Campaign),
        )?;
        Ok(Directory {
            agents,
            teams,
            campaigns,
        })
    }

    /// The agent's name, or its id when the directory does not know it.
    pub fn agent_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.agents.get(id).map_or(id, |a| a.name.as_str())
    }

    pub fn team_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.teams.get(id).map_or(id, |t| t.name.as_str())
    }

    pub fn campaign_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.campaigns.get(id).map_or(id, |c| c.name.as_str())
    }

    /// The agents the directory places in `team`.
    pub fn members(&self, team: &str) -> Vec<&str> {
        self.agents
            .iter()
            .filter(|(_, a)| a.team_id.as_deref() == Some(team))
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// The activity targets that apply to an agent: its team's, else the tenant's.
    pub fn targets<'a>(&'a self, agent: &str, tenant: &'a ActivityTargets) -> &'a ActivityTargets {
        self.agents
            .get(agent)
            .and_then(|a| a.team_id.as_ref())
            .and_then(|t| self.teams.get(t))
            .and_then(|t| t.targets.as_ref())
            .unwrap_or(tenant)
    }

    /// An agent's daily call goal: its own, else its targets' minimum calls.
    pub fn daily_goal(&self, agent: &str, tenant: &ActivityTargets) -> f64 {
        self.agents
            .get(agent)
            .and_then(|a| a.daily_goal)
            .map_or_else(|| self.targets(agent, tenant).min_calls, f64::from)
    }
}
