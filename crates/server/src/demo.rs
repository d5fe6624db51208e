//! `dialboard demo`: a realistic fictional call center, generated deterministically from a
//! seed, ingested through the same validation and store as real events, then kept live.

use dialboard_engine::clock::Clock;
use dialboard_engine::event::{parse_event, ParsedEvent};
use dialboard_engine::taxonomy::CompiledTaxonomy;
use dialboard_store::access::{Role, User};
use dialboard_store::{DirectoryKind, Store, TenantSettings};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub const TENANT: &str = "demo";
pub const TIMEZONE: &str = "America/New_York";

pub struct Rep {
    pub id: String,
    pub team: &'static str,
    /// Where the rep works: the local hours of the shift and the prospects' hours follow it.
    pub clock: Clock,
    /// The shift's usual start and end, in local hours (each day varies a little around them).
    shift: (f64, f64),
    /// Whether the rep works weekends too (those who follow the sun do).
    every_day: bool,
    connect_skill: f64,
    meeting_skill: f64,
    talk_median: f64,
    calls_per_day: f64,
    score_mean: f64,
    talk_ratio: f64,
    filler: f64,
}

pub struct Campaign {
    pub id: &'static str,
    inbound: bool,
    sources: &'static [&'static str],
}

/// The sales teams. Most reps work New York's day, Monday to Friday.
pub const TEAMS: [&str; 3] = ["enterprise", "mid-market", "smb"];
/// The reps who follow the sun, every day of the week: each team has one in London, one on New
/// York's late shift and one in Manila, so every team has someone on shift at any hour and a
/// newcomer sees the live numbers move whenever they look. Their zone and usual shift (local
/// hours), in New York's time whether or not each zone is on summer time (the UK's summer time
/// lies within the US's): London ≈ 01:24–11:24 (02:24–12:24 in the weeks only the US is on
/// summer time), New York 09:30–18:30, Manila ≈ 16:24–03:36 (17:24–04:36 in summer).
const SUN_REPS: [(&str, &str, (f64, f64)); 9] = [
    ("oliver.wright", "Europe/London", LONDON_SHIFT),
    ("grace.lee", "America/New_York", LATE_SHIFT),
    ("jose.reyes", "Asia/Manila", MANILA_SHIFT),
    ("isla.campbell", "Europe/London", LONDON_SHIFT),
    ("marcus.hill", "America/New_York", LATE_SHIFT),
    ("angela.cruz", "Asia/Manila", MANILA_SHIFT),
    ("freya.jones", "Europe/London", LONDON_SHIFT),
    ("tyler.scott", "America/New_York", LATE_SHIFT),
    ("mark.villanueva", "Asia/Manila", MANILA_SHIFT),
];
const LONDON_SHIFT: (f64, f64) = (6.4, 16.4);
const LATE_SHIFT: (f64, f64) = (9.5, 18.5);
const MANILA_SHIFT: (f64, f64) = (5.4, 16.6);
/// The sales teams' usual shift in New York.
const SALES_SHIFT: (f64, f64) = (8.95, 17.4);
const REP_NAMES: [&str; 24] = [
    "maria.santos",
    "james.okafor",
    "li.wei",
    "sofia.rossi",
    "noah.kim",
    "amara.diallo",
    "lucas.martin",
    "hana.sato",
    "omar.haddad",
    "emma.johnson",
    "diego.fernandez",
    "priya.patel",
    "jonas.berg",
    "fatima.zahra",
    "ethan.brown",
    "chloe.dubois",
    "mateo.garcia",
    "aisha.bello",
    "ryan.oconnor",
    "mei.chen",
    "samuel.mensah",
    "olivia.smith",
    "arjun.rao",
    "zoe.muller",
];
pub const CAMPAIGNS: [Campaign; 4] = [
    Campaign {
        id: "q4-enterprise-outbound",
        inbound: false,
        sources: &["linkedin", "purchased_list", "referral"],
    },
    Campaign {
        id: "webinar-follow-up",
        inbound: false,
        sources: &["webinar"],
    },
    Campaign {
        id: "inbound-demo-requests",
        inbound: true,
        sources: &["website", "referral"],
    },
    Campaign {
        id: "reactivation",
        inbound: false,
        sources: &["purchased_list", "website"],
    },
];
const INTENTS: [&str; 6] = [
    "pricing",
    "demo_request",
    "objection_budget",
    "competitor",
    "support",
    "timing",
];

pub fn reps(seed: u64) -> Vec<Rep> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let sales = REP_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| (*name, TEAMS[i % TEAMS.len()], TIMEZONE, SALES_SHIFT, false));
    let sun = SUN_REPS
        .iter()
        .enumerate()
        .map(|(i, &(name, zone, shift))| (name, TEAMS[i / 3], zone, shift, true));
    sales
        .chain(sun)
        .map(|(name, team, zone, shift, every_day)| {
            // A spread of profiles: strong closers, high-volume dialers, and reps to coach.
            let skill: f64 = rng.random_range(0.7..1.3);
            Rep {
                id: name.to_string(),
                team,
                clock: Clock::new(zone).expect("a valid zone"),
                shift,
                every_day,
                connect_skill: rng.random_range(0.75..1.25),
                meeting_skill: skill,
                talk_median: rng.random_range(110.0..260.0),
                calls_per_day: rng.random_range(45.0..95.0),
                score_mean: 55.0 + 25.0 * (skill - 0.7) / 0.6 + rng.random_range(-5.0..5.0),
                talk_ratio: rng.random_range(0.38..0.72),
                filler: rng.random_range(1.0..7.0),
            }
        })
        .collect()
}

/// Connect likelihood by local hour: mornings and late afternoons answer, lunch does not.
impl Rep {
    /// Whether a working day of this rep's covers `t` (within the usual shift, local time).
    pub fn on_shift(&self, t: i64) -> bool {
        let local = self.clock.zoned(t);
        let hour = local.hour() as f64 + local.minute() as f64 / 60.0;
        self.works_on(self.clock.day_of_week(t)) && (self.shift.0..self.shift.1).contains(&hour)
    }

    fn works_on(&self, day_of_week: i64) -> bool {
        self.every_day || day_of_week <= 5
    }
}

fn hour_factor(hour: i64) -> f64 {
    match hour {
        8 => 0.8,
        9 => 0.95,
        10 | 11 => 1.2,
        12 => 0.7,
        13 => 0.85,
        14 | 15 => 1.0,
        16 => 1.25,
        17 => 1.05,
        _ => 0.6,
    }
}

fn weekday_factor(day_of_week: i64) -> f64 {
    [0.0, 0.95, 1.1, 1.12, 1.05, 0.82, 0.6, 0.5][day_of_week as usize]
}

fn ts(seconds: f64) -> String {
    jiff::Timestamp::from_nanosecond((seconds * 1e9) as i128)
        .expect("in range")
        .to_string()
}

/// Produces the events of one fictional call center.
pub struct Generator {
    rng: SmallRng,
    seed: u64,
    prefix: String,
    counter: u64,
    pub reps: Vec<Rep>,
    pub events: Vec<Value>,
    talk: Normal<f64>,
}

impl Generator {
    pub fn new(seed: u64, prefix: &str) -> Generator {
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            seed,
            prefix: prefix.to_string(),
            counter: 0,
            reps: reps(seed),
            events: Vec::new(),
            talk: Normal::new(0.0, 0.7).expect("valid"),
        }
    }

    fn push(&mut self, mut event: Value) {
        self.counter += 1;
        event["id"] = json!(format!("{}-{}-{:08}", self.prefix, self.seed, self.counter));
        self.events.push(event);
    }

    fn status(&mut self, rep: usize, status: &str, at: f64) {
        let agent = self.reps[rep].id.clone();
        self.push(json!({"type": "agent_status", "agent_id": agent, "status": status, "at": ts(at)}));
    }

    /// One call by `rep` starting at `start` (epoch seconds); returns when the rep is free.
    pub fn call(&mut self, rep_index: usize, start: f64, now: f64) -> f64 {
        let rep = &self.reps[rep_index];
        // The prospects' hours are the rep's: a rep in Manila calls Asia in Manila's day.
        let clock = &rep.clock;
        let (agent, team) = (rep.id.clone(), rep.team);
        let campaign = &CAMPAIGNS[self.rng.random_range(0..CAMPAIGNS.len())];
        let source = campaign.sources[self.rng.random_range(0..campaign.sources.len())];
        let t = start as i64;
        let is_callback = self.rng.random_bool(0.08);
        let mut p_connect =
            0.27 * rep.connect_skill * hour_factor(clock.hour_of_day(t)) * weekday_factor(clock.day_of_week(t));
        if is_callback {
            p_connect *= 1.6;
        }
        if campaign.inbound {
            p_connect = 0.93;
        }
        let connected = self.rng.random_bool(p_connect.min(0.97));
        let ring = self.rng.random_range(6.0..28.0);
        let call_id = format!("call-{}-{}", self.seed, self.counter + 1);
        let contact_id = format!("contact-{}", self.rng.random_range(0..40_000));
        let mut call = json!({
            "type": "call", "call_id": call_id, "agent_id": agent, "team_id": team, "campaign_id": campaign.id,
            "list_id": format!("{}-list-{}", campaign.id, self.rng.random_range(1..4)), "contact_id": contact_id,
            "direction": if campaign.inbound { "inbound" } else { "outbound" }, "lead_source": source,
            "started_at": ts(start), "is_callback": is_callback,
        });
        let end;
        let mut disposition;
        if connected {
            let r: f64 = self.rng.random();
            let meeting = 0.11 * rep.meeting_skill;
            disposition = if r < meeting {
                "Meeting Booked"
            } else if r < meeting + 0.22 {
                "Interested"
            } else if r < meeting + 0.62 {
                "Not Interested"
            } else {
                "Connected"
            };
            let stretch = if disposition == "Meeting Booked" { 1.8 } else { 1.0 };
            let talk = (rep.talk_median * stretch * self.talk.sample(&mut self.rng).exp()).clamp(8.0, 3600.0);
            let answered = start + ring;
            let connected_at = answered + self.rng.random_range(0.3..6.0);
            end = connected_at + talk;
            call["answered_at"] = json!(ts(answered));
            call["agent_connected_at"] = json!(ts(connected_at));
            call["amd"] = json!("human");
            call["abandoned"] = json!(campaign.inbound && self.rng.random_bool(0.03));
        } else {
            let r: f64 = self.rng.random();
            disposition = match r {
                r if r < 0.04 => ["Wrong Number", "Bad Number", "DNC"][self.rng.random_range(0..3)],
                r if r < 0.065 => ["AMD Failed", "Call Error", "Dropped"][self.rng.random_range(0..3)],
                r if r < 0.5 => "No Answer",
                r if r < 0.86 => "Voicemail",
                r if r < 0.95 => "Busy",
                _ => "Disconnected",
            };
            end = start
                + ring
                + if disposition == "Voicemail" {
                    self.rng.random_range(15.0..35.0)
                } else {
                    0.0
                };
            if disposition == "Voicemail" {
                call["voicemail_dropped"] = json!(self.rng.random_bool(0.6));
                call["amd"] = json!("machine");
            }
        }
        let wrap_end = end + self.rng.random_range(8.0..110.0);
        if wrap_end > now {
            return wrap_end; // still in progress: not yet reported
        }
        call["ended_at"] = json!(ts(end));
        call["wrap_ended_at"] = json!(ts(wrap_end));
        // About one call in a hundred is corrected later (a rep fixes the disposition).
        let corrected = connected && disposition == "Interested" && self.rng.random_bool(0.05);
        call["disposition"] = json!(if corrected { "Not Interested" } else { disposition });
        self.push(call.clone());
        if corrected {
            disposition = "Meeting Booked";
            call["disposition"] = json!(disposition);
            call["updated_at"] = json!(ts(wrap_end + 600.0));
            self.push(call);
        }
        if connected && self.rng.random_bool(0.9) {
            self.analysis(rep_index, &call_id, disposition == "Meeting Booked");
        }
        if matches!(disposition, "Meeting Booked" | "Interested") {
            self.pipeline(
                &contact_id,
                &agent,
                &call_id,
                campaign.id,
                source,
                wrap_end,
                disposition == "Meeting Booked",
                now,
            );
        }
        wrap_end
    }

    fn analysis(&mut self, rep: usize, call_id: &str, meeting: bool) {
        let r = &self.reps[rep];
        let (score_mean, talk_ratio, filler) = (r.score_mean, r.talk_ratio, r.filler);
        let n = |rng: &mut SmallRng, mean: f64, sd: f64| Normal::new(mean, sd).expect("valid").sample(rng);
        let score = n(&mut self.rng, score_mean + if meeting { 10.0 } else { 0.0 }, 9.0).clamp(0.0, 100.0);
        let sentiment = n(&mut self.rng, (score - 50.0) / 80.0, 0.2).clamp(-1.0, 1.0);
        let intent = INTENTS[self.rng.random_range(0..INTENTS.len())];
        let event = json!({
            "type": "call_analysis", "call_id": call_id,
            "score": (score * 10.0).round() / 10.0,
            "sentiment": (sentiment * 100.0).round() / 100.0,
            "prospect_sentiment": (n(&mut self.rng, sentiment, 0.15).clamp(-1.0, 1.0) * 100.0).round() / 100.0,
            "agent_talk_ratio": (n(&mut self.rng, talk_ratio, 0.07).clamp(0.05, 0.95) * 100.0).round() / 100.0,
            "filler_words_per_100": (n(&mut self.rng, filler, 1.0).clamp(0.0, 20.0) * 10.0).round() / 10.0,
            "intent": intent,
        });
        self.push(event);
    }

    #[allow(clippy::too_many_arguments)]
    fn pipeline(
        &mut self,
        contact: &str,
        agent: &str,
        call_id: &str,
        campaign: &str,
        source: &str,
        at: f64,
        meeting: bool,
        now: f64,
    ) {
        let base = json!({"type": "lead_stage", "contact_id": contact, "agent_id": agent, "call_id": call_id,
            "campaign_id": campaign, "lead_source": source});
        let stage = |g: &mut Generator, name: &str, at: f64, amount: Option<f64>| {
            let mut e = base.clone();
            e["stage"] = json!(name);
            e["at"] = json!(ts(at));
            if let Some(a) = amount {
                e["amount"] = json!(a);
                e["currency"] = json!("USD");
            }
            g.push(e);
        };
        stage(self, "connected", at, None);
        if !meeting {
            return;
        }
        stage(self, "meeting_booked", at + 1.0, None);
        let mut t = at + self.rng.random_range(2.0..7.0) * 86_400.0;
        if t > now || !self.rng.random_bool(0.6) {
            return;
        }
        stage(self, "opportunity_created", t, None);
        t += self.rng.random_range(3.0..10.0) * 86_400.0;
        if t > now || !self.rng.random_bool(0.7) {
            return;
        }
        stage(self, "proposal_sent", t, None);
        t += self.rng.random_range(5.0..20.0) * 86_400.0;
        if t > now {
            return;
        }
        if self.rng.random_bool(0.38) {
            let amount = (LogNormal::<f64>::new(9.3, 0.6).expect("valid").sample(&mut self.rng) / 50.0).round() * 50.0;
            stage(self, "closed_won", t, Some(amount));
        } else {
            stage(self, "closed_lost", t, None);
        }
    }

    /// A ticket or chat opened at `opened`, with its resolution and maybe a CSAT score.
    pub fn conversation(&mut self, opened: f64, now: f64) {
        let r: f64 = self.rng.random();
        let (channel, response_median) = match r {
            r if r < 0.45 => ("email", 5400.0),
            r if r < 0.7 => ("whatsapp", 600.0),
            _ => ("chat", 120.0),
        };
        let rep = self.rng.random_range(0..self.reps.len());
        let (agent, team) = (self.reps[rep].id.clone(), self.reps[rep].team);
        let id = format!("conv-{}-{}", self.seed, self.counter + 1);
        let first_response = opened + response_median * self.talk.sample(&mut self.rng).exp();
        let resolved = first_response + response_median * 3.0 * self.talk.sample(&mut self.rng).exp();
        let mut e = json!({"type": "conversation", "conversation_id": id, "channel": channel, "opened_at": ts(opened),
            "agent_id": agent, "team_id": team, "intent": INTENTS[self.rng.random_range(0..INTENTS.len())], "status": "open"});
        if first_response <= now {
            e["first_response_at"] = json!(ts(first_response));
        }
        let is_resolved = resolved <= now && self.rng.random_bool(0.86);
        if is_resolved {
            e["resolved_at"] = json!(ts(resolved));
            e["status"] = json!("resolved");
        }
        self.push(e);
        if is_resolved && self.rng.random_bool(0.55) {
            let score = [5, 5, 5, 4, 4, 4, 3, 2, 1][self.rng.random_range(0..9)];
            self.push(json!({"type": "csat", "score": score, "at": ts(resolved + 300.0), "conversation_id": id, "agent_id": agent}));
        }
    }

    /// The working day `date` of every rep (in each rep's own zone): status timeline, calls — up
    /// to `now`; and the tenant's tickets of that date.
    pub fn day(&mut self, date: jiff::civil::Date, clock: &Clock, now: f64) {
        for rep in 0..self.reps.len() {
            let day_start = self.reps[rep].clock.date_start(date) as f64;
            let weekday = self.reps[rep].clock.day_of_week(day_start as i64);
            let works = self.reps[rep].works_on(weekday) || self.rng.random_bool(0.08);
            if !works {
                continue;
            }
            let (from, to) = self.reps[rep].shift;
            let start = day_start + 3600.0 * (from + self.rng.random_range(-0.65..0.65));
            let lunch = day_start + 3600.0 * (from + self.rng.random_range(3.05..3.85));
            let lunch_end = lunch + self.rng.random_range(1800.0..3600.0);
            let stop = day_start + 3600.0 * (to + self.rng.random_range(-0.6..0.6));
            if start > now {
                continue;
            }
            self.status(rep, "dialing", start);
            let gap = (stop - start - 2700.0) / self.reps[rep].calls_per_day.max(1.0);
            let mut t = start;
            let mut at_lunch = false;
            loop {
                t += gap * self.rng.random_range(0.3..1.7);
                if !at_lunch && t >= lunch {
                    at_lunch = true;
                    if lunch > now {
                        break;
                    }
                    self.status(rep, "idle", lunch);
                    if lunch_end > now {
                        break;
                    }
                    self.status(rep, "dialing", lunch_end);
                    t = lunch_end;
                    continue;
                }
                if t >= stop || t > now {
                    break;
                }
                t = self.call(rep, t, now);
            }
            if stop <= now {
                self.status(rep, "offline", stop);
            }
        }
        let day_start = clock.date_start(date);
        let tickets = if clock.day_of_week(day_start) <= 5 {
            self.rng.random_range(35..60)
        } else {
            self.rng.random_range(8..15)
        };
        for _ in 0..tickets {
            let opened = day_start as f64 + self.rng.random_range(0.0..86_400.0);
            if opened <= now {
                self.conversation(opened, now);
            }
        }
    }

    /// One beat of the live demo at `now`: a rep on shift ends a call (it started a few minutes
    /// ago), and now and then a conversation opens. The events are left in `events`.
    pub fn live_beat(&mut self, now: f64) {
        let on_shift: Vec<usize> = (0..self.reps.len())
            .filter(|&r| self.reps[r].on_shift(now as i64))
            .collect();
        if let Some(&rep) = on_shift.get(self.rng.random_range(0..on_shift.len().max(1))) {
            let start = now - self.rng.random_range(200.0..900.0);
            self.status(rep, "on_call", start);
            let free = self.call(rep, start, now);
            if free <= now {
                self.status(rep, "wrap_up", free - 20.0);
                self.status(rep, "dialing", free);
            }
        }
        if self.rng.random_bool(0.1) {
            self.conversation(now - 30.0, now);
        }
    }
}

/// All history events for `days` days up to `now` (epoch seconds), in the tenant's zone.
pub fn history(seed: u64, days: u32, clock: &Clock, now: i64) -> Vec<Value> {
    let mut g = Generator::new(seed, "demo");
    let today = clock.date_of(now);
    // To tomorrow: in London and Manila, tomorrow's shift may have started already.
    for back in (-1..=days as i64).rev() {
        let date = today.checked_sub(jiff::Span::new().days(back)).expect("date in range");
        g.day(date, clock, now as f64);
    }
    g.events
}

fn parse_all(events: &[Value], taxonomy: &CompiledTaxonomy) -> Vec<ParsedEvent> {
    events
        .iter()
        .map(|e| parse_event(e, taxonomy).expect("demo events are valid"))
        .collect()
}

pub async fn run(store: Arc<dyn Store>, listen: &str, days: u32, seed: u64) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let tenant = match store.tenant_by_name(TENANT).await? {
        Some(t) => t,
        None => store.create_tenant(TENANT, TenantSettings::new(TIMEZONE)).await?,
    };
    let now = jiff::Timestamp::now().as_second();
    let existing = store
        .query(
            tenant.id,
            json!({"measures": ["total_calls"], "range": {"preset": "all_time"}}),
            now,
        )
        .await?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let has_history = existing.total("total_calls").and_then(|n| n.as_f64()).unwrap_or(0.0) > 0.0;
    if has_history {
        println!("using the existing demo data in this database");
    } else {
        let events = history(seed, days, &tenant.clock, now);
        let parsed = parse_all(&events, &tenant.taxonomy);
        for chunk in parsed.chunks(10_000) {
            store.ingest(tenant.id, chunk.to_vec()).await?;
        }
        // Once, with the data: a restart keeps what an admin changed since.
        add_directory(&store, tenant.id, seed).await?;
        println!(
            "generated {} events: {days} days of a {}-rep call center (seed {seed}) in {:.1} s",
            events.len(),
            REP_NAMES.len() + SUN_REPS.len(),
            started.elapsed().as_secs_f64()
        );
    }
    add_logins(&store, tenant.id, seed).await?;
    let key = crate::cli::create_admin_key(&store, tenant.id).await?;
    tokio::spawn(live(store.clone(), tenant.id, seed));
    crate::cli::serve(store, listen, |url| {
        println!("logins (password '{DEMO_PASSWORD}'): admin@demo.test, manager@demo.test (team {}), agent@demo.test ({})", TEAMS[0], REP_NAMES[0]);
        println!("admin API key for tenant '{TENANT}' (shown once): {key}");
        println!("try: curl -s -H 'Authorization: Bearer {key}' -d '{{\"measures\":[\"total_calls\",\"connect_rate\",\"median_talk_time\"],\"dimensions\":[\"team\"],\"range\":{{\"preset\":\"today\"}}}}' {url}/api/v1/query");
        println!("ready in {:.1} s", started.elapsed().as_secs_f64());
        println!("{url}");
    })
    .await
}

pub const DEMO_PASSWORD: &str = "demo";

/// Names, teams, daily goals and campaign costs, as an admin would enter them.
pub async fn add_directory(store: &Arc<dyn Store>, tenant_id: i64, seed: u64) -> anyhow::Result<()> {
    let title = |id: &str| {
        id.split(['.', '-'])
            .map(|w| {
                let mut c = w.chars();
                c.next().map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (i, team) in TEAMS.iter().enumerate() {
        let mut body = json!({"name": title(team)});
        if i == 0 {
            // Enterprise reps make fewer, longer calls.
            body["targets"] = json!({"min_calls": 60, "min_connects": 12, "min_talk_minutes": 150,
                                      "max_idle_minutes": 30, "min_dialing_hours": 5});
        }
        store.put_directory(tenant_id, DirectoryKind::Team, team, body).await?;
    }
    for rep in reps(seed) {
        let body = json!({"name": title(&rep.id), "team_id": rep.team, "daily_goal": (rep.calls_per_day.round() as u32 / 5 * 5).max(50)});
        store
            .put_directory(tenant_id, DirectoryKind::Agent, &rep.id, body)
            .await?;
    }
    for (campaign, cost) in CAMPAIGNS.iter().zip([48_000.0, 12_500.0, 20_000.0, 7_500.0]) {
        let body = json!({"name": title(campaign.id), "cost": cost, "currency": "USD"});
        store
            .put_directory(tenant_id, DirectoryKind::Campaign, campaign.id, body)
            .await?;
    }
    Ok(())
}

/// The demo's three logins (SPEC §2): an admin, the manager of the first team and its first
/// rep as an agent. The short password is the demo's own; real users need a longer one.
async fn add_logins(store: &Arc<dyn Store>, tenant_id: i64, seed: u64) -> anyhow::Result<()> {
    let rep = &reps(seed)[0];
    let logins = [
        ("admin@demo.test", Role::Admin, None, vec![]),
        ("manager@demo.test", Role::Manager, None, vec![TEAMS[0].to_string()]),
        (
            "agent@demo.test",
            Role::Agent,
            Some(rep.id.clone()),
            vec![rep.team.to_string()],
        ),
    ];
    for (email, role, agent_id, teams) in logins {
        if store.user_by_email(tenant_id, email).await?.is_some() {
            continue;
        }
        let user = User {
            id: format!("demo-{}", role.as_str()),
            tenant_id,
            email: email.into(),
            role,
            agent_id,
            teams,
            created_at: jiff::Timestamp::now().as_second(),
        };
        store
            .create_user(user, crate::access::hash_password(DEMO_PASSWORD))
            .await?;
    }
    Ok(())
}

/// Keeps the demo moving: a call ends somewhere in the center every second or two, whatever
/// the hour (in every team, someone follows the sun).
async fn live(store: Arc<dyn Store>, tenant_id: i64, seed: u64) {
    let Ok(tenant) = store.tenant(tenant_id).await else {
        return;
    };
    let run = jiff::Timestamp::now().as_second();
    let mut g = Generator::new(seed.wrapping_add(run as u64), &format!("live-{run}"));
    loop {
        let pause = g.rng.random_range(700..2200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        g.live_beat(jiff::Timestamp::now().as_nanosecond() as f64 / 1e9);
        let events: Vec<Value> = std::mem::take(&mut g.events);
        if let Err(e) = store.ingest(tenant_id, parse_all(&events, &tenant.taxonomy)).await {
            tracing::warn!(error = %e, "demo live events not stored");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    fn field<'a>(events: &'a [Value], kind: &str, name: &str) -> Vec<&'a Value> {
        events.iter().filter(|e| e["type"] == kind).map(|e| &e[name]).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_call_center() {
        let clock = Clock::new(TIMEZONE).unwrap();
        let now = 1_780_000_000; // a fixed instant, so the partial day is the same too
        let a = history(11, 14, &clock, now);
        assert_eq!(a, history(11, 14, &clock, now));
        assert_ne!(a, history(12, 14, &clock, now));
    }

    #[test]
    fn the_live_demo_moves_at_every_hour_in_every_team_with_reps_on_shift() {
        let clock = Clock::new(TIMEZONE).unwrap();
        let reps = reps(5);
        // A weekday, a Saturday and a Sunday in winter; a summer day; a day of March and one of
        // October when New York is on summer time and London is not.
        for date in [
            "2026-01-09",
            "2026-01-10",
            "2026-01-11",
            "2026-07-04",
            "2026-03-20",
            "2026-10-30",
        ] {
            let midnight = clock.date_start(date.parse().unwrap());
            let mut g = Generator::new(5, "live");
            for quarter in 0..96 {
                let now = midnight + quarter * 900;
                g.events.clear();
                for beat in 0..20 {
                    g.live_beat((now + beat) as f64);
                }
                let callers: Vec<&str> = field(&g.events, "call", "agent_id")
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                let hour = clock.zoned(now);
                assert!(!callers.is_empty(), "no call in 20 beats at {hour}");
                for team in TEAMS {
                    let on = reps.iter().any(|r| r.team == team && r.on_shift(now));
                    assert!(on, "no one of {team} is on shift at {hour}");
                }
                for agent in callers {
                    let rep = reps.iter().find(|r| r.id == agent).unwrap();
                    assert!(rep.on_shift(now), "{agent} is off shift at {hour}");
                }
            }
        }
    }

    #[test]
    fn the_demo_looks_like_a_call_center() {
        let clock = Clock::new(TIMEZONE).unwrap();
        let events = history(7, 30, &clock, 1_780_000_000);
        let taxonomy = CompiledTaxonomy::new(&Default::default());
        assert!(
            parse_all(&events, &taxonomy).len() == events.len(),
            "every event is valid"
        );
        let teams: HashSet<_> = field(&events, "call", "team_id").into_iter().collect();
        let reps: HashSet<_> = field(&events, "call", "agent_id").into_iter().collect();
        assert!(teams.len() == 3 && reps.len() == REP_NAMES.len() + SUN_REPS.len());
        let channels: HashSet<_> = field(&events, "conversation", "channel").into_iter().collect();
        assert_eq!(channels.len(), 3);
        assert!(!field(&events, "csat", "score").is_empty());
        assert!(field(&events, "lead_stage", "stage")
            .iter()
            .any(|s| **s == "closed_won"));
        assert!(!field(&events, "call_analysis", "score").is_empty());
        // Connect rates vary by local hour: late morning beats lunch time.
        let mut by_hour: BTreeMap<i64, (u32, u32)> = BTreeMap::new();
        for e in events
            .iter()
            .filter(|e| e["type"] == "call" && e["direction"] == "outbound")
        {
            let t: jiff::Timestamp = e["started_at"].as_str().unwrap().parse().unwrap();
            let slot = by_hour.entry(clock.hour_of_day(t.as_second())).or_default();
            slot.0 += 1;
            slot.1 += e.get("agent_connected_at").is_some() as u32;
        }
        let rate = |h: i64| by_hour[&h].1 as f64 / by_hour[&h].0 as f64;
        assert!(rate(11) > rate(12) * 1.2, "11:00 {} vs 12:00 {}", rate(11), rate(12));
    }
}
