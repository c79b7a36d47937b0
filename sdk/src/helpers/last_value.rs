use crate::{Context, Key, Result, StateOptions, StateValue, ValueState};

/// The last value seen per key — Flink SQL's `last_value(..) ... group by key`.
/// `update` returns the value it replaced, so a job can retract the old
/// value's contribution from an aggregate before adding the new one.
#[derive(Debug, Clone)]
pub struct LastValue<T> {
    state: ValueState<T>,
}

impl<T: StateValue> LastValue<T> {
    pub fn open(ctx: &mut Context, name: &str) -> Result<Self> {
        Self::open_with(ctx, name, StateOptions::default())
    }

    pub fn open_with(ctx: &mut Context, name: &str, options: StateOptions) -> Result<Self> {
        Ok(LastValue { state: ctx.value_state_with(name, options)? })
    }

    /// Stores `value` as the last value of `key`, for a job that already
    /// read the previous one with [`LastValue::get`].
    pub fn set(&self, ctx: &mut Context, key: &(impl Key + ?Sized), value: &T) -> Result<()> {
        self.state.set(ctx, key, value)
    }

    /// Stores `value` as the last value of `key`; returns the previous one.
    pub fn update(&self, ctx: &mut Context, key: &(impl Key + ?Sized), value: &T) -> Result<Option<T>> {
        let previous = self.state.get(ctx, key)?;
        self.state.set(ctx, key, value)?;
        Ok(previous)
    }

    pub fn get(&self, ctx: &mut Context, key: &(impl Key + ?Sized)) -> Result<Option<T>> {
        self.state.get(ctx, key)
    }
}
