use crate::{Context, Key, MapState, Result, StateOptions};

/// `count(distinct item)` per group that also supports retraction: each item
/// keeps a multiplicity, and the count is the number of items above zero.
#[derive(Debug, Clone)]
pub struct CountDistinct {
    items: MapState<str, u64>,
}

impl CountDistinct {
    pub fn open(ctx: &mut Context, name: &str) -> Result<Self> {
        Self::open_with(ctx, name, StateOptions::default())
    }

    pub fn open_with(ctx: &mut Context, name: &str, options: StateOptions) -> Result<Self> {
        Ok(CountDistinct { items: ctx.map_state_with(name, options)? })
    }

    /// Adds one occurrence of `item` to `group`; true if it is new there.
    pub fn add(&self, ctx: &mut Context, group: &(impl Key + ?Sized), item: &str) -> Result<bool> {
        Ok(self.change(ctx, group, item, 1) == 1)
    }

    /// Removes one occurrence of `item` from `group`; true if it is gone
    /// (false if it was not there, or still occurs).
    pub fn remove(&self, ctx: &mut Context, group: &(impl Key + ?Sized), item: &str) -> Result<bool> {
        Ok(self.change(ctx, group, item, -1) == 0)
    }

    /// The item's multiplicity after adding `delta`: one host call, kept by
    /// the host as a counter (`state.map-add`).
    fn change(&self, ctx: &mut Context, group: &(impl Key + ?Sized), item: &str, delta: i64) -> i64 {
        ctx.host.map_add(self.items.id(), &group.key_bytes(), item.as_bytes(), delta)
    }

    /// Number of distinct items in `group`.
    pub fn count(&self, ctx: &mut Context, group: &(impl Key + ?Sized)) -> u64 {
        u64::from(self.items.len(ctx, group))
    }

    /// Forgets `group`.
    pub fn clear(&self, ctx: &mut Context, group: &(impl Key + ?Sized)) {
        self.items.clear(ctx, group);
    }
}
