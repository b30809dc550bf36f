//! Fuzzes `Template::parse` and `render`: the input is `template\0database\0topic\0stable\0table`
//! (missing parts are empty or absent). A rendered topic never contains MQTT wildcards unless a
//! variable's value brought them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tmq2mqtt::template::{Template, Vars};

fuzz_target!(|input: &str| {
    let mut parts = input.split('\0');
    let template = parts.next().unwrap_or("");
    let database = parts.next().unwrap_or("");
    let tmq_topic = parts.next().unwrap_or("");
    let stable = parts.next();
    let table = parts.next();
    let Ok(t) = Template::parse(template) else {
        return;
    };
    assert_eq!(t.as_str(), template);
    let vars = Vars {
        database,
        tmq_topic,
        vgroup_id: input.len() as i32,
        stable,
        table,
    };
    if let Ok(topic) = t.render(&vars) {
        let values_have_wildcards = [database, tmq_topic, stable.unwrap_or(""), table.unwrap_or("")]
            .iter()
            .any(|v| v.contains(['+', '#']));
        assert!(values_have_wildcards || !topic.contains(['+', '#']), "{topic}");
    }
});
