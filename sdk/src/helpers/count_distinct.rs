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
        let n = self.items.get(ctx, group, item)?.unwrap_or(0);
        self.items.set(ctx, group, item, &(n + 1))?;
        Ok(n == 0)
    }

    /// Removes one occurrence of `item` from `group`; true if it is gone.
    pub fn remove(&self, ctx: &mut Context, group: &(impl Key + ?Sized), item: &str) -> Result<bool> {
        match self.items.get(ctx, group, item)? {
            Some(n) if n > 1 => {
                self.items.set(ctx, group, item, &(n - 1))?;
                Ok(false)
            }
            Some(_) => {
                self.items.remove(ctx, group, item);
                Ok(true)
            }
            None => Ok(false),
        }
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
