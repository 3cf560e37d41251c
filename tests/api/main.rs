//! Integration tests: the real `pinkpage` binary over real HTTP and
//! WebSockets, against real OpenSSH `sshd` processes on loopback.

mod rest;
mod ssh_layer;
mod startup;
mod stub;
mod support;
mod transfers;
