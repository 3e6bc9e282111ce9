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
    /// Weekly office hours, one slot per line (`domain::schedule`), as `check` writes them back.
    #[serde(default)]
    pub office_hours: Option<String>,
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
    let office_hours = match optional(&f.office_hours) {
        None => None,
        Some(text) => {
            let slots = crate::schedule::parse(&text).map_err(|errors| field("office_hours", errors.join("; ")))?;
            Some(crate::schedule::format(&slots)).filter(|t| !t.is_empty())
        }
    };
    Ok(FacultyFields { name, department, email, room, photo_url, office_hours })
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

/// The fields of [`FacultyFields`] by name, in form order.
pub const FIELDS: [&str; 6] = ["name", "department", "email", "room", "photo_url", "office_hours"];

impl FacultyFields {
    /// Field `name`'s value, trimmed; an empty optional field is `""`.
    pub fn get(&self, name: &str) -> &str {
        let v = match name {
            "name" => Some(self.name.as_str()),
            "department" => Some(self.department.as_str()),
            "email" => self.email.as_deref(),
            "room" => self.room.as_deref(),
            "photo_url" => self.photo_url.as_deref(),
            "office_hours" => self.office_hours.as_deref(),
            _ => None,
        };
        v.unwrap_or_default().trim()
    }

    /// Sets field `name` (an empty optional field becomes `None`).
    pub fn set(&mut self, name: &str, value: &str) {
        let opt = || Some(value.to_owned()).filter(|v| !v.trim().is_empty());
        match name {
            "name" => self.name = value.to_owned(),
            "department" => self.department = value.to_owned(),
            "email" => self.email = opt(),
            "room" => self.room = opt(),
            "photo_url" => self.photo_url = opt(),
            "office_hours" => self.office_hours = opt(),
            _ => {}
        }
    }
}

/// A stale edit merged with the row saved meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// Each field as one side changed it; where both changed it differently, the editor's.
    pub fields: FacultyFields,
    /// The fields both sides changed, differently: the editor must choose.
    pub conflicts: Vec<&'static str>,
}

/// Three-way merge of an edit made from `base` (`mine`) with the row someone saved meanwhile
/// (`theirs`), field by field: a field only one side changed takes that side's value, so nothing
/// either admin changed is lost; a field both changed to different values is a conflict.
pub fn merge(base: &FacultyFields, mine: &FacultyFields, theirs: &FacultyFields) -> Merged {
    let mut fields = mine.clone();
    let mut conflicts = Vec::new();
    for name in FIELDS {
        let (b, m, t) = (base.get(name), mine.get(name), theirs.get(name));
        if m == t || t == b {
            continue;
        }
        if m == b {
            fields.set(name, t);
        } else {
            conflicts.push(name);
        }
    }
    Merged { fields, conflicts }
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

    fn arb_fields() -> impl proptest::strategy::Strategy<Value = FacultyFields> {
        use proptest::prelude::*;
        // Few values per field, so that the sides often agree or collide.
        let v = || prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just("c".to_owned())];
        let o = || proptest::option::of(v());
        (v(), v(), o(), o(), o(), o()).prop_map(|(name, department, email, room, photo_url, office_hours)| {
            FacultyFields { name, department, email, room, photo_url, office_hours }
        })
    }

    proptest::proptest! {
        /// Nothing either side changed alone is lost; only fields both changed differently are
        /// conflicts, and those keep the editor's value until they choose.
        #[test]
        fn a_merge_keeps_every_one_sided_change(b in arb_fields(), m in arb_fields(), t in arb_fields()) {
            let merged = merge(&b, &m, &t);
            for name in FIELDS {
                let (bv, mv, tv, out) = (b.get(name), m.get(name), t.get(name), merged.fields.get(name));
                let conflict = merged.conflicts.contains(&name);
                proptest::prop_assert_eq!(conflict, mv != bv && tv != bv && mv != tv, "{}", name);
                if mv != bv && !conflict {
                    proptest::prop_assert_eq!(out, mv, "my change to {} kept", name);
                } else if tv != bv && !conflict {
                    proptest::prop_assert_eq!(out, tv, "their change to {} kept", name);
                } else {
                    proptest::prop_assert_eq!(out, mv);
                }
            }
            // The sides are symmetric in what conflicts.
            proptest::prop_assert_eq!(merge(&b, &t, &m).conflicts, merged.conflicts);
        }

        #[test]
        fn an_edit_over_an_unchanged_row_is_itself(b in arb_fields(), m in arb_fields()) {
            proptest::prop_assert_eq!(merge(&b, &m, &b), Merged { fields: m.clone(), conflicts: vec![] });
            let theirs = merge(&b, &b, &m);
            proptest::prop_assert!(theirs.conflicts.is_empty());
            for name in FIELDS {
                proptest::prop_assert_eq!(theirs.fields.get(name), m.get(name));
            }
        }
    }
}
