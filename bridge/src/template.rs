//! MQTT topic templates with taosx's variables: `{database}`, `{tmq_topic}`, `{vgroup_id}`, `{stable}`,
//! `{table}`.
//!
//! A template is checked once at startup (an unknown or unterminated variable is an error) and rendered
//! per message. A message that lacks a variable its template uses is not published — taosx's rule —
//! which `render` reports as [`Missing`] so the caller can count the skip.

use std::fmt;

/// A template variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Var {
    Database,
    TmqTopic,
    VgroupId,
    Stable,
    Table,
}

impl Var {
    pub const ALL: [Var; 5] = [
        Var::Database,
        Var::TmqTopic,
        Var::VgroupId,
        Var::Stable,
        Var::Table,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Var::Database => "database",
            Var::TmqTopic => "tmq_topic",
            Var::VgroupId => "vgroup_id",
            Var::Stable => "stable",
            Var::Table => "table",
        }
    }
}

/// Why a template was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("empty topic")]
    Empty,
    #[error("unknown variable `{{{0}}}`; accepted: {{database}}, {{tmq_topic}}, {{vgroup_id}}, {{stable}}, {{table}}")]
    UnknownVar(String),
    #[error("unterminated variable starting at byte {0} (missing `}}`)")]
    Unterminated(usize),
    #[error("wildcards `+` and `#` are not allowed in a topic to publish to")]
    Wildcard,
    #[error("the NUL character (U+0000) is not allowed in an MQTT topic")]
    Nul,
    #[error("longer than MQTT's 65535-byte topic limit")]
    TooLong,
}

/// Why no topic could be rendered for a message; the message is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The message lacks this variable (taosx's rule).
    Missing(Var),
    /// The values made a string no broker accepts as a topic to publish to (e.g. an escaped table name
    /// with `+`, `#` or NUL).
    Invalid { topic: String, why: TemplateError },
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Missing(var) => write!(f, "message has no `{{{}}}`", var.name()),
            RenderError::Invalid { topic, why } => write!(f, "topic {topic:?}: {why}"),
        }
    }
}

/// Checks a topic to publish to: non-empty, within MQTT's string limit, no wildcards, no NUL (brokers
/// disconnect a client that publishes to a topic with U+0000, MQTT 3.1.1 §1.5.3).
pub fn check_topic(topic: &str) -> Result<(), TemplateError> {
    if topic.is_empty() {
        return Err(TemplateError::Empty);
    }
    if topic.len() > usize::from(u16::MAX) {
        return Err(TemplateError::TooLong);
    }
    check_chars(topic)
}

fn check_chars(s: &str) -> Result<(), TemplateError> {
    if s.contains(['+', '#']) {
        return Err(TemplateError::Wildcard);
    }
    if s.contains('\0') {
        return Err(TemplateError::Nul);
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// The values a message offers for the variables.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub database: &'a str,
    pub tmq_topic: &'a str,
    pub vgroup_id: i32,
    pub stable: Option<&'a str>,
    pub table: Option<&'a str>,
}

impl Template {
    /// Parses a template; `{name}` is a variable, everything else is literal.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        if s.is_empty() {
            return Err(TemplateError::Empty);
        }
        // The length is checked on the rendered topic: variables may render shorter than their names.
        check_chars(s)?;
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or(TemplateError::Unterminated(s.len() - rest.len() + open))?;
            let name = &after[..close];
            let var = Var::ALL
                .into_iter()
                .find(|v| v.name() == name)
                .ok_or_else(|| TemplateError::UnknownVar(name.to_string()))?;
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(var));
            rest = &after[close + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            source: s.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template uses `var`.
    pub fn uses(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// Renders the topic for one message, or says why it has none (a lacking variable, or values that make
    /// it no valid topic).
    pub fn render(&self, vars: &Vars<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.source.len() + 16);
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var(Var::Database) => out.push_str(vars.database),
                Part::Var(Var::TmqTopic) => out.push_str(vars.tmq_topic),
                Part::Var(Var::VgroupId) => out.push_str(&vars.vgroup_id.to_string()),
                Part::Var(Var::Stable) => out.push_str(vars.stable.ok_or(RenderError::Missing(Var::Stable))?),
                Part::Var(Var::Table) => out.push_str(vars.table.ok_or(RenderError::Missing(Var::Table))?),
            }
        }
        match check_topic(&out) {
            Ok(()) => Ok(out),
            Err(why) => Err(RenderError::Invalid { topic: out, why }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            database: "db",
            tmq_topic: "topic_meters",
            vgroup_id: 2,
            stable: Some("meters"),
            table: Some("d0"),
        }
    }

    #[test]
    fn renders_every_variable() {
        let t = Template::parse("x/{database}/{tmq_topic}/{vgroup_id}/{stable}/{table}").unwrap();
        assert_eq!(t.render(&vars()).unwrap(), "x/db/topic_meters/2/meters/d0");
        for v in Var::ALL {
            assert!(t.uses(v));
        }
    }

    #[test]
    fn literal_only_and_adjacent_variables() {
        assert_eq!(
            Template::parse("test/topic_meters")
                .unwrap()
                .render(&vars())
                .unwrap(),
            "test/topic_meters"
        );
        assert_eq!(
            Template::parse("{database}{table}")
                .unwrap()
                .render(&vars())
                .unwrap(),
            "dbd0"
        );
        assert_eq!(Template::parse("a}b").unwrap().render(&vars()).unwrap(), "a}b");
    }

    #[test]
    fn missing_variable_names_it() {
        let t = Template::parse("m/{stable}/{table}").unwrap();
        let v = Vars {
            stable: None,
            ..vars()
        };
        assert_eq!(t.render(&v), Err(RenderError::Missing(Var::Stable)));
        let v = Vars {
            table: None,
            ..vars()
        };
        assert_eq!(t.render(&v), Err(RenderError::Missing(Var::Table)));
        assert_eq!(
            RenderError::Missing(Var::Table).to_string(),
            "message has no `{table}`"
        );
    }

    #[test]
    fn rejects_bad_templates() {
        assert_eq!(Template::parse(""), Err(TemplateError::Empty));
        assert_eq!(
            Template::parse("a/{db}"),
            Err(TemplateError::UnknownVar("db".into()))
        );
        assert_eq!(Template::parse("a/{table"), Err(TemplateError::Unterminated(2)));
        assert_eq!(Template::parse("a/{}"), Err(TemplateError::UnknownVar("".into())));
        assert_eq!(Template::parse("a/+/b"), Err(TemplateError::Wildcard));
        assert_eq!(Template::parse("a/#"), Err(TemplateError::Wildcard));
        assert_eq!(
            TemplateError::UnknownVar("db".into()).to_string(),
            "unknown variable `{db}`; accepted: {database}, {tmq_topic}, {vgroup_id}, {stable}, {table}"
        );
    }

    #[test]
    fn values_that_make_no_valid_topic_are_refused_when_rendered() {
        let t = Template::parse("m/{table}").unwrap();
        for (table, why) in [
            ("d+1", TemplateError::Wildcard),
            ("d#2", TemplateError::Wildcard),
            ("d\x003", TemplateError::Nul),
        ] {
            let v = Vars {
                table: Some(table),
                ..vars()
            };
            let topic = format!("m/{table}");
            assert_eq!(t.render(&v), Err(RenderError::Invalid { topic, why }));
        }
        let long = "t".repeat(70_000);
        let v = Vars {
            table: Some(&long),
            ..vars()
        };
        assert!(matches!(
            t.render(&v),
            Err(RenderError::Invalid {
                why: TemplateError::TooLong,
                ..
            })
        ));
        let e = Template::parse("{table}").unwrap().render(&Vars {
            table: Some(""),
            ..vars()
        });
        assert_eq!(e.unwrap_err().to_string(), "topic \"\": empty topic");
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(Template::parse("a/\0/{table}"), Err(TemplateError::Nul));
    }
}
