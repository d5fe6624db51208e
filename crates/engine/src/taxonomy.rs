//! A tenant's disposition taxonomy. Cells are keyed by disposition; categories are applied at
//! query time, so a taxonomy change re-categorizes past calls at once.

use crate::fxhash::Fx;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Connected,
    NoContact,
    Invalid,
    System,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Connected,
        Category::NoContact,
        Category::Invalid,
        Category::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Connected => "connected",
            Category::NoContact => "no_contact",
            Category::Invalid => "invalid",
            Category::System => "system",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Taxonomy {
    /// Category → its dispositions, in display order.
    pub categories: Vec<(Category, Vec<String>)>,
    /// Dispositions that count as `meetings_booked`.
    pub meeting: Vec<String>,
    /// Dispositions that count toward `positive_disposition_rate`.
    pub positive: Vec<String>,
    /// Dispositions that count as `voicemails`.
    pub voicemail: Vec<String>,
}

impl Default for Taxonomy {
    fn default() -> Self {
        let names = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Taxonomy {
            categories: vec![
                (
                    Category::Connected,
                    names(&["Connected", "Meeting Booked", "Interested", "Not Interested"]),
                ),
                (
                    Category::NoContact,
                    names(&["No Answer", "Busy", "Voicemail", "Disconnected"]),
                ),
                (Category::Invalid, names(&["Wrong Number", "Bad Number", "DNC"])),
                (Category::System, names(&["AMD Failed", "Call Error", "Dropped"])),
            ],
            meeting: names(&["Meeting Booked"]),
            positive: names(&["Meeting Booked", "Interested"]),
            voicemail: names(&["Voicemail"]),
        }
    }
}

/// What a query needs to know about one disposition.
#[derive(Debug, Clone, Copy, Default)]
pub struct DispositionClass {
    pub category: Option<Category>,
    pub meeting: bool,
    pub positive: bool,
    pub voicemail: bool,
}

/// Dispositions are matched ignoring case, spaces, `_` and `-`, so `meeting_booked` and
/// `MEETING BOOKED` both mean `Meeting Booked`; the taxonomy's spelling is what is stored.
fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// A taxonomy prepared for lookups.
#[derive(Debug, Clone)]
pub struct CompiledTaxonomy {
    by_normalized: HashMap<String, String>,
    /// [`CompiledTaxonomy::canonical`] of each known spelling, worked out once: sources
    /// mostly send the taxonomy's own spelling, which then needs no normalizing.
    by_spelling: HashMap<String, String, Fx>,
    /// Looked up for every cell of calls a query reads.
    classes: HashMap<String, DispositionClass, Fx>,
    known: Vec<String>,
}

impl CompiledTaxonomy {
    pub fn new(t: &Taxonomy) -> Self {
        let mut classes: HashMap<String, DispositionClass, Fx> = HashMap::default();
        let mut known = Vec::new();
        for (category, dispositions) in &t.categories {
            for d in dispositions {
                classes.entry(d.clone()).or_default().category = Some(*category);
                known.push(d.clone());
            }
        }
        for (list, set) in [
            (
                &t.meeting,
                (|c: &mut DispositionClass| c.meeting = true) as fn(&mut DispositionClass),
            ),
            (&t.positive, |c| c.positive = true),
            (&t.voicemail, |c| c.voicemail = true),
        ] {
            for d in list {
                set(classes.entry(d.clone()).or_default());
            }
        }
        let by_normalized: HashMap<String, String> = known.iter().map(|d| (normalize(d), d.clone())).collect();
        let by_spelling = known
            .iter()
            .map(|d| (d.clone(), by_normalized[&normalize(d)].clone()))
            .collect();
        CompiledTaxonomy {
            by_normalized,
            by_spelling,
            classes,
            known,
        }
    }

    /// The taxonomy's own spelling of a disposition, or `None` if it is not in the taxonomy.
    pub fn canonical(&self, input: &str) -> Option<&str> {
        self.by_spelling
            .get(input)
            .or_else(|| self.by_normalized.get(&normalize(input)))
            .map(String::as_str)
    }

    pub fn class(&self, disposition: &str) -> DispositionClass {
        self.classes.get(disposition).copied().unwrap_or_default()
    }

    pub fn is_connected(&self, disposition: &str) -> bool {
        self.class(disposition).category == Some(Category::Connected)
    }

    pub fn known(&self) -> &[String] {
        &self.known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_forgiving_but_storage_is_canonical() {
        let t = CompiledTaxonomy::new(&Taxonomy::default());
        assert_eq!(t.canonical("meeting_booked"), Some("Meeting Booked"));
        assert_eq!(t.canonical("NO ANSWER"), Some("No Answer"));
        assert_eq!(t.canonical("Maybe"), None);
        let c = t.class("Meeting Booked");
        assert_eq!(c.category, Some(Category::Connected));
        assert!(c.meeting && c.positive && !c.voicemail);
        assert!(t.class("Voicemail").voicemail);
    }
}
