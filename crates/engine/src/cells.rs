//! Rollup cells. A cell sums the contributions of the records whose time falls in one bucket
//! (a [`Grain`] of the tenant's clock) and whose key — the values of its [`Cuboid`]'s
//! dimensions — is the same. Contributions are additive, so a replaced record is *retracted*
//! (its old contribution added with sign −1) and rollups stay exactly `f(raw records)`.

use crate::clock::{Clock, Grain};
use crate::event::{AgentStatus, CallAnalysis, CallRecord, Conversation, CsatScore, StageChange};
use crate::histogram::{Histogram, HistogramRef};

/// A dimension stored in cell keys. Derived dimensions (category, hour of day, day of week)
/// are computed at query time from these and from the cell's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Agent,
    Team,
    Campaign,
    List,
    LeadSource,
    Direction,
    Disposition,
    ScoreRange,
    Intent,
    // Only tickets, CSAT and stages have these (calls have every dimension before them).
    Channel,
    Stage,
}

/// How many stored dimensions there are: the length of a record's dimension values.
pub const DIMS: usize = 11;
/// A record's value for every [`Dim`], in `Dim::ALL` order ("" when absent).
pub type DimValues<'a> = [&'a str; DIMS];

impl Dim {
    pub const ALL: [Dim; DIMS] = [
        Dim::Agent,
        Dim::Team,
        Dim::Campaign,
        Dim::List,
        Dim::LeadSource,
        Dim::Direction,
        Dim::Disposition,
        Dim::ScoreRange,
        Dim::Intent,
        Dim::Channel,
        Dim::Stage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dim::Agent => "agent",
            Dim::Team => "team",
            Dim::Campaign => "campaign",
            Dim::List => "list",
            Dim::LeadSource => "lead_source",
            Dim::Direction => "direction",
            Dim::Disposition => "disposition",
            Dim::ScoreRange => "score_range",
            Dim::Intent => "intent",
            Dim::Channel => "channel",
            Dim::Stage => "stage",
        }
    }
}

/// Which records a cell sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fact {
    Calls,
    /// Agent status time (active dialing, idle), split at cell boundaries.
    Activity,
    /// Conversations (tickets, chats), in the bucket of `opened_at`.
    Tickets,
    /// CSAT scores, in the bucket of `at`.
    Csat,
    /// The first time each contact reached each pipeline stage, in the bucket of that `at`.
    Stages,
}

impl Fact {
    /// The dimension a query derives `dim` from for this fact's records, where the records
    /// lack it: the team of activity, CSAT and stages is their agent's in the directory (see
    /// `query::Context::agent_teams`), so it moves when the agent moves.
    pub fn stored(self, dim: Dim) -> Dim {
        match (self, dim) {
            (Fact::Activity | Fact::Csat | Fact::Stages, Dim::Team) => Dim::Agent,
            _ => dim,
        }
    }

    /// Whether a record's team is its agent's in the directory where the record names none:
    /// always for facts whose events carry no team, and for calls and tickets that give none
    /// (their cells keep the agent beside the team, or in its place — see [`AGENT_IN_TEAM`] —
    /// so the lookup is exact in every cuboid).
    pub fn team_from_directory(self, stored_team: &str) -> bool {
        match self {
            Fact::Activity | Fact::Csat | Fact::Stages => true,
            Fact::Calls | Fact::Tickets => stored_team.is_empty(),
        }
    }

    /// The dimensions a record of this fact has at all.
    pub fn dims(self) -> &'static [Dim] {
        match self {
            Fact::Calls => &Dim::ALL[..Dim::Channel as usize],
            // Status, CSAT and stage events name no team; queries take the agent's from the
            // directory (`Fact::stored`).
            Fact::Activity => &[Dim::Agent, Dim::Team],
            Fact::Tickets => &[Dim::Agent, Dim::Team, Dim::Channel, Dim::Intent],
            Fact::Csat => &[Dim::Agent, Dim::Team, Dim::Channel],
            Fact::Stages => &[Dim::Agent, Dim::Team, Dim::Campaign, Dim::LeadSource, Dim::Stage],
        }
    }
}

/// A set of dimensions rolled up at some grains. Small cuboids answer dashboards from few
/// cells; what none covers (list, score range, unusual combinations) is read from raw records
/// through the same contribution functions. A cuboid keyed by nearly every dimension would be a
/// second copy of the raw table, costing a cell write per call and saving queries little.
#[derive(Debug, PartialEq, Eq)]
pub struct Cuboid {
    pub id: u8,
    pub fact: Fact,
    pub dims: &'static [Dim],
    pub grains: &'static [Grain],
}

impl Cuboid {
    pub fn covers(&self, dims: &[Dim]) -> bool {
        dims.iter().all(|d| self.dims.contains(d))
    }

    pub fn has(&self, grain: Grain) -> bool {
        self.grains.contains(&grain)
    }
}

use Dim::*;
use Grain::*;

/// Every cuboid, smallest first: the planner takes the first that covers a query.
#[rustfmt::skip]
pub static CUBOIDS: [Cuboid; 10] = [
    Cuboid { id: 0, fact: Fact::Calls, dims: &[Disposition], grains: &[Quarter, Hour, Day] },
    // Per agent also by week and month: a board of every agent over weeks reads one cell per
    // agent and disposition a week instead of one a day (`query::plan`). Kept since
    // `AGENT_WEEKS_SINCE`.
    Cuboid { id: 1, fact: Fact::Calls, dims: &[Agent, Team, Disposition], grains: &[Quarter, Hour, Day, Week, Month] },
    Cuboid { id: TEAM_CAMPAIGNS, fact: Fact::Calls, dims: &[Team, Campaign, Disposition], grains: &[Hour, Day] },
    Cuboid { id: 3, fact: Fact::Calls, dims: &[Campaign, LeadSource, Direction, Disposition], grains: &[Hour, Day] },
    // Intents, tenant-wide and per campaign (the intent is the call's analysis's, so an
    // analysis moves the call between intents as it moves its score).
    Cuboid { id: CALL_INTENTS, fact: Fact::Calls, dims: &[Campaign, Intent, Disposition], grains: &[Hour, Day] },
    Cuboid { id: 4, fact: Fact::Activity, dims: &[Agent], grains: &[Quarter, Hour, Day] },
    Cuboid { id: 5, fact: Fact::Tickets, dims: &[Agent, Team, Channel, Intent], grains: &[Quarter, Hour, Day] },
    Cuboid { id: 6, fact: Fact::Csat, dims: &[Agent, Channel], grains: &[Quarter, Hour, Day] },
    // Funnels by campaign or lead source read 8; per agent, 7 has about a cell per contact.
    Cuboid { id: 8, fact: Fact::Stages, dims: &[Campaign, LeadSource, Stage], grains: &[Hour, Day] },
    Cuboid { id: 7, fact: Fact::Stages, dims: &[Agent, Campaign, LeadSource, Stage], grains: &[Quarter, Hour, Day] },
];

/// The cuboid of calls by campaign and intent: newer than the stores' first schemas, which
/// compute its cells for the calls they already hold when they upgrade.
pub const CALL_INTENTS: u8 = 9;

/// The cuboid of calls by team and campaign. It replaces cuboid 2, whose calls without a team
/// counted under no team: this one keys them by their agent ([`AGENT_IN_TEAM`]), so they count
/// under the agent's team in the directory, as every other fact does. The stores compute its
/// cells for the calls they already hold when they upgrade.
pub const TEAM_CAMPAIGNS: u8 = 10;

/// The cuboid whose week and month cells are newer than the stores' first schemas, which
/// sum them from its day cells when they upgrade.
pub const AGENT_WEEKS: u8 = 1;

/// The grains coarser than a day: a cuboid has them only where ranges of many days read many
/// cells a day, and a query reads them only from the smallest cuboid that covers it.
pub const COARSE_GRAINS: [Grain; 2] = [Grain::Week, Grain::Month];

/// Marks, in a cell key's team part, that the record named no team and what follows is its
/// agent: a cuboid keyed by team but not by agent keeps the agent that way, so a query takes
/// the team from the directory (`Fact::team_from_directory`) and the record moves when its
/// agent moves. Ids with control characters are rejected at ingest, so it cannot clash.
pub const AGENT_IN_TEAM: char = '\u{1e}';

/// The agent a cell key's team part stands for, when the record named no team.
pub fn agent_in_team(team_part: &str) -> Option<&str> {
    team_part.strip_prefix(AGENT_IN_TEAM)
}

pub fn cuboid(id: u8) -> Option<&'static Cuboid> {
    CUBOIDS.iter().find(|c| c.id == id)
}

/// Separates key parts; ids with control characters are rejected at ingest, so it cannot clash.
pub const KEY_SEPARATOR: char = '\u{1f}';

/// Identifies one cell of one tenant (the tenant is the store's business).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellId {
    pub cuboid: u8,
    pub grain: Grain,
    pub bucket: i64,
    pub key: String,
}

/// A cell, borrowed: where a contribution goes (no allocation per contribution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CellRef<'a> {
    pub cuboid: u8,
    pub grain: Grain,
    pub bucket: i64,
    pub key: &'a str,
}

impl CellRef<'_> {
    pub fn to_owned(self) -> CellId {
        CellId {
            cuboid: self.cuboid,
            grain: self.grain,
            bucket: self.bucket,
            key: self.key.to_string(),
        }
    }
}

/// Which of its cuboids' grains a walk over a record's cells covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grains {
    /// Every grain of every cuboid.
    All,
    /// A cuboid's grains up to the hour, and none summed from those ([`summed_from_hours`]): a
    /// store adding a transaction's records sums each hour cell into its day, week and month
    /// cells once ([`coarse_bucket`]) instead of adding every record to them (7 of a call's 14
    /// cells; calls in time order put hundreds in each of a transaction's coarse cells).
    UpToHour,
}

impl Grains {
    fn covers(self, cuboid: &Cuboid, grain: Grain) -> bool {
        match self {
            Grains::All => true,
            Grains::UpToHour => !summed_from_hours(cuboid, grain),
        }
    }
}

/// Whether `cuboid`'s cells of `grain` can be summed from its hour cells: a grain coarser than
/// the hour, of a cuboid that has hours. Exact because each local hour lies inside one local
/// day, week and month ([`coarse_bucket`]).
pub fn summed_from_hours(cuboid: &Cuboid, grain: Grain) -> bool {
    grain > Grain::Hour && cuboid.has(Grain::Hour)
}

/// The bucket of `grain` holding the hour cell that starts at `hour`: the bucket of every
/// instant of that hour. An hour is the instants sharing a local date, hour and offset
/// ([`Clock::hour_start`]), and days, weeks and months are made of local dates, so this is
/// `clock.cell_start(grain, t)` for any `t` of the hour (tested over every zone's transitions).
pub fn coarse_bucket(clock: &Clock, grain: Grain, hour: i64) -> i64 {
    clock.cell_start(grain, hour)
}

/// Indices into [`Stats::c`]. Call counters first, then activity's.
pub mod counter {
    pub const CALLS: usize = 0;
    pub const TALK_N: usize = 1;
    pub const TALK_SUM: usize = 2;
    pub const WAIT_N: usize = 3;
    pub const WAIT_SUM: usize = 4;
    pub const WRAP_N: usize = 5;
    pub const WRAP_SUM: usize = 6;
    pub const VOICEMAIL_DROPPED: usize = 7;
    pub const CALLBACKS: usize = 8;
    pub const ABANDONED: usize = 9;
    pub const ANALYSED: usize = 10;
    pub const SCORE_N: usize = 11;
    pub const SCORE_SUM: usize = 12;
    pub const SENTIMENT_N: usize = 13;
    pub const SENTIMENT_SUM: usize = 14;
    pub const PROSPECT_SENTIMENT_N: usize = 15;
    pub const PROSPECT_SENTIMENT_SUM: usize = 16;
    pub const TALK_RATIO_N: usize = 17;
    pub const TALK_RATIO_SUM: usize = 18;
    pub const FILLER_N: usize = 19;
    pub const FILLER_SUM: usize = 20;
    pub const ACTIVE_NS: usize = 21;
    pub const IDLE_NS: usize = 22;
    pub const TICKETS: usize = 23;
    pub const FIRST_RESPONSE_N: usize = 24;
    pub const FIRST_RESPONSE_SUM: usize = 25;
    pub const RESOLVED: usize = 26;
    pub const RESOLUTION_SUM: usize = 27;
    pub const CSAT_N: usize = 28;
    pub const CSAT_SUM: usize = 29;
    pub const CSAT_POSITIVE: usize = 30;
    pub const STAGE_CONTACTS: usize = 31;
    pub const WON: usize = 32;
    pub const WON_AMOUNT_N: usize = 33;
    /// In the currency's minor units (cents).
    pub const WON_AMOUNT_SUM: usize = 34;
    /// Meetings whose contact was called first, and the microseconds from that call to them.
    pub const MEETINGS_CALLED: usize = 35;
    pub const CALL_TO_MEETING_SUM: usize = 36;
    pub const COUNT: usize = 37;
}

/// The sums a cell holds: integer counters (exact under any order of additions) and the
/// histogram of the fact's durations (for medians and p90): talk seconds of calls, first-response
/// seconds of tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub c: [i64; counter::COUNT],
    pub durations: Histogram,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            c: [0; counter::COUNT],
            durations: Histogram::default(),
        }
    }
}

impl Stats {
    pub fn merge(&mut self, other: &Stats, sign: i64) {
        // Only up to `other`'s last non-zero counter: a fact uses a few of them (a call the
        // first nine, without an analysis), and the cells merged into are mostly out of the
        // cache, so the counters beyond are lines read and written for nothing.
        let used = other.c.iter().rposition(|&v| v != 0).map_or(0, |p| p + 1);
        // Adds or subtracts rather than multiplying by the sign: the loops then vectorize (the
        // target has no 64-bit vector multiply).
        let pairs = self.c[..used].iter_mut().zip(other.c[..used].iter());
        match sign {
            1 => pairs.for_each(|(mine, theirs)| *mine += theirs),
            -1 => pairs.for_each(|(mine, theirs)| *mine -= theirs),
            _ => pairs.for_each(|(mine, theirs)| *mine += theirs * sign),
        }
        self.durations.merge(&other.durations, sign);
    }

    pub fn is_zero(&self) -> bool {
        self.c.iter().all(|&v| v == 0) && self.durations.is_empty()
    }

    /// Compact binary form: counters up to the last non-zero one, then the histogram with
    /// delta-encoded values, all as zigzag varints.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let used = self.c.iter().rposition(|&v| v != 0).map_or(0, |p| p + 1);
        put_varint(out, used as i64);
        for &v in &self.c[..used] {
            put_varint(out, v);
        }
        self.durations.encode(out);
    }

    pub fn decode(input: &mut &[u8]) -> Option<Stats> {
        let mut c = [0; counter::COUNT];
        Stats::decode_counters(input, &mut c)?;
        Some(Stats {
            c,
            durations: Histogram::decode(input)?,
        })
    }

    /// Decodes the counters into the first slots of `into` and returns them (they end at the
    /// last non-zero one), leaving `input` at the histogram: most measures need only the
    /// counters, and the histogram is most of a cell's bytes.
    fn decode_counters<'c>(input: &mut &[u8], into: &'c mut [i64; counter::COUNT]) -> Option<&'c [i64]> {
        let used = usize::try_from(get_varint(input)?).ok()?;
        let counters = into.get_mut(..used)?;
        for slot in counters.iter_mut() {
            *slot = get_varint(input)?;
        }
        Some(counters)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        self.encode(&mut out);
        out
    }

    pub fn from_bytes(mut bytes: &[u8]) -> Option<Stats> {
        Stats::decode(&mut bytes)
    }
}

/// A cell as a store hands it over: still encoded (decoded only if it passes the filters,
/// and without its histogram if no measure needs it), or already in memory.
#[derive(Debug, Clone, Copy)]
pub enum CellData<'a> {
    Encoded(&'a [u8]),
    Decoded(&'a Stats),
}

impl<'a> CellData<'a> {
    /// The cell's counters (up to the last non-zero one; decoded into `scratch` if the cell
    /// is encoded) and, if `histogram`, its histogram (left encoded if the cell was: a sum adds
    /// its entries as it decodes them). `None` if the counters are corrupt.
    pub fn sums<'s>(
        self,
        histogram: bool,
        scratch: &'s mut [i64; counter::COUNT],
    ) -> Option<(&'s [i64], Option<HistogramRef<'a>>)>
    where
        'a: 's,
    {
        match self {
            CellData::Encoded(mut bytes) => {
                let counters = Stats::decode_counters(&mut bytes, scratch)?;
                Some((counters, histogram.then_some(HistogramRef::Encoded(bytes))))
            }
            CellData::Decoded(s) => Some((&s.c, histogram.then_some(HistogramRef::Decoded(&s.durations)))),
        }
    }
}

pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[inline]
pub fn get_varint(input: &mut &[u8]) -> Option<i64> {
    // Most varints in cells (value steps, small counts) are one byte.
    match input.split_first() {
        Some((&byte, rest)) if byte < 0x80 => {
            *input = rest;
            Some(unzigzag(byte as u64))
        }
        _ => get_long_varint(input),
    }
}

fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

fn get_long_varint(input: &mut &[u8]) -> Option<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        z |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Some(unzigzag(z));
        }
    }
    None
}

pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

pub fn get_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(get_varint(input)?).ok()?;
    if input.len() < len {
        return None;
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    Some(bytes)
}

/// The score range of an analysed call: `0-20`, `20-40`, `40-60`, `60-80`, `80-100`
/// (each includes its lower bound; 100 belongs to `80-100`).
pub fn score_range(score_micros: i64) -> &'static str {
    const RANGES: [&str; 5] = ["0-20", "20-40", "40-60", "60-80", "80-100"];
    RANGES[((score_micros / 20_000_000) as usize).min(4)]
}

/// One call's contribution to every cell it falls in.
pub fn call_stats(call: &CallRecord, analysis: Option<&CallAnalysis>) -> Stats {
    use counter::*;
    let mut s = Stats::default();
    s.c[CALLS] = 1;
    if let Some(t) = call.talk_seconds {
        s.c[TALK_N] = 1;
        s.c[TALK_SUM] = t;
        s.durations = Histogram::single(t, 1);
    }
    if let Some(w) = call.wait_seconds {
        s.c[WAIT_N] = 1;
        s.c[WAIT_SUM] = w;
    }
    if let Some(w) = call.wrap_seconds {
        s.c[WRAP_N] = 1;
        s.c[WRAP_SUM] = w;
    }
    s.c[VOICEMAIL_DROPPED] = call.voicemail_dropped as i64;
    s.c[CALLBACKS] = call.is_callback as i64;
    s.c[ABANDONED] = call.abandoned as i64;
    if let Some(a) = analysis {
        s.c[ANALYSED] = 1;
        for (value, n, sum) in [
            (a.score_micros, SCORE_N, SCORE_SUM),
            (a.sentiment_micros, SENTIMENT_N, SENTIMENT_SUM),
            (
                a.prospect_sentiment_micros,
                PROSPECT_SENTIMENT_N,
                PROSPECT_SENTIMENT_SUM,
            ),
            (a.talk_ratio_micros, TALK_RATIO_N, TALK_RATIO_SUM),
            (a.filler_micros, FILLER_N, FILLER_SUM),
        ] {
            if let Some(v) = value {
                s.c[n] = 1;
                s.c[sum] = v;
            }
        }
    }
    s
}

/// The value of every [`Dim`] for a call, in `Dim::ALL` order ("" when absent).
pub fn call_dim_values<'a>(call: &'a CallRecord, analysis: Option<&'a CallAnalysis>) -> DimValues<'a> {
    let opt = |v: &'a Option<String>| v.as_deref().unwrap_or("");
    let mut v = [""; DIMS];
    v[Dim::Agent as usize] = &call.agent_id;
    v[Dim::Team as usize] = opt(&call.team_id);
    v[Dim::Campaign as usize] = opt(&call.campaign_id);
    v[Dim::List as usize] = opt(&call.list_id);
    v[Dim::LeadSource as usize] = opt(&call.lead_source);
    v[Dim::Direction as usize] = opt(&call.direction);
    v[Dim::Disposition as usize] = &call.disposition;
    if let Some(a) = analysis {
        v[Dim::ScoreRange as usize] = a.score_micros.map_or("", score_range);
        v[Dim::Intent as usize] = opt(&a.intent);
    }
    v
}

/// Whole seconds from `from_ns` to `to_ns`, truncated (as every derived duration).
fn seconds_between(from_ns: i64, to_ns: i64) -> i64 {
    (to_ns - from_ns).div_euclid(1_000_000_000)
}

pub fn ticket_dim_values<'a>(c: &'a Conversation) -> DimValues<'a> {
    let opt = |v: &'a Option<String>| v.as_deref().unwrap_or("");
    let mut v = [""; DIMS];
    v[Dim::Agent as usize] = opt(&c.agent_id);
    v[Dim::Team as usize] = opt(&c.team_id);
    v[Dim::Channel as usize] = &c.channel;
    v[Dim::Intent as usize] = opt(&c.intent);
    v
}

/// A conversation's contribution: one ticket, its first-response time (also in the histogram,
/// for the median) and, once resolved, its resolution time.
pub fn ticket_stats(c: &Conversation) -> Stats {
    use counter::*;
    let mut s = Stats::default();
    s.c[TICKETS] = 1;
    if let Some(t) = c.first_response_ns {
        let seconds = seconds_between(c.opened_ns, t);
        s.c[FIRST_RESPONSE_N] = 1;
        s.c[FIRST_RESPONSE_SUM] = seconds;
        s.durations = Histogram::single(seconds, 1);
    }
    if let Some(t) = c.resolved_ns {
        s.c[RESOLVED] = 1;
        s.c[RESOLUTION_SUM] = seconds_between(c.opened_ns, t);
    }
    s
}

/// The channel a CSAT score counts in: its conversation's (unknown until that arrives), or
/// `voice` for a score about a call.
pub fn csat_channel<'a>(s: &CsatScore, conversation_channel: Option<&'a str>) -> &'a str {
    match (&s.conversation_id, &s.call_id) {
        (Some(_), _) => conversation_channel.unwrap_or(""),
        (None, Some(_)) => "voice",
        (None, None) => "",
    }
}

pub fn csat_stats(s: &CsatScore) -> Stats {
    use counter::*;
    let mut stats = Stats::default();
    stats.c[CSAT_N] = 1;
    stats.c[CSAT_SUM] = s.score;
    stats.c[CSAT_POSITIVE] = (s.score >= 4) as i64;
    stats
}

/// The stage whose amounts are revenue.
pub const WON_STAGE: &str = "closed_won";

pub fn stage_dim_values<'a>(s: &'a StageChange) -> DimValues<'a> {
    let opt = |v: &'a Option<String>| v.as_deref().unwrap_or("");
    let mut v = [""; DIMS];
    v[Dim::Agent as usize] = opt(&s.agent_id);
    v[Dim::Campaign as usize] = opt(&s.campaign_id);
    v[Dim::LeadSource as usize] = opt(&s.lead_source);
    v[Dim::Stage as usize] = &s.stage;
    v
}

/// The stage whose first arrival `avg_days_to_meeting` measures from the contact's first call.
pub const MEETING_STAGE: &str = "meeting_booked";

/// The contribution of the first event by which a contact reached a stage (later events for
/// the same contact and stage contribute nothing: a contact reaches a stage once).
/// `first_call_ns` is the earliest start of the contact's current calls: a meeting counts the
/// time since it, if that call came first (a meeting booked before any call is not the
/// dialer's). When a call changes the contact's first call, the store retracts the meeting's
/// contribution and adds it again.
pub fn stage_stats(s: &StageChange, first_call_ns: Option<i64>) -> Stats {
    use counter::*;
    let mut stats = Stats::default();
    stats.c[STAGE_CONTACTS] = 1;
    if let Some(first) = first_call_ns.filter(|&f| s.stage == MEETING_STAGE && f <= s.at_ns) {
        stats.c[MEETINGS_CALLED] = 1;
        stats.c[CALL_TO_MEETING_SUM] = (s.at_ns - first) / 1_000;
    }
    if s.stage == WON_STAGE {
        stats.c[WON] = 1;
        if let Some(amount) = s.amount_minor {
            stats.c[WON_AMOUNT_N] = 1;
            stats.c[WON_AMOUNT_SUM] = amount;
        }
    }
    stats
}

/// Writes the key of a record in `cuboid`, from the values of all its dimensions.
fn project_key_into(key: &mut String, cuboid: &Cuboid, values: &DimValues) {
    key.clear();
    // A record without a team, in a cuboid without agents, keeps its agent in the team's place.
    let agent = values[Dim::Agent as usize];
    let agent_for_team =
        values[Dim::Team as usize].is_empty() && !agent.is_empty() && !cuboid.dims.contains(&Dim::Agent);
    for (i, dim) in cuboid.dims.iter().enumerate() {
        if i > 0 {
            key.push(KEY_SEPARATOR);
        }
        if *dim == Dim::Team && agent_for_team {
            key.push(AGENT_IN_TEAM);
            key.push_str(agent);
        } else {
            key.push_str(values[*dim as usize]);
        }
    }
}

/// Calls `emit` for every cell of `fact`'s cuboids (of `grains`) that a record at second `t`
/// falls in.
fn for_each_cell(
    clock: &Clock,
    grains: Grains,
    fact: Fact,
    t: i64,
    values: &DimValues,
    stats: &Stats,
    mut emit: impl FnMut(CellRef, &Stats),
) {
    // Each grain's bucket, worked out once and only for the grains a cuboid of the fact has.
    let mut buckets = [None; Grain::ALL.len()];
    let mut key = String::with_capacity(64);
    for cuboid in CUBOIDS.iter().filter(|c| c.fact == fact) {
        project_key_into(&mut key, cuboid, values);
        for &grain in cuboid.grains.iter().filter(|&&g| grains.covers(cuboid, g)) {
            let bucket = *buckets[grain as usize].get_or_insert_with(|| clock.cell_start(grain, t));
            emit(
                CellRef {
                    cuboid: cuboid.id,
                    grain,
                    bucket,
                    key: &key,
                },
                stats,
            );
        }
    }
}

/// Calls `emit` for every cell of `grains` a call contributes to, with its contribution.
pub fn for_each_call_cell(
    clock: &Clock,
    grains: Grains,
    call: &CallRecord,
    analysis: Option<&CallAnalysis>,
    emit: impl FnMut(CellRef, &Stats),
) {
    let values = call_dim_values(call, analysis);
    for_each_cell(
        clock,
        grains,
        Fact::Calls,
        call.started_second(),
        &values,
        &call_stats(call, analysis),
        emit,
    );
}

pub fn for_each_ticket_cell(clock: &Clock, grains: Grains, c: &Conversation, emit: impl FnMut(CellRef, &Stats)) {
    let t = c.opened_ns.div_euclid(1_000_000_000);
    for_each_cell(
        clock,
        grains,
        Fact::Tickets,
        t,
        &ticket_dim_values(c),
        &ticket_stats(c),
        emit,
    );
}

/// `conversation_channel`: the channel of the score's conversation, if that is known.
pub fn for_each_csat_cell(
    clock: &Clock,
    grains: Grains,
    s: &CsatScore,
    conversation_channel: Option<&str>,
    emit: impl FnMut(CellRef, &Stats),
) {
    let mut values = [""; DIMS];
    values[Dim::Agent as usize] = s.agent_id.as_deref().unwrap_or("");
    values[Dim::Channel as usize] = csat_channel(s, conversation_channel);
    for_each_cell(
        clock,
        grains,
        Fact::Csat,
        s.at_ns.div_euclid(1_000_000_000),
        &values,
        &csat_stats(s),
        emit,
    );
}

/// For the first event by which a contact reached a stage only (see [`stage_stats`]).
pub fn for_each_stage_cell(
    clock: &Clock,
    grains: Grains,
    s: &StageChange,
    first_call_ns: Option<i64>,
    emit: impl FnMut(CellRef, &Stats),
) {
    for_each_cell(
        clock,
        grains,
        Fact::Stages,
        s.at_ns.div_euclid(1_000_000_000),
        &stage_dim_values(s),
        &stage_stats(s, first_call_ns),
        emit,
    );
}

/// Calls `emit` for every piece of an agent's status interval `[from_ns, to_ns)` in every
/// activity cell it overlaps. Statuses that are neither active nor idle contribute nothing.
pub fn for_each_activity_cell(
    clock: &Clock,
    grains: Grains,
    agent_id: &str,
    status: AgentStatus,
    from_ns: i64,
    to_ns: i64,
    mut emit: impl FnMut(CellRef, &Stats),
) {
    let slot = match status {
        s if s.is_active() => counter::ACTIVE_NS,
        AgentStatus::Idle => counter::IDLE_NS,
        _ => return,
    };
    if to_ns <= from_ns {
        return;
    }
    const NS: i64 = 1_000_000_000;
    for cuboid in CUBOIDS.iter().filter(|c| c.fact == Fact::Activity) {
        for &grain in cuboid.grains.iter().filter(|&&g| grains.covers(cuboid, g)) {
            let mut t = from_ns;
            while t < to_ns {
                let bucket = clock.cell_start(grain, t.div_euclid(NS));
                let end = clock.cell_end(grain, bucket);
                let piece_end = (end * NS).min(to_ns);
                let mut s = Stats::default();
                s.c[slot] = piece_end - t;
                emit(
                    CellRef {
                        cuboid: cuboid.id,
                        grain,
                        bucket,
                        key: agent_id,
                    },
                    &s,
                );
                t = piece_end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stats_round_trip(c in prop::collection::vec(any::<i64>(), counter::COUNT), h in prop::collection::vec((0i64..100_000, -5i64..5), 0..30)) {
            let mut s = Stats { durations: Histogram::from_entries(h), ..Stats::default() };
            s.c.copy_from_slice(&c);
            prop_assert_eq!(Stats::from_bytes(&s.to_bytes()), Some(s));
        }

        /// A merge adds `sign ×` every counter, whichever of them are zero.
        #[test]
        fn a_merge_adds_every_counter(
            mine in prop::collection::vec(-1_000i64..1_000, counter::COUNT),
            theirs in prop::collection::vec(prop_oneof![Just(0i64), -1_000i64..1_000], counter::COUNT),
            sign in prop_oneof![Just(1i64), Just(-1), -3i64..3],
        ) {
            let (mut merged, mut other) = (Stats::default(), Stats::default());
            merged.c.copy_from_slice(&mine);
            other.c.copy_from_slice(&theirs);
            merged.merge(&other, sign);
            for i in 0..counter::COUNT {
                prop_assert_eq!(merged.c[i], mine[i] + sign * theirs[i]);
            }
        }
    }

    #[test]
    fn score_ranges() {
        assert_eq!(score_range(0), "0-20");
        assert_eq!(score_range(19_999_999), "0-20");
        assert_eq!(score_range(20_000_000), "20-40");
        assert_eq!(score_range(100_000_000), "80-100");
    }

    /// Summing hour cells into coarser ones is exact only if every instant of an hour falls in
    /// the day, week and month of the hour's start: checked around every transition of every
    /// zone from 1970 (the first year events may carry) to 2040, where hours are odd (30- and
    /// 45-minute offsets, a 30-minute DST shift, days starting at 01:00, offsets of seconds).
    #[test]
    fn every_hour_lies_in_one_day_week_and_month() {
        use jiff::Timestamp;
        let (from, to) = (0, 2_208_988_800); // 1970 to 2040
        let steps = [
            -86_399, -3_601, -3_600, -1_801, -901, -1, 0, 1, 899, 1_799, 3_599, 43_200,
        ];
        let mut checked = 0;
        for name in jiff::tz::db().available() {
            let clock = Clock::new(name.as_str()).expect("a zone of the database");
            let tz = jiff::tz::TimeZone::get(name.as_str()).expect("a zone of the database");
            let transitions = tz
                .following(Timestamp::from_second(from).unwrap())
                .map(|t| t.timestamp().as_second())
                .take_while(|&t| t < to);
            // And a few instants between transitions (zones without DST have none after 1970).
            let between = (0..40).map(|i| from + i * 55_555_555 + i * i * 7_777);
            for base in transitions.chain(between) {
                for t in steps.iter().map(|s| base + s).filter(|t| (from..to).contains(t)) {
                    let hour = clock.cell_start(Grain::Hour, t);
                    for grain in COARSE_GRAINS.into_iter().chain([Grain::Day]) {
                        assert_eq!(
                            coarse_bucket(&clock, grain, hour),
                            clock.cell_start(grain, t),
                            "{} at {t}, {grain:?}",
                            name.as_str()
                        );
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000, "only {checked} instants checked");
    }

    /// Up to the hour, a walk emits every cell of a full walk except those summed from hours.
    #[test]
    fn grains_up_to_the_hour_leave_only_the_summed_cells() {
        let clock = Clock::new("America/New_York").unwrap();
        let ns = 1_000_000_000;
        let cells = |grains| {
            let mut cells = Vec::new();
            let mut add = |id: CellRef, s: &Stats| cells.push((id.to_owned(), s.clone()));
            for_each_cell(
                &clock,
                grains,
                Fact::Calls,
                1_700_000_000,
                &[""; DIMS],
                &Stats::default(),
                &mut add,
            );
            for_each_activity_cell(
                &clock,
                grains,
                "a",
                AgentStatus::Dialing,
                1_700_000_000 * ns,
                1_700_200_000 * ns,
                &mut add,
            );
            cells
        };
        let all = cells(Grains::All);
        let hours = cells(Grains::UpToHour);
        let summed = |id: &CellId| summed_from_hours(cuboid(id.cuboid).unwrap(), id.grain);
        assert!(all.iter().any(|(id, _)| summed(id)), "a full walk has day cells");
        let expected: Vec<_> = all.iter().filter(|(id, _)| !summed(id)).cloned().collect();
        assert_eq!(hours, expected);
    }

    #[test]
    fn activity_is_split_at_cell_boundaries() {
        let clock = Clock::utc();
        let ns = 1_000_000_000;
        let mut quarters = Vec::new();
        for_each_activity_cell(
            &clock,
            Grains::All,
            "a",
            AgentStatus::Dialing,
            800 * ns,
            1900 * ns,
            |id, s| {
                if id.grain == Grain::Quarter {
                    quarters.push((id.bucket, s.c[counter::ACTIVE_NS] / ns));
                }
            },
        );
        assert_eq!(quarters, vec![(0, 100), (900, 900), (1800, 100)]);
    }
}
