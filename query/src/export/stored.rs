//! A stored document decoded once into its field values by tantivy, for the cells of the
//! columns an export reads from the doc store that [`super::raw`] leaves to tantivy (dates,
//! values inside objects it does not write, bytes it does not know).
//!
//! tantivy's own document type decodes every value into an [`OwnedValue`] and then copies it
//! into its compact arena, and the export then turned the values it wanted back into
//! `OwnedValue`s (objects) or copied them again. [`StoredRow`] keeps the decoded values as they
//! come: one decode, and strings are moved, not copied. The values are the very ones
//! `TantivyDocument` would hand out, so the columns built from them are the same.

use tantivy::schema::document::{DeserializeError, DocumentDeserialize, DocumentDeserializer};
use tantivy::schema::{Field, OwnedValue};

/// The field values of one stored document, in stored order.
#[derive(Debug, Default)]
pub(crate) struct StoredRow {
    values: Vec<(Field, OwnedValue)>,
}

impl StoredRow {
    /// The first value of `field`, as `TantivyDocument::get_first` finds it.
    pub(crate) fn first(&self, field: Field) -> Option<&OwnedValue> {
        self.values
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
    }

    /// Every value of `field`, in stored order.
    pub(crate) fn all(&self, field: Field) -> impl Iterator<Item = &OwnedValue> + '_ {
        self.values
            .iter()
            .filter(move |(f, _)| *f == field)
            .map(|(_, v)| v)
    }
}

impl DocumentDeserialize for StoredRow {
    fn deserialize<'de, D>(mut deserializer: D) -> Result<Self, DeserializeError>
    where
        D: DocumentDeserializer<'de>,
    {
        let mut values = Vec::with_capacity(deserializer.size_hint());
        while let Some((field, value)) = deserializer.next_field::<OwnedValue>()? {
            values.push((field, value));
        }
        Ok(StoredRow { values })
    }
}
