//! The OpenAPI 3.0.3 description of the admin API, served at `GET /api/v1/openapi.json`
//! (role viewer).
//!
//! Hand-written with `json!` rather than derived, so it needs no dependency; the unit test
//! below compares it with the real route table (methods, patterns and roles), so a route added
//! or changed without its description fails the suite. docs/api.md is the prose companion.

use serde_json::{json, Map, Value};

use super::{Json, Method, Role, Router};

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

/// Registers `GET /api/v1/openapi.json`. The document is built once, here.
pub fn register(router: &mut Router) {
    let doc = document();
    router.get(PATH, Role::Viewer, move |_| Ok(Json::ok(doc.clone())));
}

/// One documented operation.
struct Op {
    method: Method,
    path: &'static str,
    /// `None`: outside `/api/`, answered by the server itself (`/health`, `/metrics`).
    role: Option<Role>,
    summary: &'static str,
    description: &'static str,
    query: Vec<Value>,
    /// Component schema of the JSON request body.
    body: Option<&'static str>,
    status: u16,
    /// Schema of the success answer.
    answer: Value,
    /// Error statuses besides the ones every API call can get (401, 403 for roles above
    /// viewer, 500).
    errors: &'static [u16],
}

fn op(method: Method, path: &'static str, role: Role, summary: &'static str) -> Op {
    Op {
        method,
        path,
        role: Some(role),
        summary,
        description: "",
        query: Vec::new(),
        body: None,
        status: 200,
        answer: json!({ "type": "object" }),
        errors: &[],
    }
}

impl Op {
    fn describe(mut self, description: &'static str) -> Op {
        self.description = description;
        self
    }

    fn query(mut self, name: &str, description: &str, schema: Value) -> Op {
        self.query.push(json!({
            "name": name,
            "in": "query",
            "required": false,
            "description": description,
            "schema": schema,
        }));
        self
    }

    fn body(mut self, schema: &'static str) -> Op {
        self.body = Some(schema);
        self
    }

    fn ok(mut self, schema: Value) -> Op {
        self.answer = schema;
        self
    }

    fn created(mut self, schema: Value) -> Op {
        self.status = 201;
        self.answer = schema;
        self
    }

    fn errors(mut self, errors: &'static [u16]) -> Op {
        self.errors = errors;
        self
    }
}

fn r(schema: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{schema}") })
}

fn list(schema: &str) -> Value {
    json!({ "type": "array", "items": r(schema) })
}

/// Every operation, in the order of docs/api.md.
fn operations() -> Vec<Op> {
    use Method::{Delete, Get, Patch, Post, Put};
    use Role::{Accounting, Admin, Viewer};
    let update_account = "Changes the fields given; absent fields stay. PUT and PATCH behave \
        the same. `channels: null` means unlimited. `main_number` may only repeat the current \
        main number: a main number is bound to its account until the account is deleted (409).";
    let update_log_on = "Changes the fields given; absent fields stay. PUT and PATCH behave \
        the same. A new password is hashed for sip.domain and marks the log-on as `api`, so \
        the CSV import no longer manages it. `profile: null` returns to the `default` profile. \
        Moving a log-on to a number of another account ends its registrations.";
    let mut ops = vec![
        // Accounts.
        op(Get, "/api/v1/accounts", Viewer, "List accounts").ok(list("Account")),
        op(Post, "/api/v1/accounts", Accounting, "Create an account")
            .describe(
                "The account starts `pending`. The main number must be free: unknown numbers \
                 are created, a number linked to another account is refused (409).",
            )
            .body("NewAccount")
            .created(r("Account"))
            .errors(&[400, 409]),
        op(Get, "/api/v1/accounts/{id}", Viewer, "Show an account")
            .ok(r("Account"))
            .errors(&[404]),
        op(
            Put,
            "/api/v1/accounts/{id}",
            Accounting,
            "Change an account",
        )
        .describe(update_account)
        .body("UpdateAccount")
        .ok(r("Account"))
        .errors(&[400, 404, 409]),
        op(
            Patch,
            "/api/v1/accounts/{id}",
            Accounting,
            "Change an account",
        )
        .describe(update_account)
        .body("UpdateAccount")
        .ok(r("Account"))
        .errors(&[400, 404, 409]),
        op(
            Delete,
            "/api/v1/accounts/{id}",
            Accounting,
            "Delete an account",
        )
        .describe(
            "Only a disabled account without extra numbers and without caller-ID rules can \
                 be deleted; otherwise 409 with every reason in `blockers`. Deleting erases its \
                 log-ons, allowed networks and call records and frees its main number. Answers \
                 the account as it was.",
        )
        .ok(r("Account"))
        .errors(&[404, 409]),
        op(
            Post,
            "/api/v1/accounts/{id}/enable",
            Accounting,
            "Enable an account",
        )
        .describe("Pending or disabled -> enabled: calls may be placed and received.")
        .ok(r("Account"))
        .errors(&[404]),
        op(
            Post,
            "/api/v1/accounts/{id}/disable",
            Accounting,
            "Disable an account",
        )
        .describe(
            "Registration is suspended: every binding of the account's log-ons is dropped \
                 (their licences freed) and REGISTER is refused with 403 until it is enabled.",
        )
        .ok(r("Account"))
        .errors(&[404]),
        op(
            Post,
            "/api/v1/accounts/{id}/numbers",
            Accounting,
            "Link an extra number",
        )
        .describe("The number is created if unknown; it must not be linked to any account.")
        .body("NumberBody")
        .ok(r("Account"))
        .errors(&[400, 404, 409]),
        op(
            Delete,
            "/api/v1/accounts/{id}/numbers/{number}",
            Accounting,
            "Unlink an extra number",
        )
        .describe(
            "The number stays known, free. Refused (409) for the main number, for a number \
             log-ons are attached to, and for a number a caller-ID rule presents.",
        )
        .ok(r("Account"))
        .errors(&[404, 409]),
        op(
            Post,
            "/api/v1/accounts/{id}/caller-id-rules",
            Accounting,
            "Add a caller-ID rule",
        )
        .describe(
            "Calls to numbers starting with `prefix` present `present`, which must be one of \
             the account's numbers. The longest matching prefix wins; without a match the main \
             number is presented.",
        )
        .body("NewCallerIdRule")
        .ok(r("Account"))
        .errors(&[400, 404]),
        op(
            Delete,
            "/api/v1/accounts/{id}/caller-id-rules/{rule}",
            Accounting,
            "Remove a caller-ID rule",
        )
        .ok(r("Account"))
        .errors(&[400, 404]),
        op(
            Get,
            "/api/v1/accounts/{id}/cdrs",
            Viewer,
            "Call records of an account",
        )
        .describe("Newest first.")
        .query(
            "limit",
            "How many records, 1 to 10000.",
            json!({ "type": "integer", "minimum": 1, "maximum": 10000, "default": 100 }),
        )
        .ok(list("Cdr"))
        .errors(&[400, 404]),
        // Numbers.
        op(Get, "/api/v1/numbers", Viewer, "List numbers")
            .query(
                "free",
                "`true` or `1`: only numbers linked to no account.",
                json!({ "type": "string", "enum": ["true", "1", "false", "0"] }),
            )
            .ok(list("Number")),
        op(Post, "/api/v1/numbers", Accounting, "Add a free number")
            .body("NumberBody")
            .created(r("Number"))
            .errors(&[400, 409]),
        op(Get, "/api/v1/numbers/{number}", Viewer, "Show a number")
            .ok(r("Number"))
            .errors(&[404]),
        op(
            Delete,
            "/api/v1/numbers/{number}",
            Accounting,
            "Remove a free number",
        )
        .describe("A number linked to an account is refused (409).")
        .ok(r("Number"))
        .errors(&[404, 409]),
        // Log-ons.
        op(Get, "/api/v1/log-ons", Viewer, "List log-ons").ok(list("LogOn")),
        op(Post, "/api/v1/log-ons", Admin, "Create a log-on")
            .describe(
                "The number must be linked to an account (as main or extra number). Only the \
                 HA1 digests of the password (MD5 and SHA-256, realm sip.domain) are stored.",
            )
            .body("NewLogOn")
            .created(r("LogOn"))
            .errors(&[400, 409]),
        op(Get, "/api/v1/log-ons/{user}", Viewer, "Show a log-on")
            .ok(r("LogOn"))
            .errors(&[404]),
        op(Put, "/api/v1/log-ons/{user}", Admin, "Change a log-on")
            .describe(update_log_on)
            .body("UpdateLogOn")
            .ok(r("LogOn"))
            .errors(&[400, 404]),
        op(Patch, "/api/v1/log-ons/{user}", Admin, "Change a log-on")
            .describe(update_log_on)
            .body("UpdateLogOn")
            .ok(r("LogOn"))
            .errors(&[400, 404]),
        op(Delete, "/api/v1/log-ons/{user}", Admin, "Delete a log-on")
            .describe(
                "Its registrations end and its licence is freed at once. Answers the log-on \
                 as it was.",
            )
            .ok(r("LogOn"))
            .errors(&[404]),
        // Keepalive profiles.
        op(Get, "/api/v1/profiles", Viewer, "List keepalive profiles")
            .describe("The first entry, `default`, is the [registrar] configuration.")
            .ok(list("Profile")),
        op(
            Post,
            "/api/v1/profiles",
            Admin,
            "Create a keepalive profile",
        )
        .body("ProfileBody")
        .created(r("Profile"))
        .errors(&[400, 409]),
        op(
            Get,
            "/api/v1/profiles/{name}",
            Viewer,
            "Show a keepalive profile",
        )
        .ok(r("Profile"))
        .errors(&[404]),
        op(
            Put,
            "/api/v1/profiles/{name}",
            Admin,
            "Change a keepalive profile",
        )
        .describe(
            "The body's `name` is required but ignored: the path names the profile. \
                 Registrations already granted keep their expiry until the phone's next \
                 REGISTER. `default` cannot be changed here (409).",
        )
        .body("ProfileBody")
        .ok(r("Profile"))
        .errors(&[400, 404, 409]),
        op(
            Delete,
            "/api/v1/profiles/{name}",
            Admin,
            "Delete a keepalive profile",
        )
        .describe("Refused (409) for `default` and for a profile assigned to log-ons.")
        .ok(r("Profile"))
        .errors(&[404, 409]),
        // Licences.
        op(Get, "/api/v1/licences", Viewer, "Licence status")
            .describe("Who holds a licence since when, and how many log-ons are registered.")
            .ok(r("LicenceStatus")),
        op(Put, "/api/v1/licences", Admin, "Set the number of licences")
            .describe(
                "Takes effect at once and is kept in the store across restarts, until \
                 [licences] total in the config changes. Lowering it takes no licence away: \
                 holders above the new total keep theirs until they release it.",
            )
            .body("LicenceTotal")
            .ok(r("LicenceStatus"))
            .errors(&[400]),
        op(Post, "/api/v1/licences/reset", Admin, "Reset licences")
            .describe(
                "Frees every licence at once; each log-on claims one again with its next call.",
            )
            .ok(r("LicenceReset")),
        // Registrations.
        op(
            Get,
            "/api/v1/registrations",
            Viewer,
            "List live registrations",
        )
        .describe("One entry per live binding, sorted by user and contact.")
        .query(
            "user",
            "Only the bindings of this log-on.",
            json!({ "type": "string" }),
        )
        .ok(list("Registration")),
        op(
            Delete,
            "/api/v1/registrations/{user}",
            Admin,
            "Drop a log-on's registrations",
        )
        .describe("Every binding of the log-on is removed and its licence freed.")
        .ok(r("Eviction"))
        .errors(&[404]),
        // Call records.
        op(Get, "/api/v1/cdrs", Viewer, "Call records")
            .describe("Newest first, every account.")
            .query(
                "limit",
                "How many records, 1 to 10000.",
                json!({ "type": "integer", "minimum": 1, "maximum": 10000, "default": 100 }),
            )
            .ok(list("Cdr"))
            .errors(&[400]),
        op(Get, "/api/v1/calls", Viewer, "Calls in progress")
            .describe("Oldest first, with their state (ringing or answered).")
            .ok(list("Call")),
        // Line drivers.
        op(Get, "/api/v1/drivers", Viewer, "Line drivers")
            .describe("ISDN lines and DECT base stations: kind, state, channels, numbers.")
            .ok(list("Driver")),
        op(Get, "/api/v1/drivers/{name}", Viewer, "One line driver")
            .ok(r("Driver"))
            .errors(&[404]),
        op(
            Post,
            "/api/v1/drivers/{name}/simulate",
            Admin,
            "Act on simulated hardware",
        )
        .describe(
            "What a far-end party or a technician would do: dial, answer, hang up, cut or \
             restore layer 1 or the signalling link, take a unit down, move a handset out of \
             range. 409 names what the driver does not model.",
        )
        .body("SimCommand")
        .ok(r("Done"))
        .errors(&[400, 409]),
        // Upstream trunks.
        op(Get, "/api/v1/trunks", Viewer, "Upstream SIP trunks")
            .describe("Registration state of each trunk and, when not registered, why.")
            .ok(list("Trunk")),
        op(Get, "/api/v1/trunks/{name}", Viewer, "One trunk")
            .ok(r("Trunk"))
            .errors(&[404]),
        op(Put, "/api/v1/trunks/{name}", Admin, "Add or change a trunk")
            .describe(
                "The keys of a [[trunk]] section as JSON (the name is the path's). Checked \
                 against the other trunks, stored in SQLite (it replaces a config-file trunk of \
                 the same name, also after a restart) and applied at once: a changed trunk \
                 unregisters, then registers with the new settings.",
            )
            .body("TrunkConfig")
            .ok(r("Done"))
            .errors(&[400, 409]),
        op(
            Delete,
            "/api/v1/trunks/{name}",
            Admin,
            "Remove a trunk added by the API",
        )
        .describe("It unregisters first. A trunk of the config file answers 409.")
        .ok(r("Done"))
        .errors(&[404, 409]),
        op(
            Post,
            "/api/v1/trunks/{name}/connect",
            Admin,
            "Register a trunk now",
        )
        .ok(r("Done"))
        .errors(&[409]),
        op(
            Post,
            "/api/v1/trunks/{name}/disconnect",
            Admin,
            "Unregister a trunk",
        )
        .describe("REGISTER with expires=0; the trunk stays unregistered until connected.")
        .ok(r("Done"))
        .errors(&[409]),
        // This document.
        op(Get, PATH, Viewer, "This OpenAPI document"),
    ];
    ops.push(Op {
        role: None,
        description: "200 while mgw is ready (every listener up), 503 while it starts or \
            stops. Needs no token. HEAD is answered too.",
        answer: r("Health"),
        ..op(Get, "/health", Viewer, "Readiness")
    });
    ops.push(Op {
        role: None,
        description: "Prometheus text format (`text/plain; version=0.0.4`). Callers on the \
            loopback interface need no token; others need a token of any role. HEAD is \
            answered too.",
        answer: json!({ "type": "string" }),
        ..op(Get, "/metrics", Viewer, "Metrics")
    });
    ops
}

/// A path parameter's description and schema.
fn path_param(name: &str) -> Value {
    let (description, schema) = match name {
        "id" => ("Account id, or account name.", json!({ "type": "string" })),
        "number" => ("A number, as stored.", json!({ "type": "string" })),
        "user" => ("Log-on user name.", json!({ "type": "string" })),
        "name" => (
            "Keepalive profile, line driver or trunk name.",
            json!({ "type": "string" }),
        ),
        "rule" => ("Caller-ID rule id.", json!({ "type": "integer" })),
        _ => ("", json!({ "type": "string" })),
    };
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": schema,
    })
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(path_param)
        .collect()
}

fn tag(path: &str) -> &'static str {
    let segment = path.split('/').nth(3).unwrap_or("");
    match segment {
        "accounts" => "accounts",
        "numbers" => "numbers",
        "log-ons" => "log-ons",
        "profiles" => "profiles",
        "licences" => "licences",
        "registrations" => "registrations",
        "cdrs" => "call records",
        _ => "server",
    }
}

fn operation(o: &Op) -> Value {
    let mut v = Map::new();
    v.insert("summary".into(), json!(o.summary));
    if !o.description.is_empty() {
        v.insert("description".into(), json!(o.description));
    }
    v.insert("tags".into(), json!([tag(o.path)]));
    v.insert(
        "operationId".into(),
        json!(format!(
            "{}{}",
            o.method.as_str().to_ascii_lowercase(),
            o.path
                .split(['/', '-', '.', '{', '}'])
                .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
                .map(|s| {
                    let mut c = s.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<String>()
        )),
    );
    let mut params = path_params(o.path);
    params.extend(o.query.iter().cloned());
    if !params.is_empty() {
        v.insert("parameters".into(), Value::Array(params));
    }
    if let Some(body) = o.body {
        v.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "application/json": { "schema": r(body) } },
            }),
        );
    }
    let content_type = if o.path == "/metrics" {
        "text/plain"
    } else {
        "application/json"
    };
    let mut responses = Map::new();
    responses.insert(
        o.status.to_string(),
        json!({
            "description": if o.status == 201 { "Created" } else { "OK" },
            "content": { content_type: { "schema": o.answer } },
        }),
    );
    match o.role {
        Some(role) => {
            v.insert("x-mgw-role".into(), json!(role.as_str()));
            v.insert("security".into(), json!([{ "bearer": [] }]));
            let mut errors = o.errors.to_vec();
            errors.push(401);
            if role > Role::Viewer {
                errors.push(403);
            }
            errors.push(500);
            errors.sort_unstable();
            errors.dedup();
            for e in errors {
                responses.insert(
                    e.to_string(),
                    json!({ "$ref": format!("#/components/responses/E{e}") }),
                );
            }
        }
        None if o.path == "/health" => {
            v.insert("x-mgw-role".into(), json!("none"));
            v.insert("security".into(), json!([]));
            responses.insert(
                "503".into(),
                json!({
                    "description": "Starting or stopping",
                    "content": { "application/json": { "schema": r("Health") } },
                }),
            );
        }
        None => {
            v.insert("x-mgw-role".into(), json!("viewer"));
            // Optional: `{}` allows calls without a token (from loopback).
            v.insert("security".into(), json!([{}, { "bearer": [] }]));
            responses.insert(
                "401".into(),
                json!({ "$ref": "#/components/responses/E401" }),
            );
        }
    }
    v.insert("responses".into(), Value::Object(responses));
    Value::Object(v)
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": r("Error") } },
    })
}

fn schemas() -> Value {
    let nullable_string = json!({ "type": "string", "nullable": true });
    let time = json!({ "type": "string", "format": "date-time", "description": "RFC 3339, UTC" });
    json!({
        "Error": {
            "type": "object",
            "description": "Every error answer. `fix` says what to do; `blockers` lists every \
                reason a change is refused (409); some errors add fields such as `path`.",
            "required": ["error"],
            "properties": {
                "error": { "type": "string" },
                "fix": { "type": "string" },
                "blockers": { "type": "array", "items": { "type": "string" } },
            },
            "additionalProperties": true,
            "example": {
                "error": "number 201 is already linked to account 3 (\"Reception\")",
                "fix": "choose a free number (GET /api/v1/numbers?free=true), or unlink it from that account first",
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": { "type": "string", "enum": ["ok", "unavailable"] },
                "error": { "type": "string" },
            },
        },
        "Account": {
            "type": "object",
            "required": ["id", "name", "state", "main_number", "extra_numbers", "channels",
                "channels_busy", "tariff", "allowed_networks", "caller_id_rules", "log_ons",
                "created_at", "updated_at"],
            "properties": {
                "id": { "type": "integer" },
                "name": { "type": "string" },
                "state": { "type": "string", "enum": ["pending", "enabled", "disabled"] },
                "main_number": { "type": "string" },
                "extra_numbers": { "type": "array", "items": { "type": "string" } },
                "channels": {
                    "type": "integer", "nullable": true,
                    "description": "Voice channels (inbound and outbound calls together); null = unlimited",
                },
                "channels_busy": { "type": "integer", "description": "Calls in progress" },
                "tariff": { "type": "string", "enum": ["flat", "metered"] },
                "allowed_networks": {
                    "type": "array", "items": { "type": "string" },
                    "description": "CIDR networks requests must come from; empty = anywhere",
                },
                "caller_id_rules": list("CallerIdRule"),
                "log_ons": { "type": "array", "items": { "type": "string" } },
                "created_at": time,
                "updated_at": time,
            },
        },
        "NewAccount": {
            "type": "object",
            "required": ["name", "main_number"],
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "maxLength": 100 },
                "main_number": { "type": "string", "pattern": "^[0-9+*#]{1,32}$" },
                "channels": { "type": "integer", "nullable": true, "minimum": 0 },
                "tariff": { "type": "string", "enum": ["flat", "metered"], "default": "metered" },
                "allowed_networks": { "type": "array", "items": { "type": "string" } },
            },
            "example": { "name": "Reception", "main_number": "201", "channels": 2 },
        },
        "UpdateAccount": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "name": { "type": "string", "maxLength": 100 },
                "channels": { "type": "integer", "nullable": true, "minimum": 0 },
                "tariff": { "type": "string", "enum": ["flat", "metered"] },
                "allowed_networks": { "type": "array", "items": { "type": "string" } },
                "main_number": {
                    "type": "string",
                    "description": "Accepted only when equal to the current main number",
                },
            },
            "example": { "channels": 4, "allowed_networks": ["192.0.2.0/24"] },
        },
        "CallerIdRule": {
            "type": "object",
            "required": ["id", "prefix", "present"],
            "properties": {
                "id": { "type": "integer" },
                "prefix": { "type": "string", "description": "\"\" matches every callee" },
                "present": { "type": "string" },
            },
        },
        "NewCallerIdRule": {
            "type": "object",
            "required": ["present"],
            "additionalProperties": false,
            "properties": {
                "prefix": { "type": "string", "default": "" },
                "present": { "type": "string", "description": "One of the account's numbers" },
            },
            "example": { "prefix": "0049", "present": "202" },
        },
        "NumberBody": {
            "type": "object",
            "required": ["number"],
            "additionalProperties": false,
            "properties": {
                "number": { "type": "string", "pattern": "^[0-9+*#]{1,32}$" },
            },
            "example": { "number": "202" },
        },
        "Number": {
            "type": "object",
            "required": ["number", "account_id", "account", "role", "log_ons"],
            "properties": {
                "number": { "type": "string" },
                "account_id": { "type": "integer", "nullable": true },
                "account": nullable_string,
                "role": { "type": "string", "enum": ["main", "extra"], "nullable": true },
                "log_ons": { "type": "array", "items": { "type": "string" } },
            },
        },
        "LogOn": {
            "type": "object",
            "required": ["id", "user", "number", "account_id", "account", "profile", "source",
                "bindings", "licence", "created_at"],
            "properties": {
                "id": { "type": "integer" },
                "user": { "type": "string" },
                "number": { "type": "string" },
                "account_id": { "type": "integer" },
                "account": { "type": "string" },
                "profile": {
                    "type": "string", "nullable": true,
                    "description": "null = the `default` profile ([registrar] config)",
                },
                "source": { "type": "string", "enum": ["api", "csv"] },
                "bindings": { "type": "integer", "description": "Live registrations" },
                "licence": { "type": "boolean", "description": "Holds a licence now" },
                "created_at": time,
            },
        },
        "NewLogOn": {
            "type": "object",
            "required": ["user", "password", "number"],
            "additionalProperties": false,
            "properties": {
                "user": { "type": "string", "maxLength": 64 },
                "password": { "type": "string", "minLength": 1, "maxLength": 128 },
                "number": { "type": "string" },
                "profile": { "type": "string", "nullable": true },
            },
            "example": { "user": "alice", "password": "s3cret", "number": "201" },
        },
        "UpdateLogOn": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "password": { "type": "string", "minLength": 1, "maxLength": 128 },
                "number": { "type": "string" },
                "profile": { "type": "string", "nullable": true },
            },
            "example": { "profile": "softphone" },
        },
        "Profile": {
            "type": "object",
            "required": ["name", "min_expires", "max_expires", "default_expires", "log_ons"],
            "properties": {
                "name": { "type": "string" },
                "min_expires": { "type": "integer" },
                "max_expires": { "type": "integer" },
                "default_expires": { "type": "integer" },
                "log_ons": { "type": "integer", "description": "Log-ons assigned this profile" },
            },
        },
        "ProfileBody": {
            "type": "object",
            "required": ["name", "min_expires", "max_expires", "default_expires"],
            "additionalProperties": false,
            "description": "Seconds; 1 <= min_expires <= default_expires <= max_expires <= 86400.",
            "properties": {
                "name": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" },
                "min_expires": { "type": "integer", "minimum": 1 },
                "max_expires": { "type": "integer", "maximum": 86400 },
                "default_expires": { "type": "integer" },
            },
            "example": {
                "name": "softphone", "min_expires": 60, "max_expires": 300, "default_expires": 120,
            },
        },
        "Holder": {
            "type": "object",
            "required": ["user", "number", "since", "since_unix"],
            "properties": {
                "user": { "type": "string" },
                "number": nullable_string,
                "since": time,
                "since_unix": { "type": "integer", "description": "Seconds since 1970" },
            },
        },
        "LicenceStatus": {
            "type": "object",
            "required": ["total", "in_use", "free", "holders", "logged_on", "last_reset"],
            "properties": {
                "total": { "type": "integer" },
                "in_use": { "type": "integer" },
                "free": { "type": "integer" },
                "holders": list("Holder"),
                "logged_on": {
                    "type": "integer",
                    "description": "Log-ons with at least one registration",
                },
                "last_reset": { "type": "string", "format": "date-time", "nullable": true },
            },
        },
        "LicenceTotal": {
            "type": "object",
            "required": ["total"],
            "additionalProperties": false,
            "properties": { "total": { "type": "integer", "minimum": 0, "maximum": 65536 } },
            "example": { "total": 20 },
        },
        "LicenceReset": {
            "type": "object",
            "required": ["freed", "users", "status"],
            "properties": {
                "freed": { "type": "integer" },
                "users": { "type": "array", "items": { "type": "string" } },
                "status": r("LicenceStatus"),
            },
        },
        "Registration": {
            "type": "object",
            "required": ["user", "number", "contact", "source", "transport", "user_agent",
                "expires_in"],
            "properties": {
                "user": { "type": "string" },
                "number": nullable_string,
                "contact": { "type": "string" },
                "source": { "type": "string", "description": "IP:port the REGISTER came from" },
                "transport": { "type": "string", "enum": ["udp", "tcp"] },
                "user_agent": { "type": "string" },
                "expires_in": { "type": "integer", "description": "Seconds left" },
                "expires_at": time,
                "licence": { "type": "boolean" },
                "instance": nullable_string,
                "reg_id": { "type": "integer", "nullable": true },
                "path": { "type": "array", "items": { "type": "string" } },
                "q": { "type": "number" },
                "call_id": { "type": "string" },
                "cseq": { "type": "integer" },
            },
        },
        "Eviction": {
            "type": "object",
            "required": ["user", "dropped"],
            "properties": {
                "user": { "type": "string" },
                "dropped": { "type": "integer", "description": "Bindings removed" },
            },
        },
        "Cdr": {
            "type": "object",
            "required": ["id", "account_id", "caller", "callee", "direction", "started_at",
                "answered_at", "ended_at", "duration_s", "cause", "status"],
            "properties": {
                "id": { "type": "integer" },
                "account_id": { "type": "integer", "nullable": true },
                "caller": { "type": "string" },
                "callee": { "type": "string" },
                "direction": { "type": "string" },
                "started_at": time,
                "answered_at": { "type": "string", "format": "date-time", "nullable": true },
                "ended_at": time,
                "duration_s": { "type": "integer", "description": "Answered to ended; 0 if unanswered" },
                "cause": { "type": "string" },
                "status": { "type": "integer", "nullable": true },
                "call_id": { "type": "string", "nullable": true },
                "caller_user": { "type": "string", "nullable": true },
                "callee_user": { "type": "string", "nullable": true, "description": "The log-on whose phone answered" },
                "callee_account_id": { "type": "integer", "nullable": true },
                "dialled": { "type": "string", "nullable": true, "description": "As dialled, before normalisation" },
                "emergency": { "type": "boolean" },
                "trunk": { "type": "string", "nullable": true, "description": "The line or trunk the call came in from or left by" },
                "q850_cause": { "type": "integer", "nullable": true },
                "codec_caller": { "type": "string", "nullable": true },
                "codec_callee": { "type": "string", "nullable": true },
                "packets_from_caller": { "type": "integer", "nullable": true },
                "packets_from_callee": { "type": "integer", "nullable": true },
            },
        },
        "Driver": {
            "type": "object",
            "required": ["name", "kind", "up", "channels_busy", "channels_total", "detail",
                "sip", "numbers", "signalling"],
            "properties": {
                "name": { "type": "string" },
                "kind": { "type": "string", "enum": ["isdn-e1", "isdn-t1", "isdn-bri", "dect"] },
                "up": { "type": "boolean" },
                "channels_busy": { "type": "integer" },
                "channels_total": { "type": "integer" },
                "detail": { "type": "string" },
                "sip": { "type": "string", "description": "The driver's SIP address (a peer of the switch)" },
                "numbers": { "type": "array", "items": { "type": "string" } },
                "signalling": { "type": "array", "items": { "type": "string" },
                    "description": "The last D-channel frames and their Q.931 messages (ISDN), oldest first" },
            },
        },
        "SimCommand": {
            "type": "object",
            "required": ["action"],
            "properties": {
                "action": { "type": "string",
                    "enum": ["dial", "answer", "hangup", "layer1", "signalling", "unit", "in_range"] },
                "from": { "type": "string" },
                "to": { "type": "string" },
                "party": { "type": "string" },
                "up": { "type": "boolean" },
                "name": { "type": "string" },
                "handset": { "type": "string" },
                "in_range": { "type": "boolean" },
            },
        },
        "Done": {
            "type": "object",
            "required": ["ok"],
            "properties": { "ok": { "type": "boolean" } },
        },
        "TrunkConfig": {
            "type": "object",
            "required": ["server"],
            "properties": {
                "server": { "type": "string", "description": "host[:port], [IPV6][:port]; a name without a port is looked up by SRV" },
                "transport": { "type": "string", "enum": ["udp", "tcp"], "default": "udp" },
                "register": { "type": "boolean", "default": false },
                "address": { "type": "string", "description": "sip:USER@DOMAIN, From of REGISTER and INVITE" },
                "user": { "type": "string" },
                "password": { "type": "string" },
                "expires": { "type": "integer", "default": 1200, "minimum": 60 },
                "prefix": { "type": "string", "description": "dial prefix, stripped" },
                "max_calls": { "type": "integer" },
                "outbound_proxy": { "type": "string" },
            },
        },
        "Trunk": {
            "type": "object",
            "required": ["name", "state", "reason", "server", "transport", "register",
                "addresses", "expires_in", "prefix", "max_calls", "calls"],
            "properties": {
                "name": { "type": "string" },
                "state": { "type": "string",
                    "enum": ["unregistered", "registering", "registered", "failed", "disabled"] },
                "reason": { "type": "string", "nullable": true,
                    "description": "Why it is not registered, e.g. \"403 Forbidden from 192.0.2.1:5060\"" },
                "server": { "type": "string" },
                "transport": { "type": "string", "enum": ["udp", "tcp"] },
                "register": { "type": "boolean" },
                "addresses": { "type": "array", "items": { "type": "string" } },
                "expires_in": { "type": "integer", "nullable": true },
                "prefix": { "type": "string", "nullable": true },
                "max_calls": { "type": "integer", "nullable": true },
                "calls": { "type": "integer" },
            },
        },
        "Call": {
            "type": "object",
            "required": ["id", "caller", "caller_user", "account_id", "dialled", "callee",
                "emergency", "state", "started_at", "answered_at", "duration_s"],
            "properties": {
                "id": { "type": "string" },
                "caller": { "type": "string" },
                "caller_user": { "type": "string" },
                "account_id": { "type": "integer", "nullable": true },
                "dialled": { "type": "string" },
                "callee": { "type": "string" },
                "callee_account_id": { "type": "integer", "nullable": true },
                "emergency": { "type": "boolean" },
                "trunk": { "type": "string", "nullable": true, "description": "The line or trunk the call came in from or left by" },
                "state": { "type": "string", "enum": ["ringing", "answered"] },
                "started_at": time,
                "answered_at": { "type": "string", "format": "date-time", "nullable": true },
                "duration_s": { "type": "integer" },
            },
        },
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for o in operations() {
        let item = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        if let Value::Object(item) = item {
            item.insert(o.method.as_str().to_ascii_lowercase(), operation(&o));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "mgw admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accounts, numbers, log-ons, keepalive profiles, licences, \
                registrations and call records of the mgw SIP gateway. Every /api/v1 call \
                needs `Authorization: Bearer TOKEN`; the token's role ([admin] token = admin, \
                accounting_token = accounting, viewer_token = viewer; viewer < accounting < \
                admin) must be at least the operation's `x-mgw-role`. See docs/api.md.",
        },
        "servers": [{ "url": "/" }],
        "tags": [
            { "name": "accounts" }, { "name": "numbers" }, { "name": "log-ons" },
            { "name": "profiles" }, { "name": "licences" }, { "name": "registrations" },
            { "name": "call records" }, { "name": "server" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from [admin] token (admin), accounting_token \
                        (accounting) or viewer_token (viewer).",
                },
            },
            "responses": {
                "E400": error_response("Malformed request: body, parameter or a rule of the data"),
                "E401": error_response("Missing or unknown bearer token"),
                "E403": error_response("The token's role is below the operation's x-mgw-role"),
                "E404": error_response("No such account, number, log-on, profile or rule"),
                "E409": error_response("Conflicts with the current state; `blockers` lists every reason"),
                "E500": error_response("The store failed; see the mgw log"),
            },
            "schemas": schemas(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioning::Provisioning;
    use crate::store::db::Db;
    use mgw_core::directory::Directory;
    use mgw_core::licence::LicencePool;
    use mgw_core::registrar::{LocationTable, RegistrarConfig};
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn router() -> (Router, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mgw-openapi-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = Arc::new(Provisioning::new(
            Arc::new(Db::open(&dir).unwrap()),
            "mgw.test",
            Arc::new(Directory::new()),
            Arc::new(LocationTable::new()),
            Arc::new(LicencePool::new(2)),
            None,
            RegistrarConfig::default().bounds(),
        ));
        let mut router = Router::new();
        crate::provisioning::api::routes(&mut router, &p);
        crate::provisioning::api::call_routes(
            &mut router,
            Arc::new(crate::store::calls::ActiveCalls::default()),
        );
        crate::lines::routes(&mut router, crate::lines::LinesHandle::empty());
        crate::trunks::routes(
            &mut router,
            crate::trunks::TrunksHandle::empty(),
            Some(crate::trunks::TrunkStore {
                db: Arc::new(Db::open(&dir).unwrap()),
                base: crate::config::Config::default(),
                from_file: Vec::new(),
            }),
        );
        register(&mut router);
        (router, dir)
    }

    /// `(METHOD, pattern, role)` of every documented operation.
    fn documented(doc: &Value) -> BTreeSet<(String, String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, o) in item.as_object().unwrap() {
                let role = o["x-mgw-role"].as_str().unwrap().to_string();
                out.insert((method.to_ascii_uppercase(), path.clone(), role));
            }
        }
        out
    }

    #[test]
    fn documents_exactly_the_routes_with_their_roles() {
        let (router, dir) = router();
        let doc = document();
        assert_eq!(doc["openapi"], "3.0.3");
        let served: BTreeSet<(String, String, String)> = router
            .routes()
            .into_iter()
            .map(|(m, p, r)| (m.as_str().to_string(), p, r.as_str().to_string()))
            .collect();
        let documented = documented(&doc);
        let api: BTreeSet<_> = documented
            .iter()
            .filter(|(_, p, _)| p.starts_with("/api/"))
            .cloned()
            .collect();
        let undocumented: Vec<_> = served.difference(&api).collect();
        assert!(
            undocumented.is_empty(),
            "routes not in the document: {undocumented:?}"
        );
        let missing: Vec<_> = api.difference(&served).collect();
        assert!(missing.is_empty(), "documented but not served: {missing:?}");
        // The server's own paths, outside the route table.
        assert!(documented.contains(&("GET".into(), "/health".into(), "none".into())));
        assert!(documented.contains(&("GET".into(), "/metrics".into(), "viewer".into())));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_reference_resolves_and_every_path_parameter_is_declared() {
        fn walk(v: &Value, refs: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        refs.push(r.clone());
                    }
                    m.values().for_each(|v| walk(v, refs));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, refs)),
                _ => {}
            }
        }
        let doc = document();
        let mut refs = Vec::new();
        walk(&doc, &mut refs);
        assert!(refs.len() > 50, "{}", refs.len());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "dangling {r}");
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            let names: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            for o in item.as_object().unwrap().values() {
                let declared: BTreeSet<&str> = o["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(names, declared, "{path}");
                assert!(o["responses"].as_object().is_some_and(|r| !r.is_empty()));
            }
        }
    }

    #[test]
    fn is_served_to_viewers() {
        let mut router = Router::new();
        register(&mut router);
        match router.find(Method::Get, PATH) {
            super::super::router::Found::Route { handler, role, .. } => {
                assert_eq!(role, Role::Viewer);
                let req = super::super::ApiRequest::new(Method::Get, PATH, Role::Viewer);
                let answer = handler(&req).unwrap();
                assert_eq!(answer.status, 200);
                assert_eq!(answer.body, document());
            }
            _ => panic!("{PATH} is not routed"),
        }
    }
}
