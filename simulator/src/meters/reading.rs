//! What one meter row holds: TDengine's canonical smart-meter schema, its tags, and realistic values
//! drawn from a seeded generator.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Columns of the super table, in order, before any chaos `ADD COLUMN`.
pub const BASE_COLUMNS: &str = "ts TIMESTAMP, current FLOAT, voltage INT, phase FLOAT";
/// Tags of the super table.
pub const TAGS: &str = "groupid INT, location VARCHAR(24)";
/// `CREATE STABLE IF NOT EXISTS {db}.meters (…) TAGS (…)`: the one definition of the meters super table
/// for the fleet, the harness, the benches and the tests.
pub fn create_stable_sql(db: &str) -> String {
    format!("CREATE STABLE IF NOT EXISTS {db}.meters ({BASE_COLUMNS}) TAGS ({TAGS})")
}

/// Name and type of the column the `add_column` chaos option adds mid-run.
pub const ADDED_COLUMN: (&str, &str) = ("power", "FLOAT");

/// Locations as TDengine's examples and taosBenchmark spell them.
pub const LOCATIONS: [&str; 10] = [
    "California.SanFrancisco",
    "California.LosAngeles",
    "California.SanDiego",
    "California.SanJose",
    "California.PaloAlto",
    "California.Campbell",
    "California.MountainView",
    "California.Sunnyvale",
    "California.SantaClara",
    "California.Cupertino",
];

/// Tag values of one child table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tags {
    pub groupid: i32,
    pub location: String,
}

/// Column values of one row (the timestamp lives beside it). `None` is SQL NULL.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub current: Option<f32>,
    pub voltage: Option<i32>,
    pub phase: Option<f32>,
    /// The column added mid-run: absent (`None`) while the schema has no such column,
    /// `Some(None)` for NULL, `Some(Some(v))` for a value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub power: Option<Option<f32>>,
}

/// A present JSON key (even `null`) becomes `Some(..)`; `default` covers the absent key.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f32>>, D::Error> {
    Option::<f32>::deserialize(d).map(Some)
}

/// A meter's character: its usual load, so that each meter looks like one device over time.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    base_current: f32,
    base_voltage: i32,
    base_phase: f32,
}

impl Profile {
    pub fn draw(rng: &mut impl Rng) -> Profile {
        Profile {
            base_current: rng.gen_range(8.0..12.0),
            base_voltage: rng.gen_range(216..=224),
            base_phase: rng.gen_range(0.28..0.34),
        }
    }

    /// One reading near the meter's usual values, rounded the way meters report (current to
    /// 0.01 A, phase to 0.001), each column NULL with probability `null_rate`.
    pub fn read(&self, rng: &mut impl Rng, null_rate: f64, with_power: bool) -> Reading {
        let current = round(self.base_current + rng.gen_range(-1.5f32..1.5), 100.0);
        let voltage = self.base_voltage + rng.gen_range(-4..=4);
        let phase = round(self.base_phase + rng.gen_range(-0.02f32..0.02), 1000.0);
        let null = |rng: &mut dyn rand::RngCore| null_rate > 0.0 && rng.gen_bool(null_rate);
        let current_v = if null(rng) { None } else { Some(current) };
        let voltage_v = if null(rng) { None } else { Some(voltage) };
        let phase_v = if null(rng) { None } else { Some(phase) };
        let power = with_power.then(|| {
            if null(rng) {
                None
            } else {
                // Apparent power in kW from the unrounded parts; float like the column.
                Some(round(current * voltage as f32 / 1000.0, 1000.0))
            }
        });
        Reading {
            current: current_v,
            voltage: voltage_v,
            phase: phase_v,
            power,
        }
    }
}

fn round(v: f32, scale: f32) -> f32 {
    (v * scale).round() / scale
}

pub fn draw_tags(rng: &mut impl Rng) -> Tags {
    Tags {
        groupid: rng.gen_range(1..=10),
        location: LOCATIONS[rng.gen_range(0..LOCATIONS.len())].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn readings_are_realistic_and_reproducible() {
        let mut a = ChaCha8Rng::seed_from_u64(7);
        let mut b = ChaCha8Rng::seed_from_u64(7);
        let (pa, pb) = (Profile::draw(&mut a), Profile::draw(&mut b));
        for _ in 0..1000 {
            let r = pa.read(&mut a, 0.0, true);
            assert_eq!(r, pb.read(&mut b, 0.0, true));
            let current = r.current.unwrap();
            assert!((6.0..14.0).contains(&current), "{current}");
            assert!((212..=228).contains(&r.voltage.unwrap()));
            assert!((0.25..0.37).contains(&r.phase.unwrap()));
            assert!(r.power.unwrap().unwrap() > 1.0);
        }
    }

    #[test]
    fn null_rate_one_gives_all_nulls() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let p = Profile::draw(&mut rng);
        let r = p.read(&mut rng, 1.0, true);
        assert_eq!(
            r,
            Reading {
                current: None,
                voltage: None,
                phase: None,
                power: Some(None)
            }
        );
    }

    #[test]
    fn power_key_distinguishes_absent_from_null() {
        let absent: Reading = serde_json::from_str(r#"{"current":1.5,"voltage":220,"phase":0.3}"#).unwrap();
        assert_eq!(absent.power, None);
        let null: Reading =
            serde_json::from_str(r#"{"current":1.5,"voltage":220,"phase":0.3,"power":null}"#).unwrap();
        assert_eq!(null.power, Some(None));
        let json = serde_json::to_string(&null).unwrap();
        assert!(json.contains(r#""power":null"#), "{json}");
        assert!(!serde_json::to_string(&absent).unwrap().contains("power"));
    }
}
