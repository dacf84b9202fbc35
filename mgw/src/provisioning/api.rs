//! The provisioning part of the admin API under `/api/v1`: accounts, numbers, log-ons,
//! keepalive profiles, licences, registrations and call records. Reading needs the `viewer`
//! role; creating, changing and deleting accounts and their numbers needs `accounting` (seed
//! 003: "only users with the Admin or Accounting role may create or delete accounts"); log-ons,
//! profiles, licences and registrations are changed by `admin` only.

use std::sync::Arc;

use rusqlite::params;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    CallerIdRule, NewAccount, NewLogOn, Profile, Provisioning, UpdateAccount, UpdateLogOn,
};
use crate::admin::{ApiError, ApiRequest, Json, Method, Role, Router};
use crate::clock::{rfc3339, unix_ms};

type P = Arc<Provisioning>;

fn ok<T: serde::Serialize>(v: T) -> Result<Json, ApiError> {
    Json::serialize(&v)
}

fn created<T: serde::Serialize>(v: T) -> Result<Json, ApiError> {
    let body = serde_json::to_value(&v).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json::created(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberBody {
    number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TotalBody {
    total: u32,
}

/// Registers every provisioning route on `router`.
pub fn routes(router: &mut Router, p: &P) {
    let r = router;
    // Accounts.
    let q = p.clone();
    r.get("/api/v1/accounts", Role::Viewer, move |_| {
        ok(q.list_accounts()?)
    });
    let q = p.clone();
    r.post("/api/v1/accounts", Role::Accounting, move |req| {
        created(q.create_account(&req.json::<NewAccount>()?)?)
    });
    let q = p.clone();
    r.get("/api/v1/accounts/{id}", Role::Viewer, move |req| {
        ok(q.get_account(req.param("id")?)?)
    });
    for method in [Method::Put, Method::Patch] {
        let q = p.clone();
        r.route(
            method,
            "/api/v1/accounts/{id}",
            Role::Accounting,
            move |req| ok(q.update_account(req.param("id")?, &req.json::<UpdateAccount>()?)?),
        );
    }
    let q = p.clone();
    r.delete("/api/v1/accounts/{id}", Role::Accounting, move |req| {
        ok(q.delete_account(req.param("id")?)?)
    });
    let q = p.clone();
    r.post(
        "/api/v1/accounts/{id}/enable",
        Role::Accounting,
        move |req| ok(q.enable_account(req.param("id")?)?),
    );
    let q = p.clone();
    r.post(
        "/api/v1/accounts/{id}/disable",
        Role::Accounting,
        move |req| ok(q.disable_account(req.param("id")?)?),
    );
    let q = p.clone();
    r.post(
        "/api/v1/accounts/{id}/numbers",
        Role::Accounting,
        move |req| ok(q.link_number(req.param("id")?, &req.json::<NumberBody>()?.number)?),
    );
    let q = p.clone();
    r.delete(
        "/api/v1/accounts/{id}/numbers/{number}",
        Role::Accounting,
        move |req| ok(q.unlink_number(req.param("id")?, req.param("number")?)?),
    );
    let q = p.clone();
    r.post(
        "/api/v1/accounts/{id}/caller-id-rules",
        Role::Accounting,
        move |req| ok(q.add_caller_id_rule(req.param("id")?, &req.json::<CallerIdRule>()?)?),
    );
    let q = p.clone();
    r.delete(
        "/api/v1/accounts/{id}/caller-id-rules/{rule}",
        Role::Accounting,
        move |req| {
            let rule = req.param("rule")?;
            let rule = rule.parse().map_err(|_| {
                ApiError::bad_request(format!("caller-ID rule id {rule:?} is not a number"))
            })?;
            ok(q.remove_caller_id_rule(req.param("id")?, rule)?)
        },
    );
    let q = p.clone();
    r.get("/api/v1/accounts/{id}/cdrs", Role::Viewer, move |req| {
        let id = q.get_account(req.param("id")?)?.id;
        cdrs(&q, Some(id), req)
    });

    // Numbers.
    let q = p.clone();
    r.get("/api/v1/numbers", Role::Viewer, move |req| {
        ok(q.list_numbers(req.query("free").is_some_and(|v| v == "true" || v == "1"))?)
    });
    let q = p.clone();
    r.post("/api/v1/numbers", Role::Accounting, move |req| {
        created(q.create_number(&req.json::<NumberBody>()?.number)?)
    });
    let q = p.clone();
    r.get("/api/v1/numbers/{number}", Role::Viewer, move |req| {
        ok(q.get_number(req.param("number")?)?)
    });
    let q = p.clone();
    r.delete("/api/v1/numbers/{number}", Role::Accounting, move |req| {
        ok(q.delete_number(req.param("number")?)?)
    });

    // Log-ons.
    let q = p.clone();
    r.get("/api/v1/log-ons", Role::Viewer, move |_| {
        ok(q.list_log_ons()?)
    });
    let q = p.clone();
    r.post("/api/v1/log-ons", Role::Admin, move |req| {
        created(q.create_log_on(&req.json::<NewLogOn>()?)?)
    });
    let q = p.clone();
    r.get("/api/v1/log-ons/{user}", Role::Viewer, move |req| {
        ok(q.get_log_on(req.param("user")?)?)
    });
    for method in [Method::Put, Method::Patch] {
        let q = p.clone();
        r.route(method, "/api/v1/log-ons/{user}", Role::Admin, move |req| {
            ok(q.update_log_on(req.param("user")?, &req.json::<UpdateLogOn>()?)?)
        });
    }
    let q = p.clone();
    r.delete("/api/v1/log-ons/{user}", Role::Admin, move |req| {
        ok(q.delete_log_on(req.param("user")?)?)
    });

    // Keepalive profiles.
    let q = p.clone();
    r.get("/api/v1/profiles", Role::Viewer, move |_| {
        ok(q.list_profiles()?)
    });
    let q = p.clone();
    r.post("/api/v1/profiles", Role::Admin, move |req| {
        created(q.create_profile(&req.json::<Profile>()?)?)
    });
    let q = p.clone();
    r.get("/api/v1/profiles/{name}", Role::Viewer, move |req| {
        ok(q.get_profile(req.param("name")?)?)
    });
    let q = p.clone();
    r.put("/api/v1/profiles/{name}", Role::Admin, move |req| {
        ok(q.update_profile(req.param("name")?, &req.json::<Profile>()?)?)
    });
    let q = p.clone();
    r.delete("/api/v1/profiles/{name}", Role::Admin, move |req| {
        ok(q.delete_profile(req.param("name")?)?)
    });

    // Licences.
    let q = p.clone();
    r.get("/api/v1/licences", Role::Viewer, move |_| {
        ok(q.licence_status()?)
    });
    let q = p.clone();
    r.put("/api/v1/licences", Role::Admin, move |req| {
        ok(q.set_licence_total(req.json::<TotalBody>()?.total)?)
    });
    let q = p.clone();
    r.post("/api/v1/licences/reset", Role::Admin, move |req| {
        let freed = q.reset_licences(req.role.as_str())?;
        ok(json!({ "freed": freed.len(), "users": freed, "status": q.licence_status()? }))
    });

    // Registrations.
    let q = p.clone();
    r.get("/api/v1/registrations", Role::Viewer, move |req| {
        ok(registrations(&q, req.query("user")))
    });
    let q = p.clone();
    r.delete("/api/v1/registrations/{user}", Role::Admin, move |req| {
        let user = req.param("user")?;
        q.get_log_on(user)?;
        let dropped = q.evict(user);
        ok(json!({ "user": user, "dropped": dropped }))
    });

    // Call records.
    let q = p.clone();
    r.get("/api/v1/cdrs", Role::Viewer, move |req| cdrs(&q, None, req));
}

/// Every live binding with who, where from, how, and for how long.
fn registrations(p: &Provisioning, user_filter: Option<&str>) -> Value {
    let now = unix_ms();
    let mut out = Vec::new();
    p.location.for_each(|user, record| {
        if user_filter.is_some_and(|u| u != user) {
            return;
        }
        let log_on = p.directory.get(user);
        let number = log_on.as_ref().map(|l| l.number.to_string());
        let licence = log_on.as_ref().is_some_and(|l| p.licences.holds(l.id));
        for b in record.bindings.iter().filter(|b| b.expires_at_ms > now) {
            out.push(json!({
                "user": user,
                "number": number,
                "contact": &*b.contact,
                "source": b.source.to_string(),
                "transport": b.transport.as_str(),
                "user_agent": &*b.user_agent,
                "expires_in": (b.expires_at_ms - now).div_ceil(1000),
                "expires_at": rfc3339(b.expires_at_ms),
                "licence": licence,
                "instance": b.instance.as_deref(),
                "reg_id": b.reg_id,
                "path": b.path.iter().map(|p| &**p).collect::<Vec<_>>(),
                "q": f64::from(b.q) / 1000.0,
                "call_id": &*b.call_id,
                "cseq": b.cseq,
            }));
        }
    });
    out.sort_by(|a, b| {
        let k = |v: &Value| {
            (
                v["user"].as_str().map(str::to_string),
                v["contact"].as_str().map(str::to_string),
            )
        };
        k(a).cmp(&k(b))
    });
    Value::Array(out)
}

/// Call records, newest first; of one account, the calls it placed and those it received.
/// Filters: `limit` (default 100, at most 10 000), `caller`,
/// `callee` (numbers, exact), `since` and `until` (ms since the UNIX epoch, on the start time),
/// `status` (final status towards the caller).
fn cdrs(p: &Provisioning, account: Option<u32>, req: &ApiRequest) -> Result<Json, ApiError> {
    let limit = match req.query("limit") {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=10_000).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit {l:?} is not a number from 1 to 10000"))
            })?,
    };
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        req.query(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("{name} {v:?} is not a whole number"))
                })
            })
            .transpose()
    };
    let (since, until, status) = (number("since")?, number("until")?, number("status")?);
    let (caller, callee) = (req.query("caller"), req.query("callee"));
    let conn = p.db().conn();
    let mut stmt = conn
        .prepare(
            "SELECT id, account_id, caller, callee, direction, started_ms, answered_ms, ended_ms,
                    cause, status, call_id, caller_user, callee_user, callee_account, dialled,
                    emergency, q850, codec_caller, codec_callee, packets_caller, packets_callee,
                    trunk
             FROM cdrs
             WHERE (?1 IS NULL OR account_id = ?1 OR callee_account = ?1)
               AND (?3 IS NULL OR caller = ?3)
               AND (?4 IS NULL OR callee = ?4) AND (?5 IS NULL OR started_ms >= ?5)
               AND (?6 IS NULL OR started_ms < ?6) AND (?7 IS NULL OR status = ?7)
             ORDER BY started_ms DESC, id DESC LIMIT ?2",
        )
        .map_err(|e| ApiError::internal(format!("store: {e}")))?;
    let rows = stmt
        .query_map(
            params![account, limit, caller, callee, since, until, status],
            |r| {
                let started: i64 = r.get(5)?;
                let answered: Option<i64> = r.get(6)?;
                let ended: i64 = r.get(7)?;
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "account_id": r.get::<_, Option<u32>>(1)?,
                    "caller": r.get::<_, String>(2)?,
                    "callee": r.get::<_, String>(3)?,
                    "direction": r.get::<_, String>(4)?,
                    "started_at": rfc3339(started as u64),
                    "answered_at": answered.map(|a| rfc3339(a as u64)),
                    "ended_at": rfc3339(ended as u64),
                    "duration_s": answered.map_or(0, |a| (ended - a).max(0) / 1000),
                    "cause": r.get::<_, String>(8)?,
                    "status": r.get::<_, Option<u16>>(9)?,
                    "call_id": r.get::<_, Option<String>>(10)?,
                    "caller_user": r.get::<_, Option<String>>(11)?,
                    "callee_user": r.get::<_, Option<String>>(12)?,
                    "callee_account_id": r.get::<_, Option<u32>>(13)?,
                    "dialled": r.get::<_, Option<String>>(14)?,
                    "emergency": r.get::<_, bool>(15)?,
                    "q850_cause": r.get::<_, Option<u8>>(16)?,
                    "codec_caller": r.get::<_, Option<String>>(17)?,
                    "codec_callee": r.get::<_, Option<String>>(18)?,
                    "packets_from_caller": r.get::<_, Option<i64>>(19)?,
                    "packets_from_callee": r.get::<_, Option<i64>>(20)?,
                    "trunk": r.get::<_, Option<String>>(21)?,
                }))
            },
        )
        .map_err(|e| ApiError::internal(format!("store: {e}")))?;
    let out: Vec<Value> = rows
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::internal(format!("store: {e}")))?;
    ok(out)
}

/// `GET /api/v1/calls`: calls in progress, oldest first.
pub fn call_routes(r: &mut Router, active: Arc<crate::store::calls::ActiveCalls>) {
    r.get("/api/v1/calls", Role::Viewer, move |_| {
        let now = unix_ms();
        let calls: Vec<Value> = active
            .list()
            .into_iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "caller": c.caller_number,
                    "caller_user": c.caller_user,
                    // A call from a line or trunk has no account behind its caller.
                    "account_id": (c.caller_account != mgw_core::admission::NO_ACCOUNT)
                        .then_some(c.caller_account),
                    "dialled": c.dialled,
                    "callee": c.callee,
                    "callee_account_id": c.callee_account,
                    "emergency": c.emergency,
                    "trunk": c.trunk,
                    "state": if c.answered_ms.is_some() { "answered" } else { "ringing" },
                    "started_at": rfc3339(c.started_ms),
                    "answered_at": c.answered_ms.map(rfc3339),
                    "duration_s": c.answered_ms.map_or(0, |a| now.saturating_sub(a) / 1000),
                })
            })
            .collect();
        ok(calls)
    });
}
