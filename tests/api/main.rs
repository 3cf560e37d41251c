//! Integration tests: the real `pinkpage` binary over real HTTP and
//! WebSockets, against real OpenSSH `sshd` processes on loopback.

mod health;
mod rest;
mod startup;
mod support;
