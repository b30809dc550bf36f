//! The harness's own rendering of taosx topic templates (independent of the bridge's, so that the two
//! check each other): `{database}`, `{tmq_topic}`, `{vgroup_id}`, `{stable}`, `{table}`.

/// Variables a message offers; `None` = the message does not carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars<'a> {
    pub database: Option<&'a str>,
    pub tmq_topic: Option<&'a str>,
    pub vgroup_id: Option<i32>,
    pub stable: Option<&'a str>,
    pub table: Option<&'a str>,
}

/// Why a template cannot be rendered for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrendered {
    /// The message lacks a variable: taosx (and the bridge) skip such a message.
    Missing(String),
    /// The variable is unknown so far (e.g. a vgroup id not yet seen): no expectation possible.
    Unknown(String),
}

/// Renders `template`; `vgroup_known` tells whether a missing vgroup id is merely not known yet.
pub fn render(template: &str, vars: &Vars) -> Result<String, Unrendered> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &rest[start + 1..start + len];
        let value = match name {
            "database" => vars.database.map(str::to_string),
            "tmq_topic" => vars.tmq_topic.map(str::to_string),
            "vgroup_id" => match vars.vgroup_id {
                Some(v) => Some(v.to_string()),
                None => return Err(Unrendered::Unknown(name.into())),
            },
            "stable" => vars.stable.map(str::to_string),
            "table" => vars.table.map(str::to_string),
            _ => None,
        };
        match value {
            Some(v) => out.push_str(&v),
            None => return Err(Unrendered::Missing(name.into())),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_variable() {
        let vars = Vars {
            database: Some("power"),
            tmq_topic: Some("t"),
            vgroup_id: Some(3),
            stable: Some("meters"),
            table: Some("d1"),
        };
        assert_eq!(
            render("m/{database}/{tmq_topic}/{vgroup_id}/{stable}/{table}", &vars).unwrap(),
            "m/power/t/3/meters/d1"
        );
        assert_eq!(render("plain", &vars).unwrap(), "plain");
    }

    #[test]
    fn a_missing_variable_is_a_skip_and_an_unseen_vgroup_is_unknown() {
        let vars = Vars {
            database: Some("power"),
            ..Vars::default()
        };
        assert_eq!(
            render("m/{stable}", &vars),
            Err(Unrendered::Missing("stable".into()))
        );
        assert_eq!(
            render("m/{vgroup_id}", &vars),
            Err(Unrendered::Unknown("vgroup_id".into()))
        );
    }
}
