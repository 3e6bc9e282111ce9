//! A faculty member's record as admins edit it, and its rules (pure): what the admin API and
//! dashboard take, check field by field, and send back with the row's `version`.

use serde::{Deserialize, Serialize};

/// The editable fields of a faculty member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacultyFields {
    pub name: String,
    pub department: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub room: Option<String>,
    #[serde(default)]
    pub photo_url: Option<String>,
}

/// A faculty member's record with the version an edit must name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacultyRecord {
    pub id: i64,
    #[serde(flatten)]
    pub fields: FacultyFields,
    pub version: i64,
}

/// A field that breaks its rule, and how.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

fn field(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field, message: message.into() }
}

/// Checks and normalises `f`: text trimmed, empty optional fields dropped.
pub fn check(f: &FacultyFields) -> Result<FacultyFields, FieldError> {
    let text = |name: &'static str, label: &str, v: &str, max: usize| {
        let v = v.trim();
        match v.chars().count() {
            0 => Err(field(name, format!("{label} is required."))),
            n if n > max => Err(field(name, format!("{label} must be at most {max} characters."))),
            _ if v.chars().any(char::is_control) => {
                Err(field(name, format!("{label} cannot hold control characters.")))
            }
            _ => Ok(v.to_owned()),
        }
    };
    let optional = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    let name = text("name", "Name", &f.name, 120)?;
    let department = text("department", "Department", &f.department, 120)?;
    let email = optional(&f.email);
    if let Some(e) = &email {
        let ok = e.len() <= 254
            && e.split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.starts_with('.'))
            && !e.contains(char::is_whitespace);
        if !ok {
            return Err(field("email", "That is not an email address."));
        }
    }
    let room = optional(&f.room);
    if let Some(r) = &room {
        text("room", "Room", r, 40)?;
    }
    let photo_url = optional(&f.photo_url);
    if let Some(u) = &photo_url
        && (u.len() > 500
            || !(u.starts_with("https://") || u.starts_with("http://"))
            || u.contains(char::is_whitespace))
    {
        return Err(field("photo_url", "The photo must be an http(s) address of at most 500 characters."));
    }
    Ok(FacultyFields { name, department, email, room, photo_url })
}

/// An admin's status override from what the API takes: a status, a note (at most 80 characters,
/// shown on the board) and an end time in the future (Unix ms; none: until cleared).
pub fn check_override(
    status: &str,
    note: Option<&str>,
    until: Option<i64>,
    now: i64,
) -> Result<crate::status::AdminOverride, FieldError> {
    let status = crate::status::Status::parse(status)
        .ok_or_else(|| field("status", "Status must be available, busy, away or offline."))?;
    let note = note.map(str::trim).unwrap_or_default();
    if note.chars().count() > 80 || note.chars().any(char::is_control) {
        return Err(field("note", "The note must be at most 80 characters on one line."));
    }
    if until.is_some_and(|u| u <= now) {
        return Err(field("until", "The end time must be in the future."));
    }
    Ok(crate::status::AdminOverride { status, note: note.to_owned(), expires_at: until })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, dept: &str) -> FacultyFields {
        FacultyFields { name: name.into(), department: dept.into(), ..Default::default() }
    }

    #[test]
    fn an_override_names_what_is_wrong() {
        let ok = check_override("busy", Some(" In class "), Some(2_000), 1_000).unwrap();
        assert_eq!(
            (ok.status, ok.note.as_str(), ok.expires_at),
            (crate::status::Status::Busy, "In class", Some(2_000))
        );
        assert_eq!(check_override("gone", None, None, 0).unwrap_err().field, "status");
        assert_eq!(check_override("away", Some(&"x".repeat(81)), None, 0).unwrap_err().field, "note");
        assert_eq!(check_override("away", None, Some(1_000), 1_000).unwrap_err().field, "until");
    }

    #[test]
    fn each_rule_names_its_field() {
        assert_eq!(check(&f(" Ada ", "CS")).unwrap().name, "Ada");
        assert_eq!(check(&f("", "CS")).unwrap_err().field, "name");
        assert_eq!(check(&f("Ada", &"x".repeat(121))).unwrap_err().field, "department");
        let mut bad = f("Ada", "CS");
        for email in ["ada", "@x.org", "ada@x", "a da@x.org"] {
            bad.email = Some(email.into());
            assert_eq!(check(&bad).unwrap_err().field, "email", "{email}");
        }
        bad.email = Some("  ".into());
        assert_eq!(check(&bad).unwrap().email, None, "blank is none");
        bad.photo_url = Some("javascript:alert(1)".into());
        assert_eq!(check(&bad).unwrap_err().field, "photo_url");
        bad.photo_url = Some("https://uni.example/ada.jpg".into());
        bad.room = Some("B-204".into());
        let ok = check(&bad).unwrap();
        assert_eq!((ok.room.as_deref(), ok.photo_url.as_deref()), (Some("B-204"), Some("https://uni.example/ada.jpg")));
    }
}
