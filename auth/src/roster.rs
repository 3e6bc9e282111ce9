//! Student rosters from CSV (the CLI's `student import` and the dashboard's import): every row
//! checked (`domain::roster`), then against the database (numbers and cards taken), before anything
//! is written, so the admin sees every problem at once by row and field.

use domain::roster::{RowError, check, check_all};
use store::{NewStudent, Store, StoreError};

/// What an import would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preview {
    /// Data rows read (the header row not counted).
    pub rows: usize,
    /// The valid rows' students, in file order.
    pub fresh: Vec<NewStudent>,
    /// Every problem, by row (row 1 is the first data row).
    pub errors: Vec<RowError>,
}

impl Preview {
    /// How many rows have at least one problem.
    pub fn rows_with_errors(&self) -> usize {
        let mut rows: Vec<usize> = self.errors.iter().map(|e| e.row).collect();
        rows.dedup();
        rows.len()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("the header row must name at least the columns `number` and `name` (and may have email, department, card)")]
    Header,
    #[error("row {row} is not valid CSV: {reason}")]
    Csv { row: usize, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads a roster (a header row naming `number`, `name` and optionally `email`, `department`,
/// `card`, in any order and case) and checks it without writing anything.
pub async fn preview(store: &Store, text: &str) -> Result<Preview, RosterError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| RosterError::Csv { row: 0, reason: e.to_string() })?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(number), Some(name)) = (col("number"), col("name")) else { return Err(RosterError::Header) };
    let (email, department, card) = (col("email"), col("department"), col("card"));
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 1;
        let record = record.map_err(|e| RosterError::Csv { row, reason: e.to_string() })?;
        let field = |c: Option<usize>| c.and_then(|c| record.get(c));
        rows.push((
            row,
            check(
                field(Some(number)).unwrap_or(""),
                field(Some(name)).unwrap_or(""),
                field(email),
                field(department),
                field(card),
            ),
        ));
    }
    let total = rows.len();
    let (valid, mut errors) = check_all(rows);
    let mut fresh = Vec::with_capacity(valid.len());
    for (row, r) in valid {
        if store.student_by_number(&r.number).await?.is_some() {
            errors.push(RowError { row, field: "number", reason: format!("student {} exists already", r.number) });
        } else if let Some(card) = &r.card_uid
            && store.student_credential_by_card(card).await?.is_some()
        {
            errors.push(RowError { row, field: "card", reason: format!("card {card} belongs to another student") });
        } else {
            fresh.push(NewStudent {
                number: r.number,
                name: r.name,
                email: r.email,
                department: r.department,
                card_uid: r.card_uid,
            });
        }
    }
    errors.sort_by_key(|e| e.row);
    Ok(Preview { rows: total, fresh, errors })
}
