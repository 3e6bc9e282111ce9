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

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, dept: &str) -> FacultyFields {
        FacultyFields { name: name.into(), department: dept.into(), ..Default::default() }
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
