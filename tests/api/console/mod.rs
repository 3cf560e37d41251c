//! The operator console (`/ui/`): how it is served (plain HTTP, no
//! browser), then each screen driven in real headless Chromium against the
//! real daemon and real sshd servers. Screenshots of every screen land in
//! `target/console-screenshots/`.

mod browser;
mod budgets;
mod cut;
mod everyday;
mod policy;
mod recordings;
mod safety;
mod serving;
mod terminal;
mod terminals;
mod work;
mod workflows;
