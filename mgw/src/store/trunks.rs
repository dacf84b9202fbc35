//! Trunks configured through the admin API, kept in SQLite so they survive a restart. A
//! stored trunk replaces a `[[trunk]]` section of the same name.

use rusqlite::params;

use super::db::{Db, DbError};
use crate::config::TrunkConfig;

/// Every stored trunk, as the JSON the API took.
pub fn load(db: &Db) -> Result<Vec<(String, String)>, DbError> {
    let conn = db.conn();
    let mut stmt = conn
        .prepare("SELECT name, config FROM trunks ORDER BY name")
        .map_err(DbError::Sql)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(DbError::Sql)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(DbError::Sql)
}

pub fn save(db: &Db, name: &str, json: &str, now_ms: u64) -> Result<(), DbError> {
    db.write(|tx| {
        tx.execute(
            "INSERT INTO trunks (name, config, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET config = ?2, updated_ms = ?3",
            params![name, json, now_ms as i64],
        )
        .map(|_| ())
    })
    .map_err(DbError::Sql)
}

/// Whether a stored trunk of that name existed.
pub fn delete(db: &Db, name: &str) -> Result<bool, DbError> {
    db.write(|tx| tx.execute("DELETE FROM trunks WHERE name = ?1", params![name]))
        .map(|n| n > 0)
        .map_err(DbError::Sql)
}

/// A trunk from the API's JSON: the keys of a `[[trunk]]` section, the name from the path.
pub fn parse(name: &str, json: &str) -> Result<TrunkConfig, String> {
    let mut v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(obj) = v.as_object_mut() else {
        return Err("expected a JSON object with the keys of a [[trunk]] section".into());
    };
    obj.insert("name".into(), serde_json::Value::String(name.to_string()));
    let de = serde_json::to_string(&v).map_err(|e| e.to_string())?;
    let mut d = serde_json::Deserializer::from_str(&de);
    serde_path_to_error::deserialize::<_, TrunkConfig>(&mut d).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_trunks_round_trip_and_replace() {
        let dir = std::env::temp_dir().join(format!("mgw-trunks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let db = Db::open(&dir).expect("db");
        save(&db, "up1", r#"{"server":"192.0.2.1"}"#, 1).expect("save");
        save(&db, "up1", r#"{"server":"192.0.2.2"}"#, 2).expect("save");
        let all = load(&db).expect("load");
        assert_eq!(
            all,
            vec![("up1".into(), r#"{"server":"192.0.2.2"}"#.into())]
        );
        assert!(delete(&db, "up1").expect("delete"));
        assert!(!delete(&db, "up1").expect("delete"));
        let t = parse(
            "up2",
            r#"{"server":"[::1]:5070","transport":"tcp","user":"gw"}"#,
        )
        .expect("valid");
        assert_eq!(
            (t.name.as_str(), t.server.port, t.expires),
            ("up2", 5070, 1200)
        );
        let e = parse("up3", r#"{"server":"x","pasword":"typo"}"#).expect_err("unknown key");
        assert!(e.contains("pasword"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
