//! Student rosters: what a valid student record is, and checking a whole import before anything
//! is written (the admin sees every problem at once, by row and field).

use crate::auth::{check_student_number, normalize_card_uid};
use std::collections::HashMap;

/// One student as an import or a form gives it, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StudentRecord {
    pub number: String,
    pub name: String,
    pub email: Option<String>,
    pub department: Option<String>,
    pub card_uid: Option<String>,
}

/// A problem with one field of one row (row 1 is the first data row; the header is row 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    pub field: &'static str,
    pub reason: String,
}

/// The problems of one record: (field, reason) each.
pub type FieldErrors = Vec<(&'static str, String)>;

/// Checks one record's fields. `None`/empty optional fields are absent.
pub fn check(
    number: &str,
    name: &str,
    email: Option<&str>,
    department: Option<&str>,
    card: Option<&str>,
) -> Result<StudentRecord, FieldErrors> {
    let mut errors = Vec::new();
    let opt = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let number = number.trim();
    if let Err(e) = check_student_number(number) {
        errors.push(("number", e.to_owned()));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 120 {
        errors.push(("name", "The name must be 1 to 120 characters.".to_owned()));
    }
    let email = opt(email);
    if let Some(e) = &email
        && (!e.contains('@') || e.len() > 254 || e.contains(char::is_whitespace))
    {
        errors.push(("email", format!("{e:?} is not an email address.")));
    }
    let department = opt(department);
    if department.as_ref().is_some_and(|d| d.chars().count() > 120) {
        errors.push(("department", "The department must be at most 120 characters.".to_owned()));
    }
    let card_uid = match opt(card) {
        None => None,
        Some(raw) => match normalize_card_uid(&raw) {
            Some(uid) => Some(uid),
            None => {
                errors.push(("card", format!("{raw:?} is not a card UID (4 to 32 hex digits).")));
                None
            }
        },
    };
    if errors.is_empty() {
        Ok(StudentRecord { number: number.to_owned(), name: name.to_owned(), email, department, card_uid })
    } else {
        Err(errors)
    }
}

/// The rows' errors, including numbers and cards given twice in the file. Returns the valid
/// records (with their row numbers) and every error, sorted by row.
pub fn check_all(
    rows: Vec<(usize, Result<StudentRecord, FieldErrors>)>,
) -> (Vec<(usize, StudentRecord)>, Vec<RowError>) {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    let mut numbers: HashMap<String, usize> = HashMap::new();
    let mut cards: HashMap<String, usize> = HashMap::new();
    for (row, result) in rows {
        match result {
            Err(es) => errors.extend(es.into_iter().map(|(field, reason)| RowError { row, field, reason })),
            Ok(r) => {
                if let Some(first) = numbers.insert(r.number.clone(), row) {
                    errors.push(RowError {
                        row,
                        field: "number",
                        reason: format!("{} is also on row {first}", r.number),
                    });
                    continue;
                }
                if let Some(card) = &r.card_uid
                    && let Some(first) = cards.insert(card.clone(), row)
                {
                    errors.push(RowError { row, field: "card", reason: format!("card {card} is also on row {first}") });
                    continue;
                }
                ok.push((row, r));
            }
        }
    }
    errors.sort_by_key(|e| e.row);
    (ok, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reports_every_bad_field() {
        let errs = check("a/b", "", Some("nope"), None, Some("xyz")).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["number", "name", "email", "card"]);
        let ok = check(" S-1 ", "Ada", Some(""), Some(" CS "), Some("04:a1:b2:c3")).unwrap();
        assert_eq!(
            ok,
            StudentRecord {
                number: "S-1".into(),
                name: "Ada".into(),
                email: None,
                department: Some("CS".into()),
                card_uid: Some("04A1B2C3".into())
            }
        );
    }

    #[test]
    fn duplicates_within_a_file_are_row_errors() {
        let r = |n: &str, c: Option<&str>| check(n, "X", None, None, c);
        let (ok, errors) = check_all(vec![
            (1, r("S1", Some("AAAA"))),
            (2, r("S1", None)),
            (3, r("S2", Some("aaaa"))),
            (4, r("S3", None)),
        ]);
        assert_eq!(ok.iter().map(|(row, _)| *row).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(errors.iter().map(|e| (e.row, e.field)).collect::<Vec<_>>(), [(2, "number"), (3, "card")]);
    }
}
