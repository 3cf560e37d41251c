//! A broadcast's frame, rendered once per worker thread rather than once
//! per connection.
//!
//! A `server_health` or `session_status` change goes to every open
//! WebSocket: ten thousand connection actors each handle the same event.
//! The event's payload is one `Arc` they all share
//! (`pinkpage_actors::broadcast::Event`); [`rendered`] keeps, per thread,
//! the text of the last payload it rendered, keyed by that `Arc`'s
//! address, so the second and later connections on a worker take the same
//! text (a reference-counted `ByteString`: no copy) instead of serialising
//! it again. The cache holds a clone of the `Arc`, so the address cannot be
//! freed and reused by another payload while it is cached.
//!
//! Who owns what: each worker thread owns its slot (`thread_local`), so no
//! two threads share it and nothing needs a lock.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use bytestring::ByteString;

struct Last {
    address: usize,
    /// Keeps the payload, and with it the address, alive.
    _payload: Arc<dyn Any + Send + Sync>,
    text: ByteString,
}

thread_local! {
    static LAST: RefCell<Option<Last>> = const { RefCell::new(None) };
}

/// The frame text of `payload`: rendered by `render` the first time this
/// thread sees this `Arc`, the same text after that.
pub fn rendered<T: Any + Send + Sync>(payload: &Arc<T>, render: impl FnOnce(&T) -> String) -> ByteString {
    let address = Arc::as_ptr(payload) as *const () as usize;
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(l) = last.as_ref().filter(|l| l.address == address) {
            return l.text.clone();
        }
        let text = ByteString::from(render(payload));
        *last = Some(Last {
            address,
            _payload: payload.clone(),
            text: text.clone(),
        });
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn one_payload_is_rendered_once_and_another_again() {
        let renders = Cell::new(0);
        let render = |v: &String| {
            renders.set(renders.get() + 1);
            format!("<{v}>")
        };
        let a = Arc::new("a".to_owned());
        assert_eq!(&*rendered(&a, render), "<a>");
        assert_eq!(&*rendered(&a.clone(), render), "<a>");
        assert_eq!(renders.get(), 1);
        // an equal value in another allocation is another event
        let b = Arc::new("a".to_owned());
        assert_eq!(&*rendered(&b, render), "<a>");
        assert_eq!(renders.get(), 2);
        // the cached payload is kept alive: a new one cannot take its
        // address while it is cached
        drop(b);
        let c = Arc::new("c".to_owned());
        assert_eq!(&*rendered(&c, render), "<c>");
        assert_eq!(renders.get(), 3);
    }
}
