//! Where a run's state comes from when it starts: the typed form of
//! `runs.restore_from` (stored as text).

/// What a starting run restores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreFrom {
    /// Fresh state.
    None,
    /// The job's newest snapshot.
    Latest,
    /// One chosen snapshot (parallelism 1).
    Snapshot(String),
    /// A run that was already running and moves to another worker (a
    /// takeover, a drain, a restart): its own newest snapshot, taken since
    /// the run first started, else what it first restored.
    Resume(Box<RestoreFrom>),
    /// A new run that goes on with a run a stopped console left running
    /// (recovery): each group's newest snapshot taken since that run first
    /// started (`since_ms`), else what that run first restored.
    Continue { since_ms: i64, first: Box<RestoreFrom> },
}

const RESUME: &str = "resume:";
const CONTINUE: &str = "continue:";

impl RestoreFrom {
    /// The stored text: `none`, `latest`, a snapshot id, `resume:…` or
    /// `continue:<since ms>:…`; no text means `none`.
    pub fn parse(text: Option<&str>) -> RestoreFrom {
        match text.unwrap_or("none") {
            "none" => RestoreFrom::None,
            "latest" => RestoreFrom::Latest,
            resumed if resumed.starts_with(RESUME) => {
                RestoreFrom::Resume(Box::new(RestoreFrom::parse(Some(&resumed[RESUME.len()..])).first_start()))
            }
            continued if continued.starts_with(CONTINUE) => {
                let rest = &continued[CONTINUE.len()..];
                match rest.split_once(':').and_then(|(ms, first)| Some((ms.parse().ok()?, first))) {
                    Some((since_ms, first)) => RestoreFrom::Continue {
                        since_ms,
                        first: Box::new(RestoreFrom::parse(Some(first)).first_start()),
                    },
                    None => RestoreFrom::Snapshot(continued.to_owned()),
                }
            }
            id => RestoreFrom::Snapshot(id.to_owned()),
        }
    }

    pub fn as_text(&self) -> String {
        match self {
            RestoreFrom::None => "none".into(),
            RestoreFrom::Latest => "latest".into(),
            RestoreFrom::Snapshot(id) => id.clone(),
            RestoreFrom::Resume(first) => format!("{RESUME}{}", first.as_text()),
            RestoreFrom::Continue { since_ms, first } => format!("{CONTINUE}{since_ms}:{}", first.as_text()),
        }
    }

    /// How a new run goes on with a run (what it first restored) that
    /// first started at `since_ms`.
    pub fn continued(self, since_ms: i64) -> RestoreFrom {
        match self.first_start() {
            // A run that went on with another: its history began there.
            continued @ RestoreFrom::Continue { .. } => continued,
            first => RestoreFrom::Continue { since_ms, first: Box::new(first) },
        }
    }

    /// Whether the run restores the job's newest snapshots (`latest`, also
    /// as the first start of a run it goes on with).
    pub fn is_latest(&self) -> bool {
        match self {
            RestoreFrom::Latest => true,
            RestoreFrom::Continue { first, .. } => first.is_latest(),
            _ => false,
        }
    }

    /// How the run resumes after it moved.
    pub fn resumed(self) -> RestoreFrom {
        RestoreFrom::Resume(Box::new(self.first_start()))
    }

    /// What the run restored when it first started.
    fn first_start(self) -> RestoreFrom {
        match self {
            RestoreFrom::Resume(first) => first.first_start(),
            other => other,
        }
    }

    /// [`first_start`](Self::first_start), borrowed.
    pub fn first(&self) -> &RestoreFrom {
        match self {
            RestoreFrom::Resume(first) => first.first(),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_resuming_twice_keeps_the_first_start() {
        for text in [
            "none",
            "latest",
            "0001710000000000-000001",
            "resume:none",
            "resume:latest",
            "continue:1710000000000:0001710000000000-000001",
            "resume:continue:5:latest",
        ] {
            assert_eq!(RestoreFrom::parse(Some(text)).as_text(), text);
        }
        assert_eq!(RestoreFrom::parse(None), RestoreFrom::None);
        let twice = RestoreFrom::parse(Some("resume:resume:x")).resumed();
        assert_eq!(twice, RestoreFrom::Resume(Box::new(RestoreFrom::Snapshot("x".into()))));
        let continued = RestoreFrom::parse(Some("resume:x")).continued(7);
        assert_eq!(
            continued,
            RestoreFrom::Continue { since_ms: 7, first: Box::new(RestoreFrom::Snapshot("x".into())) }
        );
        assert_eq!(continued.first(), &continued, "a continuing run's first start is its own");
        assert_eq!(continued.clone().continued(9), continued, "a recovered recovery goes on from the first");
        assert!(RestoreFrom::Latest.continued(1).is_latest() && !continued.is_latest());
    }
}
