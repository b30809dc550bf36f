//! SQL through the official `taos` client: the scenario's setup statements and topic definitions, and the
//! queries that tell which rows a topic must carry.

use serde_json::{Map, Value};
use taos::{AsyncFetchable, AsyncQueryable, AsyncTBuilder, Taos, TaosBuilder};

#[derive(Debug, thiserror::Error)]
#[error("SQL {sql:?} failed: {reason}")]
pub struct SqlError {
    pub sql: String,
    pub reason: String,
}

pub struct Sql {
    taos: Taos,
}

impl Sql {
    pub async fn connect(dsn: &str) -> Result<Sql, SqlError> {
        let err = |e: taos::Error| SqlError {
            sql: "<connect>".into(),
            reason: e.to_string(),
        };
        let builder = TaosBuilder::from_dsn(dsn).map_err(err)?;
        let taos = builder.build().await.map_err(err)?;
        Ok(Sql { taos })
    }

    pub async fn exec(&self, sql: &str) -> Result<(), SqlError> {
        self.taos.exec(sql).await.map(|_| ()).map_err(|e| SqlError {
            sql: sql.into(),
            reason: e.to_string(),
        })
    }

    /// Rows as ordered JSON objects (column name → value, timestamps as raw integers).
    pub async fn rows(&self, sql: &str) -> Result<Vec<Map<String, Value>>, SqlError> {
        let err = |e: taos::Error| SqlError {
            sql: sql.into(),
            reason: e.to_string(),
        };
        let mut rs = self.taos.query(sql).await.map_err(err)?;
        let names: Vec<String> = rs.fields().iter().map(|f| f.name().to_string()).collect();
        let records = rs.to_records().await.map_err(err)?;
        Ok(records
            .into_iter()
            .map(|row| {
                names
                    .iter()
                    .cloned()
                    .zip(row.iter().map(|v| v.to_json_value()))
                    .collect()
            })
            .collect())
    }
}
