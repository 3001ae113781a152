//! Card budgets (see `paravox_engine::budget`): the default every card starts with,
//! declared by `[budget]` in the configuration file, and a card's own, declared by its
//! `budget` (in `[[virtio]]`, a card created over the API, or `PUT /api/cards/{id}/budget`).

use paravox_engine::Budget;

use crate::error::{ControlError, Result};
use crate::model::{
    BUDGET_MAX_CARD_BUFFER, BUDGET_MAX_SAMPLES, BUDGET_MAX_STREAM_BUFFER, BudgetRequest,
};

fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    value: Option<T>,
    min: T,
    max: T,
    field: &'static str,
) -> Result<Option<T>> {
    match value {
        Some(value) if value < min || value > max => Err(ControlError::invalid(format!(
            "budget {field} must be {min}..={max}, not {value}"
        ))
        .at(field)),
        other => Ok(other),
    }
}

/// `request` laid over `base`, checked: each field within its documented range, and no
/// stream limit above the card's.
pub fn resolve(request: &BudgetRequest, base: Budget) -> Result<Budget> {
    let max_streams = paravox_engine::budget::MAX_STREAMS;
    let budget = Budget {
        streams: in_range(request.streams, 1, max_streams, "streams")?.unwrap_or(base.streams),
        stream_buffer_bytes: in_range(
            request.stream_buffer_bytes,
            1,
            BUDGET_MAX_STREAM_BUFFER,
            "stream_buffer_bytes",
        )?
        .unwrap_or(base.stream_buffer_bytes),
        card_buffer_bytes: in_range(
            request.card_buffer_bytes,
            1,
            BUDGET_MAX_CARD_BUFFER,
            "card_buffer_bytes",
        )?
        .unwrap_or(base.card_buffer_bytes),
        stream_samples_per_second: in_range(
            request.stream_samples_per_second,
            1,
            BUDGET_MAX_SAMPLES,
            "stream_samples_per_second",
        )?
        .unwrap_or(base.stream_samples_per_second),
        card_samples_per_second: in_range(
            request.card_samples_per_second,
            1,
            BUDGET_MAX_SAMPLES,
            "card_samples_per_second",
        )?
        .unwrap_or(base.card_samples_per_second),
    };
    budget
        .check()
        .map_err(|why| ControlError::invalid(format!("budget: {why}")))?;
    Ok(budget)
}

/// Every field of `budget`, as a request (what the API shows and `state.json` keeps).
pub fn request_of(budget: &Budget) -> BudgetRequest {
    BudgetRequest {
        streams: Some(budget.streams),
        stream_buffer_bytes: Some(budget.stream_buffer_bytes),
        card_buffer_bytes: Some(budget.card_buffer_bytes),
        stream_samples_per_second: Some(budget.stream_samples_per_second),
        card_samples_per_second: Some(budget.card_samples_per_second),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_keep_the_base() {
        let base = Budget::default();
        let budget = resolve(
            &BudgetRequest {
                streams: Some(4),
                ..BudgetRequest::default()
            },
            base,
        )
        .unwrap();
        assert_eq!(budget, Budget { streams: 4, ..base });
        assert_eq!(resolve(&request_of(&budget), base).unwrap(), budget);
    }

    #[test]
    fn out_of_range_and_inconsistent_budgets_name_the_field() {
        let base = Budget::default();
        let zero = resolve(
            &BudgetRequest {
                stream_buffer_bytes: Some(0),
                ..BudgetRequest::default()
            },
            base,
        )
        .unwrap_err();
        assert_eq!(zero.field(), Some("stream_buffer_bytes"));
        let huge = resolve(
            &BudgetRequest {
                streams: Some(65),
                ..BudgetRequest::default()
            },
            base,
        )
        .unwrap_err();
        assert!(huge.message().contains("1..=64"), "{}", huge.message());
        let inverted = resolve(
            &BudgetRequest {
                card_buffer_bytes: Some(1024),
                ..BudgetRequest::default()
            },
            base,
        )
        .unwrap_err();
        assert!(inverted.message().contains("card_buffer_bytes"));
    }
}
