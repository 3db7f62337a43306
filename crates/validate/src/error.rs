//! Field errors in the shape of Kubernetes' `field.Error`: a path, a kind, what is wrong and,
//! where it helps, what would be valid.

use std::fmt;

use serde::Serialize;

/// Kind of a field error (Kubernetes `field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ErrorKind {
    /// A required value is missing.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The value is well-formed but not one of the allowed ones.
    NotSupported,
    /// The value is present twice.
    Duplicate,
    /// The value is not allowed here or in this transition.
    Forbidden,
    /// The field is unknown to the schema.
    UnknownField,
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.workers[1].flavor`.
    pub path: String,
    /// Kind of problem.
    pub kind: ErrorKind,
    /// What is wrong, for people.
    pub message: String,
    /// Values that would be valid, when known (shown as "offered: …").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
}

impl FieldError {
    /// A new error.
    pub fn new(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            kind,
            message: message.into(),
            allowed: Vec::new(),
        }
    }

    /// Adds the values that would be valid.
    pub fn allowed<I: IntoIterator<Item = S>, S: Into<String>>(mut self, values: I) -> Self {
        self.allowed = values.into_iter().map(Into::into).collect();
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "{}: {}", self.path, self.message)?;
        }
        if !self.allowed.is_empty() {
            write!(f, " (offered: {})", self.allowed.join(", "))?;
        }
        Ok(())
    }
}

/// Every error found, never just the first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl FieldErrors {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds one.
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }
    /// The paths, in order (handy in tests).
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.path.as_str()).collect()
    }
}
