//! The first layer: what the API server checks at admission, evaluated client-side from the very
//! CRD that is installed — the OpenAPI schema (types, required, patterns, ranges, unknown fields)
//! and the CEL `x-kubernetes-validations` rules (through kube's CEL evaluator). `kaas validate`
//! uses it so a file is judged the same way before it reaches a cluster.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use regex::Regex;
use serde_json::Value;

use crate::error::{ErrorKind, FieldError, FieldErrors};

/// The `openAPIV3Schema` of the CRD's first version, as JSON.
pub fn crd_schema(crd: &CustomResourceDefinition) -> Value {
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).expect("schema serialises"))
        .unwrap_or(Value::Null)
}

/// Checks `object` (a whole resource: apiVersion, kind, metadata, spec) against `schema`; `old`
/// is the previous object for transition rules (`oldSelf`). Returns every error.
pub fn admit(schema: &Value, object: &Value, old: Option<&Value>) -> FieldErrors {
    let mut errors = FieldErrors::default();
    if let (Some(props), Some(obj)) = (schema.get("properties"), object.as_object()) {
        for (key, value) in obj {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                continue;
            }
            match props.get(key) {
                Some(sub) => structural(sub, value, key, &mut errors),
                None => errors.push(unknown(key)),
            }
        }
    }
    // Of metadata, the Cluster CRD restricts the name's length (`kaas_api::cluster::crd`; the
    // only part of metadata a CRD may restrict). The generated schema does not carry it.
    if object.get("kind").and_then(Value::as_str) == Some("Cluster")
        && let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str)
        && name.chars().count() as u64 > kaas_api::cluster::MAX_NAME_LENGTH
    {
        errors.push(FieldError::new(
            ErrorKind::Invalid,
            "metadata.name",
            format!(
                "may not be more than {} characters (it becomes a label value and the Cluster API cluster's name), got {}",
                kaas_api::cluster::MAX_NAME_LENGTH,
                name.chars().count()
            ),
        ));
    }
    // CEL rules need well-typed, complete input of bounded size (as in the API server); unknown
    // fields, patterns and ranges do not stop them, so one run reports every problem. A list over
    // its `maxItems` stops them: the rules' cost is only bounded for input within the schema's
    // limits (and the API server refuses such input before its rules too).
    let well_typed = !errors.0.iter().any(|e| {
        e.kind == ErrorKind::Required
            || e.message.starts_with(TYPE_ERROR)
            || e.message.starts_with(TOO_MANY)
    });
    if well_typed {
        let cost = estimated_cost(schema, object, "", &mut errors);
        if cost > COST_BUDGET {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                "",
                format!(
                    "validation rules would cost about {cost} (budget {COST_BUDGET}): the object is too large to validate"
                ),
            ));
            return errors;
        }
        if errors.0.iter().any(|e| e.message.starts_with(CALL_COST)) {
            return errors;
        }
        let mut without_status = object.clone();
        if let Some(o) = without_status.as_object_mut() {
            o.remove("status");
        }
        if let Err(cel) = kube::core::cel::Validator::new().validate(schema, &without_status, old) {
            for e in cel.into_vec() {
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    e.field_path.clone(),
                    e.message.clone(),
                ));
            }
        }
    }
    errors
}

const TYPE_ERROR: &str = "must be of type";
const TOO_MANY: &str = "must have at most";
const CALL_COST: &str = "rule cost exceeds the limit";

/// Cost budget of all rules of one object, as the API server's (`RuntimeCELCostBudget`).
pub const COST_BUDGET: u64 = 10_000_000;
/// Cost limit of one rule on one value, as the API server's (`PerCallLimit`).
pub const PER_CALL_LIMIT: u64 = 1_000_000;

/// A conservative estimate of what evaluating the CEL rules on `value` costs: per rule, the size
/// of the value it applies to (items, properties or characters) raised to the number of
/// comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) in the rule, so
/// `self.all(w, self.exists_one(v, …))` on n items costs n². A rule over the per-call limit is
/// reported at its path (and not evaluated, as none are once a limit is exceeded).
fn estimated_cost(schema: &Value, value: &Value, path: &str, errors: &mut FieldErrors) -> u64 {
    let size = match value {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        Value::String(s) => s.len(),
        _ => 1,
    }
    .max(1) as u64;
    let mut cost: u64 = 0;
    for rule in schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("rule").and_then(Value::as_str))
    {
        let depth = [".all(", ".exists(", ".exists_one(", ".map(", ".filter("]
            .iter()
            .map(|m| rule.matches(m).count() as u32)
            .sum::<u32>()
            .max(1);
        let c = size.saturating_pow(depth);
        if c > PER_CALL_LIMIT {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                format!("{CALL_COST} ({c} > {PER_CALL_LIMIT}) for rule: {rule}"),
            ));
        }
        cost = cost.saturating_add(c);
    }
    match value {
        Value::Object(obj) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in obj {
                if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "status") {
                    continue;
                }
                if let Some(sub) = props.and_then(|p| p.get(k)).or(additional) {
                    cost = cost.saturating_add(estimated_cost(sub, v, &join(path, k), errors));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    cost = cost.saturating_add(estimated_cost(
                        item_schema,
                        v,
                        &format!("{path}[{i}]"),
                        errors,
                    ));
                }
            }
        }
        _ => {}
    }
    cost
}

fn unknown(path: &str) -> FieldError {
    FieldError::new(
        ErrorKind::UnknownField,
        path,
        "unknown field (not part of scs.community/v1alpha1)",
    )
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

fn structural(schema: &Value, value: &Value, path: &str, errors: &mut FieldErrors) {
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    if value.is_null() {
        if !schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                "must not be null",
            ));
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                "must be an integer or a string",
            ));
        }
        return;
    }
    let expected = schema.get("type").and_then(Value::as_str);
    let actual = type_name(value);
    if let Some(t) = expected {
        let ok = t == actual || (t == "number" && actual == "integer");
        if !ok {
            errors.push(FieldError::new(
                ErrorKind::Invalid,
                path,
                format!("{TYPE_ERROR} {t}, got {actual}"),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed
            .iter()
            .map(|a| {
                a.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| a.to_string())
            })
            .collect();
        errors.push(
            FieldError::new(
                ErrorKind::NotSupported,
                path,
                format!("unsupported value {value}"),
            )
            .allowed(names),
        );
    }
    match value {
        Value::Object(obj) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = req.as_str()
                    && !obj.contains_key(r)
                {
                    errors.push(FieldError::new(
                        ErrorKind::Required,
                        join(path, r),
                        "required value",
                    ));
                }
            }
            for (key, v) in obj {
                let sub = join(path, key);
                match (props.and_then(|p| p.get(key)), additional) {
                    (Some(s), _) | (None, Some(s)) => structural(s, v, &sub, errors),
                    (None, None) if preserve => {}
                    (None, None) => errors.push(unknown(&sub)),
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = num("maxItems")
                && items.len() as f64 > max
            {
                // Stop here: neither the items nor their uniqueness are checked on input over
                // its size limit (that work would grow with whatever size a client sends).
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    path,
                    format!("{TOO_MANY} {max} items (got {})", items.len()),
                ));
                return;
            }
            if let Some(min) = num("minItems")
                && (items.len() as f64) < min
            {
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    path,
                    format!("must have at least {min} items"),
                ));
            }
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => duplicates(items, path, |v| Some(v.clone()), errors),
                Some("map") => {
                    let keys: Vec<&str> = schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|k| k.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    duplicates(
                        items,
                        path,
                        |v| {
                            Some(Value::Array(
                                keys.iter()
                                    .map(|k| v.get(*k).cloned().unwrap_or(Value::Null))
                                    .collect(),
                            ))
                        },
                        errors,
                    )
                }
                _ => {}
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    structural(item_schema, v, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as f64;
            if let Some(max) = num("maxLength")
                && len > max
            {
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    path,
                    format!("must be at most {max} characters"),
                ));
            }
            if let Some(min) = num("minLength")
                && len < min
            {
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    path,
                    format!("must be at least {min} characters"),
                ));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && let Some(re) = regex(p)
                && !re.is_match(s)
            {
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    path,
                    format!("{s:?} does not match the pattern {p}"),
                ));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = num("maximum")
                && x > max
            {
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    path,
                    format!("must be at most {max}"),
                ));
            }
            if let Some(min) = num("minimum")
                && x < min
            {
                errors.push(FieldError::new(
                    ErrorKind::Invalid,
                    path,
                    format!("must be at least {min}"),
                ));
            }
        }
        _ => {}
    }
}

/// Reports items whose key (the item for sets, the map keys for maps) repeats an earlier one.
fn duplicates(
    items: &[Value],
    path: &str,
    key: impl Fn(&Value) -> Option<Value>,
    errors: &mut FieldErrors,
) {
    // Linear: keys are compared by their JSON text (serde_json keeps object keys sorted).
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Some(k) = key(item) else { continue };
        if !seen.insert(k.to_string()) {
            errors.push(FieldError::new(
                ErrorKind::Duplicate,
                format!("{path}[{i}]"),
                format!("duplicate value {k}"),
            ));
        }
    }
}
